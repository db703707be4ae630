//! Keyset (cursor) pagination: every list is ordered by `(time DESC, key ASC)` — an immutable
//! timestamp and a unique key — and a page continues strictly after the last row of the previous
//! one. Rows inserted while a client pages never shift a boundary: each row that existed when
//! paging began is returned exactly once, whatever is inserted meanwhile.
//!
//! The cursor is opaque to clients (base64url of a small JSON value) and names the list it
//! belongs to, so a cursor from one list is refused by another.

use crate::server::ApiError;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{Postgres, QueryBuilder};
use utoipa::ToSchema;

/// Rows per page when `limit` is absent.
const DEFAULT_LIMIT: u32 = 50;
/// Most rows per page.
pub(crate) const MAX_LIMIT: u32 = 500;

/// A position in a list: the last row's time and key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The list this cursor belongs to.
    #[serde(rename = "l")]
    pub list: String,
    #[serde(rename = "t")]
    pub time: DateTime<Utc>,
    #[serde(rename = "k")]
    pub key: String,
}

impl Cursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).expect("a cursor serialises"))
    }

    /// Decodes a cursor of `list`; anything else is a 400 naming `cursor`. Public only for the
    /// fuzz tests (`tests/security/input/fuzz.rs`).
    #[doc(hidden)]
    pub fn decode(list: &str, s: &str) -> Result<Cursor, ApiError> {
        let bad = || {
            ApiError::param(
                "cursor",
                "not a cursor of this list; use next_cursor as given",
            )
        };
        let bytes = URL_SAFE_NO_PAD.decode(s.as_bytes()).map_err(|_| bad())?;
        let c: Cursor = serde_json::from_slice(&bytes).map_err(|_| bad())?;
        if c.list != list {
            return Err(bad());
        }
        Ok(c)
    }
}

/// The page size and position a list request asked for.
#[derive(Debug, Clone)]
pub(crate) struct PageRequest {
    limit: u32,
    after: Option<Cursor>,
}

impl PageRequest {
    /// Validates `limit` (1..=500, default 50) and decodes `cursor` for `list`.
    pub(crate) fn new(
        list: &str,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<Self, ApiError> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::param(
                "limit",
                format!("must be between 1 and {MAX_LIMIT}"),
            ));
        }
        let after = cursor
            .filter(|c| !c.is_empty())
            .map(|c| Cursor::decode(list, c))
            .transpose()?;
        Ok(PageRequest { limit, after })
    }

    /// Appends ` AND <keyset condition> ORDER BY ... LIMIT n+1` for columns `time_col`, `key_col`
    /// (the query must already have a `WHERE`). `key_cast` casts the bound key (e.g. `::uuid`).
    pub(crate) fn push_order(
        &self,
        q: &mut QueryBuilder<'_, Postgres>,
        time_col: &str,
        key_col: &str,
        key_cast: &str,
    ) {
        if let Some(c) = &self.after {
            // The first conjunct is an index range condition; the second breaks ties by key.
            q.push(format_args!(" AND {time_col} <= "))
                .push_bind(c.time)
                .push(format_args!(" AND ({time_col} < "))
                .push_bind(c.time)
                .push(format_args!(" OR {key_col} > "))
                .push_bind(c.key.clone())
                .push(format_args!("{key_cast})"));
        }
        q.push(format_args!(
            " ORDER BY {time_col} DESC, {key_col} ASC LIMIT "
        ))
        .push_bind(i64::from(self.limit) + 1);
    }

    /// Cuts the extra row fetched and makes the next cursor from the last row kept.
    pub(crate) fn page<T>(
        &self,
        list: &str,
        mut rows: Vec<T>,
        position: impl Fn(&T) -> (DateTime<Utc>, String),
    ) -> Page<T> {
        let more = rows.len() > self.limit as usize;
        rows.truncate(self.limit as usize);
        let next_cursor = if more {
            rows.last().map(|r| {
                let (time, key) = position(r);
                Cursor {
                    list: list.to_owned(),
                    time,
                    key,
                }
                .encode()
            })
        } else {
            None
        };
        Page {
            items: rows,
            next_cursor,
        }
    }
}

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Page<T> {
    pub(crate) items: Vec<T>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_belong_to_one_list() {
        let c = Cursor {
            list: "sessions".into(),
            time: "2026-11-25T10:00:00.123456Z".parse().unwrap(),
            key: "sess_1".into(),
        };
        let s = c.encode();
        assert_eq!(Cursor::decode("sessions", &s).unwrap(), c);
        assert_eq!(
            Cursor::decode("login_history", &s).unwrap_err().status(),
            400
        );
        assert_eq!(Cursor::decode("sessions", "%%%").unwrap_err().status(), 400);
        assert_eq!(
            Cursor::decode("sessions", &URL_SAFE_NO_PAD.encode(b"{}"))
                .unwrap_err()
                .status(),
            400
        );
    }

    #[test]
    fn limit_is_bounded() {
        assert_eq!(PageRequest::new("x", None, None).unwrap().limit, 50);
        assert_eq!(PageRequest::new("x", Some(500), None).unwrap().limit, 500);
        assert!(PageRequest::new("x", Some(0), None).is_err());
        assert!(PageRequest::new("x", Some(501), None).is_err());
    }

    #[test]
    fn a_page_cuts_the_probe_row_and_points_past_the_last_kept() {
        let rows: Vec<(i64, &str)> = vec![(3, "a"), (2, "b"), (1, "c")];
        let req = PageRequest::new("x", Some(2), None).unwrap();
        let t = |s: i64| DateTime::<Utc>::from_timestamp(s, 0).unwrap();
        let page = req.page("x", rows.clone(), |r| (t(r.0), r.1.to_owned()));
        assert_eq!(page.items, vec![(3, "a"), (2, "b")]);
        let next = Cursor::decode("x", page.next_cursor.as_deref().unwrap()).unwrap();
        assert_eq!((next.time, next.key.as_str()), (t(2), "b"));
        let last = PageRequest::new("x", Some(3), None)
            .unwrap()
            .page("x", rows, |r| (t(r.0), r.1.to_owned()));
        assert!(last.next_cursor.is_none());
    }
}
