//! Rows → `COPY ... FROM STDIN` (text format), the fastest way into PostgreSQL.
//!
//! The row types of `authtrail_projections::rows` serialise with their column names as field
//! names; this module turns a slice of them into COPY text for the columns the rows carry, asking
//! the catalog once per table and process how each column is typed (array, JSON, or a scalar
//! whose text form PostgreSQL parses itself). One encoder serves every table.

use serde::Serialize;
use serde_json::Value;
use sqlx::PgConnection;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock};

/// How a column's values are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A PostgreSQL array (`text[]`): `{"a","b"}`.
    Array,
    /// `json`/`jsonb`: the value's JSON text.
    Json,
    /// Anything else: the value's text (strings as they are, booleans `t`/`f`, numbers).
    Scalar,
}

/// How [`copy_rows`]'s own refusals begin (an `sqlx::Error::Protocol` message), so callers
/// can tell rows that cannot be encoded from a broken connection.
pub const ENCODING_ERROR: &str = "cannot encode rows";

type Layout = Arc<Vec<(String, Kind)>>;

/// Column names and kinds of `table`, from the catalog (cached: migrations fix them while the
/// process runs). `table` is resolved through the connection's `search_path`.
async fn layout(conn: &mut PgConnection, table: &str) -> Result<Layout, sqlx::Error> {
    static CACHE: OnceLock<Mutex<HashMap<String, Layout>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(l) = cache.lock().expect("layout cache").get(table) {
        return Ok(l.clone());
    }
    let rows: Vec<(String, bool, bool)> = sqlx::query_as(
        "SELECT a.attname::text, t.typcategory = 'A', t.typname IN ('json', 'jsonb')
         FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
         WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
         ORDER BY a.attnum",
    )
    .bind(table)
    .fetch_all(&mut *conn)
    .await?;
    let l: Layout = Arc::new(
        rows.into_iter()
            .map(|(name, array, json)| {
                let kind = match (array, json) {
                    (true, _) => Kind::Array,
                    (_, true) => Kind::Json,
                    _ => Kind::Scalar,
                };
                (name, kind)
            })
            .collect(),
    );
    cache
        .lock()
        .expect("layout cache")
        .insert(table.to_owned(), l.clone());
    Ok(l)
}

/// Writes `rows` into `table` with one `COPY`. Every row must serialise to an object whose
/// members are columns of `table`; columns no row names keep their defaults.
pub async fn copy_rows<T: Serialize>(
    conn: &mut PgConnection,
    table: &str,
    rows: impl IntoIterator<Item = T>,
) -> Result<usize, sqlx::Error> {
    let objects: Vec<serde_json::Map<String, Value>> = rows
        .into_iter()
        .map(|r| match serde_json::to_value(r) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(other) => Err(format!("row is not an object: {other}")),
            Err(e) => Err(e.to_string()),
        })
        .collect::<Result<_, _>>()
        .map_err(|e| sqlx::Error::Protocol(format!("{ENCODING_ERROR} for {table}: {e}")))?;
    let Some(first) = objects.first() else {
        return Ok(0);
    };
    let layout = layout(conn, table).await?;
    let columns: Vec<(&str, Kind)> = layout
        .iter()
        .filter(|(name, _)| first.contains_key(name))
        .map(|(n, k)| (n.as_str(), *k))
        .collect();
    if let Some(unknown) = first.keys().find(|k| !columns.iter().any(|(c, _)| c == k)) {
        return Err(sqlx::Error::Protocol(format!(
            "{ENCODING_ERROR} for {table}: field {unknown} is not a column"
        )));
    }
    let mut text = String::with_capacity(objects.len() * 256);
    for object in &objects {
        for (i, (name, kind)) in columns.iter().enumerate() {
            if i > 0 {
                text.push('\t');
            }
            encode(&mut text, object.get(*name).unwrap_or(&Value::Null), *kind).map_err(|e| {
                sqlx::Error::Protocol(format!("{ENCODING_ERROR} for {table}.{name}: {e}"))
            })?;
        }
        text.push('\n');
    }
    let list: Vec<String> = columns.iter().map(|(n, _)| format!("\"{n}\"")).collect();
    let mut copy = conn
        .copy_in_raw(&format!("COPY {table} ({}) FROM STDIN", list.join(", ")))
        .await?;
    if let Err(e) = copy.send(text.into_bytes()).await {
        let _ = copy.abort("send failed").await;
        return Err(e);
    }
    let n = copy.finish().await?;
    Ok(n as usize)
}

/// Appends one value in COPY text format.
fn encode(out: &mut String, v: &Value, kind: Kind) -> Result<(), String> {
    match (v, kind) {
        (Value::Null, _) => out.push_str("\\N"),
        (_, Kind::Json) => escape(out, &v.to_string()),
        (Value::Array(items), Kind::Array) => {
            let mut lit = String::from("{");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    lit.push(',');
                }
                match item {
                    Value::Null => lit.push_str("NULL"),
                    Value::String(s) => {
                        lit.push('"');
                        for c in s.chars() {
                            if c == '"' || c == '\\' {
                                lit.push('\\');
                            }
                            lit.push(c);
                        }
                        lit.push('"');
                    }
                    Value::Bool(b) => lit.push_str(if *b { "t" } else { "f" }),
                    Value::Number(n) => {
                        let _ = write!(lit, "{n}");
                    }
                    _ => return Err("nested arrays and objects are not array elements".into()),
                }
            }
            lit.push('}');
            escape(out, &lit);
        }
        (Value::String(s), Kind::Scalar) => escape(out, s),
        (Value::Bool(b), Kind::Scalar) => out.push(if *b { 't' } else { 'f' }),
        (Value::Number(n), Kind::Scalar) => {
            let _ = write!(out, "{n}");
        }
        (other, _) => return Err(format!("cannot write {other} into this column")),
    }
    Ok(())
}

/// COPY text escaping: backslash and the three separators.
fn escape(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn enc(v: Value, k: Kind) -> String {
        let mut s = String::new();
        encode(&mut s, &v, k).unwrap();
        s
    }

    #[test]
    fn encodes_each_kind() {
        assert_eq!(enc(json!(null), Kind::Scalar), "\\N");
        assert_eq!(enc(json!("a\tb\\c\nd"), Kind::Scalar), "a\\tb\\\\c\\nd");
        assert_eq!(enc(json!(true), Kind::Scalar), "t");
        assert_eq!(enc(json!(1.5), Kind::Scalar), "1.5");
        assert_eq!(
            enc(json!(["x", "y\"z"]), Kind::Array),
            "{\"x\",\"y\\\\\"z\"}"
        );
        assert_eq!(enc(json!([]), Kind::Array), "{}");
        assert_eq!(enc(json!({"k": "v\n"}), Kind::Json), "{\"k\":\"v\\\\n\"}");
        assert_eq!(enc(json!([1, 2]), Kind::Json), "[1,2]");
        let mut s = String::new();
        assert!(encode(&mut s, &json!({"a": 1}), Kind::Scalar).is_err());
    }
}
