//! Cursor pagination (api.md, Conventions): `?limit=` 1–500, default 50, and an opaque
//! `?cursor=` that encodes the `(time, id)` of the last item of the previous page.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;
use crate::store::Page;

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
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (micros, id) = text.split_once('|').ok_or_else(bad)?;
    // Ids this server issues are UUIDs, with a level rank in front on the worklist.
    if id.is_empty()
        || id.len() > 64
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-:".contains(c))
    {
        return Err(bad());
    }
    let micros: i64 = micros.parse().map_err(|_| bad())?;
    let at = chrono::DateTime::from_timestamp_micros(micros).ok_or_else(bad)?;
    Ok((at.naive_utc(), id.to_owned()))
}

fn encode(at: NaiveDateTime, id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}|{id}", at.and_utc().timestamp_micros()))
}

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Paged<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Paged<T> {
    /// Builds the page from rows fetched with [`PageQuery::page`] (one more than the limit).
    pub fn from_rows<R>(
        mut rows: Vec<R>,
        page: &Page,
        key: impl Fn(&R) -> (NaiveDateTime, &str),
        to_item: impl Fn(R) -> T,
    ) -> Self {
        let limit = usize::try_from(page.limit - 1).unwrap_or(0);
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next_cursor = rows.last().filter(|_| more).map(|r| {
            let (at, id) = key(r);
            encode(at, id)
        });
        Self {
            items: rows.into_iter().map(to_item).collect(),
            next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_a_forged_one_is_refused() {
        let at = chrono::DateTime::from_timestamp_micros(1_800_000_000_123_456)
            .unwrap()
            .naive_utc();
        let cursor = encode(at, "abc");
        assert_eq!(decode(&cursor).unwrap(), (at, "abc".to_owned()));
        let nul = URL_SAFE_NO_PAD.encode("1800000000|a\u{0}b");
        for bad in ["", "!!", "bm9waXBl", &URL_SAFE_NO_PAD.encode("x|y"), &nul] {
            assert!(decode(bad).is_err(), "{bad}");
        }
    }
}
