//! The wire forms every resource shares (api.md, Conventions): cursor pages, the list window
//! (a time range, or sync by change), JSON merge patches for changes, the correction of a
//! record entered in error, the hash behind idempotent creates, and the answers to a create
//! (201, or 200 for a replay) and to a versioned read or change (with its ETag).

use actix_web::http::header;
use actix_web::HttpResponse;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};

use crate::api::extract::Patch;
use crate::call::Call;
use crate::clock;
use crate::domain::ids::PatientId;
use crate::domain::text::{self, Shape};
use crate::domain::time;
use crate::error::{self, ApiError};
use crate::records::{self, Created, Kind};
use crate::store::{Page, Position, TimeRange, Window};

/// SHA-256 of a create request as the server understood it: a retry with the same body has
/// the same hash, a different body a different one.
pub fn body_hash<T: Serialize>(body: &T) -> String {
    let canonical = serde_json::to_vec(body).unwrap_or_default();
    hex::encode(Sha256::digest(canonical))
}

/// 201 for a record created now, 200 for a replayed create.
pub fn created<T, U: Serialize>(created: Created<T>, shown: impl FnOnce(T) -> U) -> HttpResponse {
    match created {
        Created::Now(t) => HttpResponse::Created().json(shown(t)),
        Created::Replayed(t) => HttpResponse::Ok().json(shown(t)),
    }
}

/// A changeable record's read or change, with its version as a strong entity tag: send it
/// back as If-Match.
pub fn versioned<T: Serialize>(version: i32, body: T) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::ETAG, format!("\"{version}\"")))
        .json(body)
}

/// One page of a patient's records of a kind, each as `T` shows it: by their own time, or by
/// change for sync. One function for every kind's list (and the patient's own, `/v1/me/…`).
pub async fn list_of<R, T>(
    call: &Call,
    patient: PatientId,
    query: &RecordQuery,
    page: &PageQuery,
) -> Result<HttpResponse, ApiError>
where
    R: Kind,
    R::View: AsRef<R>,
    T: From<R::View> + Serialize,
{
    let (window, page) = query.window_and_page(page)?;
    let (views, window) = records::list::<R>(call, patient, window, page.clone()).await?;
    let keys = |v: &R::View| {
        let r = v.as_ref();
        ListKeys {
            own_time: r.own_time(),
            change_seq: r.change_seq(),
            id: r.id().to_string(),
        }
    };
    let paged = Paged::in_window(views, &page, &window, keys, T::from);
    Ok(HttpResponse::Ok().json(paged))
}

/// Cursor pagination (api.md, Conventions): `?limit=` 1–500, default 50, and an opaque
/// `?cursor=` that encodes the `(time, id)` of the last item of the previous page.
pub const DEFAULT_LIMIT: u16 = 50;
pub const MAX_LIMIT: u16 = 500;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page, 1–500.
    #[param(minimum = 1, maximum = 500, default = 50)]
    pub limit: Option<u16>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

impl PageQuery {
    pub fn page(&self) -> Result<Page, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::invalid("limit", "must be from 1 to 500"));
        }
        // An empty `cursor=` is what a client sends for "no cursor yet": the first page.
        let after = (self.cursor.as_deref())
            .filter(|c| !c.is_empty())
            .map(decode)
            .transpose()?;
        // One more than asked for tells whether another page follows.
        Ok(Page {
            limit: i64::from(limit) + 1,
            after,
        })
    }
}

fn decode(cursor: &str) -> Result<(NaiveDateTime, String), ApiError> {
    let bad = || ApiError::invalid("cursor", "is not a cursor this server issued");
    let (micros, id) = cursor_parts(cursor).ok_or_else(bad)?;
    let id = id.filter(|id| is_issued_id(id)).ok_or_else(bad)?;
    let micros: i64 = micros.parse().map_err(|_| bad())?;
    let at = chrono::DateTime::from_timestamp_micros(micros).ok_or_else(bad)?;
    // Within the instants a query may name: PostgreSQL refuses a timestamp before 4713 BC.
    time::query_bound("cursor", at).map_err(|_| bad())?;
    Ok((at.naive_utc(), id))
}

fn encode(at: NaiveDateTime, id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}|{id}", at.and_utc().timestamp_micros()))
}

/// A cursor's two parts, `key|id`: the id none when empty.
fn cursor_parts(cursor: &str) -> Option<(String, Option<String>)> {
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).ok()?).ok()?;
    let (key, id) = text.split_once('|')?;
    Some((key.to_owned(), (!id.is_empty()).then(|| id.to_owned())))
}

/// Ids this server issues are UUIDs, with a level rank in front on the worklist.
fn is_issued_id(id: &str) -> bool {
    id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-:".contains(c))
}

/// A sync position as a cursor: `sync-`, then the change position and the id.
fn encode_position(position: &Position) -> String {
    let id = position.id.as_deref().unwrap_or_default();
    let key = URL_SAFE_NO_PAD.encode(format!("{}|{id}", position.change_seq));
    format!("{SYNC_CURSOR}{key}")
}

const SYNC_CURSOR: &str = "sync-";

fn decode_position(cursor: &str) -> Option<Position> {
    let (key, id) = cursor_parts(cursor.strip_prefix(SYNC_CURSOR)?)?;
    let change_seq = key.parse().ok()?;
    if id.as_deref().is_some_and(|id| !is_issued_id(id)) {
        return None;
    }
    Some(Position { change_seq, id })
}

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Paged<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; null on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
    /// Sync lists only (`updated_since` given): pass as `updated_since` on the next sync to
    /// get every change after this page, committed in any order — on the last page, after
    /// everything committed so far. Keep it even when `items` is empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub sync_cursor: Option<String>,
}

/// What a listed record is paged by: its own time for a range, its change position for sync.
pub struct ListKeys {
    pub own_time: NaiveDateTime,
    pub change_seq: i64,
    pub id: String,
}

impl<T> Paged<T> {
    /// Builds the page from rows fetched with [`PageQuery::page`] (one more than the limit).
    pub fn from_rows<R>(
        mut rows: Vec<R>,
        page: &Page,
        key: impl Fn(&R) -> (NaiveDateTime, String),
        to_item: impl Fn(R) -> T,
    ) -> Self {
        let more = truncated(&mut rows, page);
        let next_cursor = rows.last().filter(|_| more).map(|r| {
            let (at, id) = key(r);
            encode(at, &id)
        });
        Self {
            items: rows.into_iter().map(to_item).collect(),
            next_cursor,
            sync_cursor: None,
        }
    }

    /// Builds the page of a list read in `window` (as the store fixed it): by own time for a
    /// range; for a sync by change position, with the position to sync on from.
    pub fn in_window<R>(
        mut rows: Vec<R>,
        page: &Page,
        window: &Window,
        keys: impl Fn(&R) -> ListKeys,
        to_item: impl Fn(R) -> T,
    ) -> Self {
        let Window::Changes { after, horizon, .. } = window else {
            let key = |r: &R| {
                let keys = keys(r);
                (keys.own_time, keys.id)
            };
            return Self::from_rows(rows, page, key, to_item);
        };
        let more = truncated(&mut rows, page);
        let last = rows.last().map(|r| {
            let keys = keys(r);
            Position {
                change_seq: keys.change_seq,
                id: Some(keys.id),
            }
        });
        // Past the horizon once everything below it has been given, so the next sync starts
        // there; an unfixed window (never, from the store) keeps to what it has seen.
        let reached = horizon.filter(|_| !more).map(|horizon| Position {
            change_seq: horizon - 1,
            id: None,
        });
        let kept = after.clone();
        Self {
            items: rows.into_iter().map(to_item).collect(),
            next_cursor: last.as_ref().filter(|_| more).map(encode_position),
            sync_cursor: reached.or(last).or(kept).as_ref().map(encode_position),
        }
    }
}

/// Keeps the first `page.limit - 1` rows; whether there were more.
fn truncated<R>(rows: &mut Vec<R>, page: &Page) -> bool {
    let limit = usize::try_from(page.limit - 1).unwrap_or(0);
    let more = rows.len() > limit;
    rows.truncate(limit);
    more
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecordQuery {
    /// Records whose own time (taken, started, onset) is at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Records whose own time is before this instant.
    pub to: Option<DateTime<Utc>>,
    /// Sync: the records created or changed since — the `sync_cursor` of an earlier sync
    /// (never misses a change, whatever order writes commit in), or an RFC 3339 instant (a
    /// first sync) — entered-in-error ones included and marked `deleted`, in order of change.
    /// Page on with `cursor`, or with `sync_cursor`.
    #[param(
        example = "2026-10-01T08:00:00Z",
        pattern = r"^(sync-[A-Za-z0-9_-]+|[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9:.]+([Zz]|[+-][0-9]{2}:[0-9]{2}))$"
    )]
    pub updated_since: Option<String>,
}

impl RecordQuery {
    /// The time range `[from, to)` as stored, and the page: for a list in the records' own
    /// time order.
    pub fn range_and_page(&self, page: &PageQuery) -> Result<(TimeRange, Page), ApiError> {
        let range = time::Range::parse(self.from, self.to)?;
        let stored = TimeRange {
            from: range.from.map(clock::to_db),
            to: range.to.map(clock::to_db),
        };
        Ok((stored, page.page()?))
    }

    /// The window and the page: for a sync, `cursor` moves the window's position on.
    pub fn window_and_page(&self, page: &PageQuery) -> Result<(Window, Page), ApiError> {
        let Some(since) = self.updated_since.as_deref() else {
            let (range, page) = self.range_and_page(page)?;
            return Ok((Window::Range(range), page));
        };
        if self.from.is_some() || self.to.is_some() {
            return Err(ApiError::invalid(
                "updated_since",
                "cannot be combined with from or to",
            ));
        }
        // A first sync from an instant keeps to it on every page, so records unchanged since
        // (those from before positions existed among them) never join a later page.
        let (changed_after, mut after) = match sync_start(since)? {
            SyncStart::At(at) => (Some(at), None),
            SyncStart::After(position) => (None, Some(position)),
        };
        let paged = PageQuery {
            limit: page.limit,
            cursor: None,
        };
        if let Some(cursor) = page.cursor.as_deref().filter(|c| !c.is_empty()) {
            let bad = || ApiError::invalid("cursor", "is not a cursor of this sync");
            after = Some(decode_position(cursor).ok_or_else(bad)?);
        }
        let window = Window::Changes {
            changed_after,
            after,
            horizon: None,
        };
        Ok((window, paged.page()?))
    }
}

/// Where a sync starts: after a position an earlier sync answered with, or after an instant.
enum SyncStart {
    After(Position),
    At(NaiveDateTime),
}

/// `updated_since` read: a sync cursor, or an RFC 3339 instant.
fn sync_start(since: &str) -> Result<SyncStart, ApiError> {
    if let Some(position) = decode_position(since) {
        return Ok(SyncStart::After(position));
    }
    let bad = || {
        ApiError::invalid(
            "updated_since",
            "must be a sync_cursor this server issued or an RFC 3339 instant",
        )
    };
    let at = DateTime::parse_from_rfc3339(since).map_err(|_| bad())?;
    let at = at.with_timezone(&Utc);
    time::query_bound("updated_since", at)?;
    Ok(SyncStart::At(clock::to_db(at)))
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
    /// The patch as the JSON object it was sent as.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::Value::Object(self.0.clone())
    }
}

/// A create request whose record a merge patch may change; `PATCH` names the patch's schema
/// in the contract (derived from the create request's by `openapi::MergePatches`).
pub trait Patchable: Serialize + for<'de> Deserialize<'de> {
    const PATCH: &'static str;
}

/// Applies a merge patch to the request form of a stored record and reads it back as that
/// request type, so a change is checked by the same rules as a create. The patch has met its
/// schema as it was read ([`crate::api::extract::Patch`]), every bad field named at once; what
/// is left to fail here is a rule of the merged whole.
pub fn patched<T: Patchable>(current: &T, patch: &Patch<T>) -> Result<T, ApiError> {
    let mut value = serde_json::to_value(current).map_err(|e| ApiError::Internal(Box::new(e)))?;
    merge_patch(&mut value, &patch.changes().to_value());
    serde_json::from_value(value)
        .map_err(|e| ApiError::Validation(vec![error::field_error_from_serde(&e)]))
}

/// Distinguishes a field sent as null (`Some(None)`) from a field not sent (`None`): in a
/// patch, null clears.
pub fn present<'de, D: serde::Deserializer<'de>, T: serde::Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_cursor_round_trips_and_a_forged_one_is_refused() {
        let at = chrono::DateTime::from_timestamp_micros(1_800_000_000_123_456)
            .unwrap()
            .naive_utc();
        let cursor = encode(at, "abc");
        assert_eq!(decode(&cursor).unwrap(), (at, "abc".to_owned()));
        let nul = URL_SAFE_NO_PAD.encode("1800000000|a\u{0}b");
        // Before 4713 BC, which PostgreSQL cannot compare with (a 500 once).
        let ancient = URL_SAFE_NO_PAD.encode("-300000000000000000|abc");
        for bad in [
            "",
            "!!",
            "bm9waXBl",
            &URL_SAFE_NO_PAD.encode("x|y"),
            &nul,
            &ancient,
        ] {
            assert!(decode(bad).is_err(), "{bad}");
        }
    }

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
