//! What every handler may need to know about the request itself: its id and the client's
//! address, for the audit trail and the sign-in throttle.

use std::future::{ready, Ready};
use std::net::IpAddr;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest};

use crate::auth::caller::Caller;
use crate::config::AuthSettings;
use crate::error::ApiError;
use crate::store::audit::AuditEventRow;
use crate::telemetry::RequestId;

#[derive(Clone, Debug)]
pub struct RequestContext {
    pub request_id: String,
    /// The TCP peer; or, when the peer is a trusted proxy, the last address in
    /// `X-Forwarded-For` (the one that proxy saw). Anyone else's header is ignored: a client
    /// could forge it to dodge the per-address throttle.
    pub client_address: Option<String>,
}

fn client_address(req: &HttpRequest) -> Option<String> {
    let peer = req.peer_addr()?.ip();
    let trusted = req
        .app_data::<actix_web::web::Data<AuthSettings>>()
        .is_some_and(|s| s.trusted_proxies.contains(&peer));
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

impl FromRequest for RequestContext {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let request_id = req
            .extensions()
            .get::<RequestId>()
            .map_or_else(|| "unknown".to_owned(), |id| id.0.clone());
        let client_address = client_address(req);
        ready(Ok(Self {
            request_id,
            client_address,
        }))
    }
}

/// What was done to which record; the request supplies who, when and from where.
pub struct Audited<'a> {
    pub action: &'a str,
    pub resource_type: &'a str,
    pub resource_id: Option<&'a str>,
    pub patient_id: Option<&'a str>,
}

impl RequestContext {
    pub fn audit(&self, actor: Option<&Caller>, what: Audited<'_>) -> AuditEventRow {
        self.audit_by(actor.map(|c| (c.user_id.as_str(), c.role.as_str())), what)
    }

    /// For events whose actor is known by id and role rather than as a signed-in caller
    /// (a sign-in, a refresh).
    pub fn audit_by(&self, actor: Option<(&str, &str)>, what: Audited<'_>) -> AuditEventRow {
        AuditEventRow {
            id: uuid::Uuid::new_v4().to_string(),
            occurred_at: crate::clock::to_db(crate::clock::now()),
            actor_id: actor.map(|(id, _)| id.to_owned()),
            actor_role: actor.map(|(_, role)| role.to_owned()),
            action: what.action.to_owned(),
            resource_type: what.resource_type.to_owned(),
            resource_id: what.resource_id.map(str::to_owned),
            patient_id: what.patient_id.map(str::to_owned),
            request_id: self.request_id.clone(),
            client_address: self.client_address.clone(),
            detail: None,
        }
    }
}
