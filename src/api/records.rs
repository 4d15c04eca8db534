//! What every clinical-record endpoint shares: the body hash behind idempotent creates, the
//! list window (time range or sync), corrections, JSON merge patches and audited reads.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};

use crate::api::context::{Audited, RequestContext};
use crate::api::flags::{flags_by_record, FlagResponse};
use crate::api::idempotent::Creation;
use crate::api::pagination::PageQuery;
use crate::api::pagination::Paged;
use crate::auth::caller::Caller;
use crate::clock;
use crate::domain::text::{self, Shape};
use crate::domain::time;
use crate::domain::RuleBroken;
use crate::error::{ApiError, FieldError};
use crate::store::audit::AuditEventRow;
use crate::store::scope::Scope;
use crate::store::{
    audit, patients, Correctable, Db, DbConnection, Page, StoreError, Timed, Window,
};

/// SHA-256 of a create request as the server understood it: a retry with the same body has
/// the same hash, a different body a different one.
pub fn body_hash<T: Serialize>(body: &T) -> String {
    let canonical = serde_json::to_vec(body).unwrap_or_default();
    hex::encode(Sha256::digest(canonical))
}

/// Domain rule failures as a 422 naming every field.
pub fn rules_broken(broken: Vec<RuleBroken>) -> ApiError {
    ApiError::Validation(
        broken
            .into_iter()
            .map(|b| FieldError::new(b.field, b.rule))
            .collect(),
    )
}

impl From<RuleBroken> for ApiError {
    fn from(broken: RuleBroken) -> Self {
        rules_broken(vec![broken])
    }
}

/// Maps a missing record to `None`, for lookups where absence is an answer.
pub fn optional<T>(found: Result<T, StoreError>) -> Result<Option<T>, StoreError> {
    match found {
        Ok(value) => Ok(Some(value)),
        Err(StoreError::NotFound) => Ok(None),
        Err(other) => Err(other),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecordQuery {
    /// Records whose own time (taken, started, onset) is at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Records whose own time is before this instant.
    pub to: Option<DateTime<Utc>>,
    /// Sync: records created or changed after this instant (RFC 3339), entered-in-error ones
    /// included and marked `deleted`, in order of change. Page on with `cursor`.
    pub updated_since: Option<DateTime<Utc>>,
}

impl RecordQuery {
    pub fn window(&self) -> Result<Window, ApiError> {
        if let Some(since) = self.updated_since {
            if self.from.is_some() || self.to.is_some() {
                return Err(ApiError::invalid(
                    "updated_since",
                    "cannot be combined with from or to",
                ));
            }
            time::query_bound("updated_since", since)?;
            return Ok(Window::Changes {
                since: Some(clock::to_db(since)),
            });
        }
        let range = time::Range::parse(self.from, self.to).map_err(rules_broken)?;
        Ok(Window::Range {
            from: range.from.map(clock::to_db),
            to: range.to.map(clock::to_db),
        })
    }

    /// The window and the page, with the time a list's cursor runs on.
    pub fn window_and_page(&self, page: &PageQuery) -> Result<(Window, Page), ApiError> {
        Ok((self.window()?, page.page()?))
    }
}

/// Whether a list runs in change order (sync) or in the records' own time order.
pub fn by_change(window: &Window) -> bool {
    matches!(window, Window::Changes { .. })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"reason": "entered for the wrong patient"}))]
pub struct CorrectionRequest {
    /// Why the record was entered in error; kept with it and audited.
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub reason: String,
}

impl CorrectionRequest {
    pub fn reason(&self) -> Result<String, ApiError> {
        Ok(text::required("reason", &self.reason, Shape::Line, 500)?)
    }
}

/// RFC 7396 merge patch: objects merge key by key, `null` removes, anything else replaces.
pub fn merge_patch(target: &mut serde_json::Value, patch: &serde_json::Value) {
    let serde_json::Value::Object(changes) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = serde_json::Value::Object(Default::default());
    }
    let object = target.as_object_mut().expect("made an object above");
    for (key, value) in changes {
        if value.is_null() {
            object.remove(key);
        } else {
            merge_patch(
                object.entry(key.clone()).or_insert(serde_json::Value::Null),
                value,
            );
        }
    }
}

/// A JSON merge patch (RFC 7396) body: an object of the fields to change. Anything else is
/// refused as the body is read, before the record is looked at; so is a key given twice at
/// any depth (`{"research_consent": false, "research_consent": true}`), which a plain JSON
/// reader would take as its last value.
#[derive(Debug)]
pub struct MergePatch(serde_json::Map<String, serde_json::Value>);

impl<'de> Deserialize<'de> for MergePatch {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match d.deserialize_any(DistinctKeys)? {
            serde_json::Value::Object(fields) => Ok(Self(fields)),
            _ => Err(serde::de::Error::custom(
                "a merge patch must be a JSON object",
            )),
        }
    }
}

/// Reads any JSON value, refusing an object that repeats a key.
struct DistinctKeys;

impl<'de> serde::de::Visitor<'de> for DistinctKeys {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(DistinctKeys)? {
            items.push(item);
        }
        Ok(items.into())
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if fields.contains_key(&key) {
                return Err(serde::de::Error::custom(format!("duplicate field `{key}`")));
            }
            let value = map.next_value_seed(DistinctKeys)?;
            fields.insert(key, value);
        }
        Ok(fields.into())
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for DistinctKeys {
    type Value = serde_json::Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl MergePatch {
    /// The names of the fields the patch changes.
    pub fn fields(&self) -> impl Iterator<Item = &String> {
        self.0.keys()
    }
}

/// Applies a merge patch to the request form of a stored record and reads it back as that
/// request type, so a change is checked by the same rules as a create.
pub fn patched<T: Serialize + for<'de> Deserialize<'de>>(
    current: &T,
    patch: &MergePatch,
) -> Result<T, ApiError> {
    let patch = serde_json::Value::Object(patch.0.clone());
    if patch.get("id").is_some() {
        return Err(ApiError::invalid("id", "cannot be changed"));
    }
    let mut value = serde_json::to_value(current).map_err(|e| ApiError::Internal(Box::new(e)))?;
    merge_patch(&mut value, &patch);
    serde_json::from_value(value).map_err(|e| {
        let message = e.to_string();
        let field = message
            .split('`')
            .nth(1)
            .filter(|_| message.contains("field `"))
            .unwrap_or("body")
            .to_owned();
        ApiError::invalid(field, message)
    })
}

/// Marks the record `id` entered in error (once; a repeat changes nothing) and audits it.
pub fn mark_entered_in_error<R: Correctable>(
    conn: &mut DbConnection,
    reason: String,
    find: impl Fn(&mut DbConnection) -> Result<R, StoreError>,
    replace: impl Fn(&mut DbConnection, &R, i32) -> Result<(), StoreError>,
    event: impl FnOnce(&str) -> AuditEventRow,
) -> Result<R, StoreError> {
    let current = find(conn)?;
    if !current.is_entered_in_error() {
        let version = current.version();
        let patient_id = current.patient_id().to_owned();
        replace(
            conn,
            &current.marked(reason, clock::to_db(clock::now())),
            version,
        )?;
        audit::record(conn, &event(&patient_id))?;
    }
    find(conn)
}

/// An audit event for a read or write of a patient's record.
pub fn patient_event(
    ctx: &RequestContext,
    caller: &Caller,
    action: &str,
    resource_type: &str,
    resource_id: &str,
    patient_id: &str,
) -> AuditEventRow {
    ctx.audit(
        Some(caller),
        Audited {
            action,
            resource_type,
            resource_id: Some(resource_id),
            patient_id: Some(patient_id),
        },
    )
}

/// A record response that carries the flags on its record.
pub trait CarriesFlags {
    fn record_id(&self) -> &str;
    fn set_flags(&mut self, flags: Vec<FlagResponse>);
}

/// Fills in the flags of each response, in one query.
pub fn with_flags<T: CarriesFlags>(
    conn: &mut DbConnection,
    mut items: Vec<T>,
) -> Result<Vec<T>, StoreError> {
    let ids: Vec<String> = items.iter().map(|i| i.record_id().to_owned()).collect();
    let mut by_record = flags_by_record(conn, &ids)?;
    for item in &mut items {
        let flags = by_record.remove(item.record_id()).unwrap_or_default();
        item.set_flags(flags);
    }
    Ok(items)
}

/// One response with its flags.
pub fn one_with_flags<T: CarriesFlags>(conn: &mut DbConnection, item: T) -> Result<T, StoreError> {
    Ok(with_flags(conn, vec![item])?.remove(0))
}

/// A created record with its flags, and whether it was created now or replayed.
pub fn created_with_flags<R, T: From<R> + CarriesFlags>(
    conn: &mut DbConnection,
    creation: Creation<R>,
) -> Result<(bool, T), StoreError> {
    let (created, row) = match creation {
        Creation::Created(row) => (true, row),
        Creation::Replayed(row) => (false, row),
    };
    Ok((created, one_with_flags(conn, T::from(row))?))
}

/// 201 for a record created now, 200 for a replayed create.
pub fn created_or_replayed_response<T: Serialize>(
    (created, body): (bool, T),
) -> actix_web::HttpResponse {
    if created {
        actix_web::HttpResponse::Created().json(body)
    } else {
        actix_web::HttpResponse::Ok().json(body)
    }
}

macro_rules! carries_flags {
    ($($response:ty),+) => {$(
        impl $crate::api::records::CarriesFlags for $response {
            fn record_id(&self) -> &str {
                &self.id
            }
            fn set_flags(&mut self, flags: Vec<$crate::api::flags::FlagResponse>) {
                self.flags = flags;
            }
        }
    )+};
}
pub(crate) use carries_flags;

/// The shape of a store function that lists one patient's records.
pub type ListFn<R> = fn(&mut DbConnection, &str, &Window, &Page) -> Result<Vec<R>, StoreError>;

/// Lists one patient's records of a kind, within the caller's scope, audited, with flags: by
/// their own time, or by change for sync.
pub async fn list_of_patient<R, T>(
    caller: Caller,
    patient_id: String,
    (query, page): (&RecordQuery, &PageQuery),
    ctx: RequestContext,
    db: &Db,
    action: &'static str,
    list: ListFn<R>,
) -> Result<actix_web::HttpResponse, ApiError>
where
    R: Timed,
    T: From<R> + CarriesFlags + Serialize + Send + 'static,
{
    let scope = caller.clinical_scope()?;
    let (window, page) = query.window_and_page(page)?;
    let change_order = by_change(&window);
    let paged = db
        .transaction(move |conn| -> Result<_, StoreError> {
            patients::find(conn, &scope, &patient_id)?;
            let rows = list(conn, &patient_id, &window, &page)?;
            audit::record(
                conn,
                &patient_event(&ctx, &caller, action, "patient", &patient_id, &patient_id),
            )?;
            let paged = Paged::from_rows(
                rows,
                &page,
                |r| {
                    (
                        if change_order {
                            r.updated_at()
                        } else {
                            r.own_time()
                        },
                        r.id(),
                    )
                },
                T::from,
            );
            Ok(Paged {
                items: with_flags(conn, paged.items)?,
                ..paged
            })
        })
        .await?;
    Ok(actix_web::HttpResponse::Ok().json(paged))
}

/// Reads one record within the caller's scope, audited, with its flags.
pub async fn read_one<R, T>(
    caller: Caller,
    id: String,
    ctx: RequestContext,
    db: &Db,
    (action, resource_type): (&'static str, &'static str),
    find: fn(&mut DbConnection, &Scope, &str) -> Result<R, StoreError>,
) -> Result<T, ApiError>
where
    R: Correctable,
    T: From<R> + CarriesFlags + Send + 'static,
{
    let scope = caller.clinical_scope()?;
    Ok(db
        .transaction(move |conn| -> Result<_, StoreError> {
            let row = find(conn, &scope, &id)?;
            audit::record(
                conn,
                &patient_event(&ctx, &caller, action, resource_type, &id, row.patient_id()),
            )?;
            one_with_flags(conn, T::from(row))
        })
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// RFC 7396's own examples.
    #[test]
    fn merge_patch_follows_rfc_7396() {
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": "b"}),
                json!({"b": "c"}),
                json!({"a": "b", "b": "c"}),
            ),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (
                json!({"a": {"b": "c"}}),
                json!({"a": {"b": "d", "c": null}}),
                json!({"a": {"b": "d"}}),
            ),
            (
                json!({"a": [{"b": "c"}]}),
                json!({"a": [1]}),
                json!({"a": [1]}),
            ),
            (
                json!({"e": null}),
                json!({"a": 1}),
                json!({"e": null, "a": 1}),
            ),
        ];
        for (mut target, patch, expected) in cases {
            merge_patch(&mut target, &patch);
            assert_eq!(target, expected);
        }
    }

    /// issue 12 (10): a key given twice, at the top or deeper, is refused, not read as its
    /// last value.
    #[test]
    fn a_merge_patch_refuses_a_repeated_key() {
        let read = |text: &str| serde_json::from_str::<MergePatch>(text).map_err(|e| e.to_string());
        let top = read(r#"{"research_consent": false, "research_consent": true}"#).unwrap_err();
        assert!(
            top.starts_with("duplicate field `research_consent`"),
            "{top}"
        );
        let nested =
            read(r#"{"measurement_plan": {"daily_mood": true, "daily_mood": false}}"#).unwrap_err();
        assert!(
            nested.starts_with("duplicate field `daily_mood`"),
            "{nested}"
        );
        let in_list = read(r#"{"risk_factors": [{"factor": "x", "factor": "y"}]}"#).unwrap_err();
        assert!(in_list.starts_with("duplicate field `factor`"), "{in_list}");
        assert!(read("[1]").is_err());
        let ok = read(r#"{"a": {"b": [1, 2.5, "c", null, true]}, "d": null}"#).unwrap();
        assert_eq!(
            serde_json::Value::Object(ok.0),
            json!({"a": {"b": [1, 2.5, "c", null, true]}, "d": null})
        );
    }

    #[test]
    fn the_body_hash_tells_bodies_apart() {
        assert_eq!(body_hash(&json!({"a": 1})), body_hash(&json!({"a": 1})));
        assert_ne!(body_hash(&json!({"a": 1})), body_hash(&json!({"a": 2})));
    }
}
