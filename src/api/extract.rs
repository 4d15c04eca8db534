//! What a handler takes from the request besides its path, query and body: the call (the
//! signed-in caller, where the request came from, the service's state) and a change's
//! precondition (If-Match).

use std::future::{ready, Ready};
use std::marker::PhantomData;
use std::net::IpAddr;

use actix_web::dev::Payload;
use actix_web::error::QueryPayloadError;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use futures_util::future::LocalBoxFuture;

use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use utoipa::ToSchema;

use crate::api::wire::{MergePatch, Patchable};
use crate::call::caller::Caller;
use crate::call::{Call, Expected, Origin, Services};
use crate::contract::RequestSchemas;
use crate::error::{self, ApiError};
use crate::telemetry::RequestId;

fn services(req: &HttpRequest) -> Result<web::Data<Services>, ApiError> {
    req.app_data::<web::Data<Services>>()
        .cloned()
        .ok_or_else(|| ApiError::Internal("the service's state is not registered".into()))
}

/// The TCP peer; or, when the peer is a trusted proxy, the last address in `X-Forwarded-For`
/// (the one that proxy saw). Anyone else's header is ignored: a client could forge it to
/// dodge the per-address throttle.
fn client_address(req: &HttpRequest) -> Option<String> {
    let peer = req.peer_addr()?.ip();
    let trusted = services(req).is_ok_and(|s| s.auth.trusted_proxies.contains(&peer));
    let forwarded = trusted
        .then(|| {
            req.headers()
                .get("x-forwarded-for")?
                .to_str()
                .ok()?
                .rsplit(',')
                .next()?
                .trim()
                .parse::<IpAddr>()
                .ok()
        })
        .flatten();
    Some(forwarded.unwrap_or(peer).to_string())
}

fn origin(req: &HttpRequest) -> Origin {
    Origin {
        request_id: req
            .extensions()
            .get::<RequestId>()
            .map_or_else(|| "unknown".to_owned(), |id| id.0.clone()),
        client_address: client_address(req),
    }
}

impl FromRequest for Origin {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(origin(req)))
    }
}

/// The call, with its caller as their token says: every database entry of the call confirms
/// the account first (`Call::transaction`, `Call::read`, `Call::run`).
impl FromRequest for Call {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(services(req).and_then(|services| {
            Ok(Call {
                caller: Caller::of_request(req, &services)?,
                origin: origin(req),
                services: services.into_inner(),
            })
        }))
    }
}

/// A JSON body of type `T`. One that does not parse as `T` is a 422 naming every field that
/// breaks `T`'s schema in the contract (`contract::RequestSchemas`) — its type, its
/// enumeration, its format, its range, a field missing or unknown — all at once; the JSON
/// settings of `api::routes` answer a body too large, of another type or not JSON at all.
pub struct Body<T>(pub T);

impl<T> Body<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Body<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned + ToSchema + 'static> FromRequest for Body<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, actix_web::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        // Kept as text, so the parse into `T` still meets a key given twice.
        let raw = web::Json::<Box<RawValue>>::from_request(req, payload);
        let schemas = req.app_data::<web::Data<RequestSchemas>>().cloned();
        Box::pin(async move {
            let raw = raw.await?.into_inner();
            let parsed = serde_json::from_str::<T>(raw.get());
            parsed.map(Body).map_err(|first| {
                let first = error::field_error_from_serde(&first);
                // A body nested deeper than a `Value` reads is named by the parser alone.
                let body = serde_json::from_str::<serde_json::Value>(raw.get()).ok();
                let mut errors = match (schemas, body) {
                    (Some(schemas), Some(body)) => schemas.errors(&T::name(), &body),
                    _ => vec![],
                };
                // What the contract cannot state (a key given twice) the parser still names;
                // and when the contract finds nothing, the parser's word is the answer.
                let named = first.field != "body" && !errors.iter().any(|e| e.field == first.field);
                if errors.is_empty() || named {
                    errors.push(first);
                }
                ApiError::Validation(errors).into()
            })
        })
    }
}

/// A merge patch (RFC 7396) of the record `T` creates, checked as it is read against its
/// patch schema in the contract: every field of the wrong type, outside its enumeration,
/// breaking its range or cleared where it may not be is named in one 422, as a create's are.
pub struct Patch<T> {
    changes: MergePatch,
    of: PhantomData<T>,
}

impl<T> Patch<T> {
    pub fn changes(&self) -> &MergePatch {
        &self.changes
    }
}

impl<T: Patchable + 'static> FromRequest for Patch<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, actix_web::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let changes = web::Json::<MergePatch>::from_request(req, payload);
        let schemas = req.app_data::<web::Data<RequestSchemas>>().cloned();
        Box::pin(async move {
            let changes = changes.await?.into_inner();
            let errors = schemas.map_or_else(Vec::new, |s| s.errors(T::PATCH, &changes.to_value()));
            if !errors.is_empty() {
                return Err(ApiError::Validation(errors).into());
            }
            Ok(Patch {
                changes,
                of: PhantomData,
            })
        })
    }
}

/// Answers a query string that does not parse as its handler's parameters: every parameter
/// that breaks the contract (its type, enumeration, format or range), named, in one 422; the
/// parser's own word when the contract finds nothing (an unknown parameter, say).
pub fn query_error(err: QueryPayloadError, req: &HttpRequest) -> actix_web::Error {
    let message = match err {
        QueryPayloadError::Deserialize(e) => e.to_string(),
        _ => "the query string could not be read".into(),
    };
    let schemas = req.app_data::<web::Data<RequestSchemas>>();
    let route = req.match_pattern().unwrap_or_default();
    let errors = schemas.map_or_else(Vec::new, |s| {
        s.query_errors(req.method().as_str(), &route, req.query_string())
    });
    if !errors.is_empty() {
        return ApiError::Validation(errors).into();
    }
    ApiError::Validation(vec![error::serde_field_error(message, "query")]).into()
}

/// The `If-Match` header as the contract states it.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IfMatchHeader {
    /// The version the change is based on, as the record's ETag gives it (such as "3"); 412
    /// when it is no longer current. Compared strongly: a weak tag never matches.
    #[param(rename = "If-Match", pattern = r#"^(\*|"?[0-9]{1,9}"?)$"#)]
    pub if_match: Option<String>,
}

/// What `If-Match` allows a change to be based on (RFC 9110 §13.1.1): `*` any version, else
/// the listed versions (`"3"`, or `3` as older clients send it). The comparison is strong: a
/// weak tag (`W/"3"`) matches no version, and the change is refused with 412.
pub struct IfMatch(pub Expected);

fn if_match(value: Option<&header::HeaderValue>) -> Result<Expected, ApiError> {
    let Some(value) = value else {
        return Ok(Expected::Any);
    };
    let bad = || ApiError::invalid("If-Match", "must be the record's version, such as \"3\"");
    let text = value.to_str().map_err(|_| bad())?.trim();
    if text == "*" {
        return Ok(Expected::Any);
    }
    let mut versions = Vec::new();
    for tag in text.split(',').map(str::trim) {
        if tag.starts_with("W/") {
            continue;
        }
        let version = tag
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .unwrap_or(tag);
        versions.push(version.parse().map_err(|_| bad())?);
    }
    Ok(Expected::OneOf(versions))
}

impl FromRequest for IfMatch {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(if_match(req.headers().get(header::IF_MATCH)).map(IfMatch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9110 §13.1.1: If-Match uses the strong comparison, so a weak entity tag never
    /// matches; `*` matches any current representation.
    #[test]
    fn if_match_compares_strongly() {
        let read = |v: &str| if_match(Some(&header::HeaderValue::from_str(v).unwrap()));
        assert_eq!(if_match(None).unwrap(), Expected::Any);
        assert_eq!(read("*").unwrap(), Expected::Any);
        assert_eq!(read("\"3\"").unwrap(), Expected::OneOf(vec![3]));
        assert_eq!(read("3").unwrap(), Expected::OneOf(vec![3]));
        assert_eq!(read("\"3\", \"4\"").unwrap(), Expected::OneOf(vec![3, 4]));
        assert_eq!(read("W/\"3\"").unwrap(), Expected::OneOf(vec![]));
        assert!(!read("W/\"3\"").unwrap().admits(3));
        assert!(read("\"x\"").is_err());
    }
}
