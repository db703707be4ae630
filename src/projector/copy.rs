//! Rows → `COPY ... FROM STDIN` (text format), the fastest way into PostgreSQL.
//!
//! The row types of `authtrail_projections::rows` serialise with their column names as field
//! names; this module writes them straight into COPY text with a serde serializer of its own
//! (no intermediate JSON values: that detour was a quarter of the worker's CPU in `perf`). The
//! catalog says once per table and process how each column is typed (array, JSON, or a scalar
//! whose text form PostgreSQL parses itself). One encoder serves every table.
//!
//! Rows go out in chunks while the next ones are encoded, so PostgreSQL parses and indexes one
//! chunk while the worker encodes the next.

use serde::ser::{self, Impossible, Serialize};
use sqlx::PgConnection;
use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::sync::{Arc, Mutex, OnceLock};

/// How a column's values are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A PostgreSQL array (`text[]`): `{"a","b"}`.
    Array,
    /// `json`/`jsonb`: the value's JSON text (JSON `null` is SQL `NULL`).
    Json,
    /// Anything else: the value's text (strings as they are, booleans `t`/`f`, numbers).
    Scalar,
}

/// How [`copy_rows`]'s own refusals begin (an `sqlx::Error::Protocol` message), so callers
/// can tell rows that cannot be encoded from a broken connection.
pub(crate) const ENCODING_ERROR: &str = "cannot encode rows";

/// COPY data is handed to the server in pieces of about this size.
const CHUNK: usize = 64 * 1024;

type Layout = Arc<HashMap<String, Kind>>;

/// Column kinds of `table` by name, from the catalog (cached: migrations fix them while the
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

fn refused(table: &str, e: impl fmt::Display) -> sqlx::Error {
    sqlx::Error::Protocol(format!("{ENCODING_ERROR} for {table}: {e}"))
}

/// Writes `rows` into `table` with one `COPY`. Every row must serialise to a struct or map
/// whose fields are columns of `table`, the same fields in the same order for every row;
/// columns no row names keep their defaults. A row that cannot be encoded aborts the `COPY`
/// (the transaction is then failed) with an error that [`ENCODING_ERROR`] starts.
pub(crate) async fn copy_rows<T: Serialize>(
    conn: &mut PgConnection,
    table: &str,
    rows: impl IntoIterator<Item = T>,
) -> Result<usize, sqlx::Error> {
    let mut rows = rows.into_iter().peekable();
    let Some(first) = rows.peek() else {
        return Ok(0);
    };
    let mut names = Names(vec![]);
    first.serialize(&mut names).map_err(|e| refused(table, e))?;
    let names = names.0;
    let layout = layout(conn, table).await?;
    let kinds: Vec<Kind> = names
        .iter()
        .map(|n| {
            layout
                .get(n)
                .copied()
                .ok_or_else(|| refused(table, format!("field {n} is not a column")))
        })
        .collect::<Result<_, _>>()?;
    let list: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    let mut copy = conn
        .copy_in_raw(&format!("COPY {table} ({}) FROM STDIN", list.join(", ")))
        .await?;
    let mut encoder = Encoder::new(&names, &kinds);
    let sent: Result<(), sqlx::Error> = async {
        for row in rows {
            encoder.row(&row).map_err(|e| refused(table, e))?;
            if encoder.out.len() >= CHUNK {
                copy.send(encoder.out.as_bytes()).await?;
                encoder.out.clear();
            }
        }
        if !encoder.out.is_empty() {
            copy.send(encoder.out.as_bytes()).await?;
        }
        Ok(())
    }
    .await;
    if let Err(e) = sent {
        let _ = copy.abort("the client could not send every row").await;
        return Err(e);
    }
    let n = copy.finish().await?;
    Ok(n as usize)
}

/// Encodes rows of one shape into COPY text.
struct Encoder<'a> {
    names: &'a [String],
    kinds: &'a [Kind],
    out: String,
    /// Scratch space for JSON text and array literals.
    scratch: Vec<u8>,
    lit: String,
}

impl<'a> Encoder<'a> {
    fn new(names: &'a [String], kinds: &'a [Kind]) -> Self {
        Encoder {
            names,
            kinds,
            out: String::with_capacity(CHUNK + CHUNK / 4),
            scratch: Vec::with_capacity(256),
            lit: String::with_capacity(64),
        }
    }

    /// Appends one row (a line). On error the buffer may hold part of it: the COPY is aborted.
    fn row<T: Serialize + ?Sized>(&mut self, row: &T) -> Result<(), Error> {
        let mut w = RowWriter {
            e: self,
            field: 0,
            key: String::new(),
        };
        row.serialize(&mut w)
    }

    /// Appends the value of field `i` (already named by the caller), after a separator.
    fn field<T: Serialize + ?Sized>(&mut self, i: usize, name: &str, v: &T) -> Result<(), Error> {
        match self.names.get(i) {
            Some(n) if n == name => {}
            Some(n) => return Err(Error(format!("field {name} where {n} was expected"))),
            None => return Err(Error(format!("field {name} beyond the first row's fields"))),
        }
        if i > 0 {
            self.out.push('\t');
        }
        let r = match self.kinds[i] {
            Kind::Scalar => v.serialize(Scalar {
                out: &mut self.out,
                in_array: false,
            }),
            Kind::Json => {
                self.scratch.clear();
                serde_json::to_writer(&mut self.scratch, v).map_err(|e| Error(e.to_string()))?;
                let text = std::str::from_utf8(&self.scratch).expect("serde_json writes UTF-8");
                if text == "null" {
                    self.out.push_str("\\N");
                } else {
                    escape(&mut self.out, text);
                }
                Ok(())
            }
            Kind::Array => {
                self.lit.clear();
                let r = v.serialize(Array {
                    lit: &mut self.lit,
                    started: false,
                });
                if r.is_ok() {
                    if self.lit.is_empty() {
                        self.out.push_str("\\N");
                    } else {
                        escape(&mut self.out, &self.lit);
                    }
                }
                r
            }
        };
        r.map_err(|e| Error(format!("{name}: {}", e.0)))
    }
}

/// The encoder's error: what could not be written, and where.
#[derive(Debug)]
struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl ser::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

fn cannot<T>(what: &str) -> Result<T, Error> {
    Err(Error(format!("cannot write {what} into this column")))
}

/// COPY text escaping: backslash and the three separators.
fn escape(out: &mut String, s: &str) {
    if !s.contains(['\\', '\n', '\r', '\t']) {
        out.push_str(s);
        return;
    }
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

/// A `fmt::Write` that escapes what it is given (for `collect_str`: times, dates).
struct Escaping<'a>(&'a mut String);

impl fmt::Write for Escaping<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        escape(self.0, s);
        Ok(())
    }
}

/// Collects a row's field names (the first row fixes the column list).
struct Names(Vec<String>);

/// Walks one row: a struct, or a map (what `#[serde(flatten)]` makes of one).
struct RowWriter<'e, 'a> {
    e: &'e mut Encoder<'a>,
    field: usize,
    key: String,
}

impl<'e, 'a> ser::SerializeStruct for &mut RowWriter<'e, 'a> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.e.field(self.field, key, value)?;
        self.field += 1;
        Ok(())
    }
    fn end(self) -> Result<(), Error> {
        end_row(self)
    }
}

impl<'e, 'a> ser::SerializeMap for &mut RowWriter<'e, 'a> {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        self.key.clear();
        key.serialize(Scalar {
            out: &mut self.key,
            in_array: false,
        })
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        let key = std::mem::take(&mut self.key);
        let r = self.e.field(self.field, &key, value);
        self.key = key;
        self.field += 1;
        r
    }
    fn end(self) -> Result<(), Error> {
        end_row(self)
    }
}

fn end_row(w: &mut RowWriter<'_, '_>) -> Result<(), Error> {
    if w.field != w.e.names.len() {
        return Err(Error(format!(
            "a row with {} fields where the first had {}",
            w.field,
            w.e.names.len()
        )));
    }
    w.e.out.push('\n');
    Ok(())
}

impl ser::SerializeStruct for &mut Names {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        _: &T,
    ) -> Result<(), Error> {
        self.0.push(key.to_owned());
        Ok(())
    }
    fn end(self) -> Result<(), Error> {
        Ok(())
    }
}

impl ser::SerializeMap for &mut Names {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        // A key is a field name: its text is the name (names need no escaping).
        let mut k = String::new();
        key.serialize(Scalar {
            out: &mut k,
            in_array: false,
        })?;
        self.0.push(k);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, _: &T) -> Result<(), Error> {
        Ok(())
    }
    fn end(self) -> Result<(), Error> {
        Ok(())
    }
}

/// A serializer's eight integer methods, each binding its value to `$v` and answering `$body`
/// (`self` is named by the caller, so that `$body` may use it).
macro_rules! integers {
    ($self:ident, $v:pat_param => $body:expr) => {
        integers!(@ $self, $v => $body; serialize_i8 i8, serialize_i16 i16, serialize_i32 i32,
            serialize_i64 i64, serialize_u8 u8, serialize_u16 u16, serialize_u32 u32,
            serialize_u64 u64);
    };
    (@ $self:ident, $v:pat_param => $body:expr; $($name:ident $t:ty),*) => {
        $(fn $name($self, $v: $t) -> Result<(), Error> {
            $body
        })*
    };
}

/// The serializer methods a row walker refuses (a row is a struct or a map, nothing else).
macro_rules! not_a_row {
    () => {
        fn serialize_bool(self, _: bool) -> Result<(), Error> {
            cannot("a boolean as a row")
        }
        integers!(self, _ => cannot("a number as a row"));
        fn serialize_f32(self, _: f32) -> Result<(), Error> {
            cannot("a number as a row")
        }
        fn serialize_f64(self, _: f64) -> Result<(), Error> {
            cannot("a number as a row")
        }
        fn serialize_char(self, _: char) -> Result<(), Error> {
            cannot("a string as a row")
        }
        fn serialize_str(self, _: &str) -> Result<(), Error> {
            cannot("a string as a row")
        }
        fn serialize_bytes(self, _: &[u8]) -> Result<(), Error> {
            cannot("bytes as a row")
        }
        fn serialize_none(self) -> Result<(), Error> {
            cannot("nothing as a row")
        }
        fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<(), Error> {
            v.serialize(self)
        }
        fn serialize_unit(self) -> Result<(), Error> {
            cannot("nothing as a row")
        }
        fn serialize_unit_struct(self, _: &'static str) -> Result<(), Error> {
            cannot("nothing as a row")
        }
        fn serialize_unit_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
        ) -> Result<(), Error> {
            cannot("a variant as a row")
        }
        fn serialize_newtype_struct<T: Serialize + ?Sized>(
            self,
            _: &'static str,
            v: &T,
        ) -> Result<(), Error> {
            v.serialize(self)
        }
        fn serialize_newtype_variant<T: Serialize + ?Sized>(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: &T,
        ) -> Result<(), Error> {
            cannot("a variant as a row")
        }
        fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Error> {
            cannot("a sequence as a row")
        }
        fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Error> {
            cannot("a tuple as a row")
        }
        fn serialize_tuple_struct(
            self,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeTupleStruct, Error> {
            cannot("a tuple as a row")
        }
        fn serialize_tuple_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeTupleVariant, Error> {
            cannot("a variant as a row")
        }
        fn serialize_struct_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeStructVariant, Error> {
            cannot("a variant as a row")
        }
    };
}

impl<'r, 'e, 'a> ser::Serializer for &'r mut RowWriter<'e, 'a> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Impossible<(), Error>;
    type SerializeTuple = Impossible<(), Error>;
    type SerializeTupleStruct = Impossible<(), Error>;
    type SerializeTupleVariant = Impossible<(), Error>;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Impossible<(), Error>;
    not_a_row!();
    fn serialize_map(self, _: Option<usize>) -> Result<Self, Error> {
        self.field = 0;
        Ok(self)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, Error> {
        self.field = 0;
        Ok(self)
    }
}

impl ser::Serializer for &mut Names {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Impossible<(), Error>;
    type SerializeTuple = Impossible<(), Error>;
    type SerializeTupleStruct = Impossible<(), Error>;
    type SerializeTupleVariant = Impossible<(), Error>;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Impossible<(), Error>;
    not_a_row!();
    fn serialize_map(self, _: Option<usize>) -> Result<Self, Error> {
        Ok(self)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, Error> {
        Ok(self)
    }
}

/// The serializer methods a value writer refuses by default.
macro_rules! refuse_compound {
    () => {
        type SerializeTuple = Impossible<(), Error>;
        type SerializeTupleStruct = Impossible<(), Error>;
        type SerializeTupleVariant = Impossible<(), Error>;
        type SerializeMap = Impossible<(), Error>;
        type SerializeStruct = Impossible<(), Error>;
        type SerializeStructVariant = Impossible<(), Error>;
        fn serialize_bytes(self, _: &[u8]) -> Result<(), Error> {
            cannot("bytes")
        }
        fn serialize_newtype_variant<T: Serialize + ?Sized>(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: &T,
        ) -> Result<(), Error> {
            cannot("a variant with data")
        }
        fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Error> {
            cannot("a tuple")
        }
        fn serialize_tuple_struct(
            self,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeTupleStruct, Error> {
            cannot("a tuple")
        }
        fn serialize_tuple_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeTupleVariant, Error> {
            cannot("a variant with data")
        }
        fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Error> {
            cannot("an object")
        }
        fn serialize_struct(
            self,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeStruct, Error> {
            cannot("an object")
        }
        fn serialize_struct_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeStructVariant, Error> {
            cannot("a variant with data")
        }
    };
}

/// Writes one scalar value in COPY text (`in_array`: as an element of an array literal,
/// before COPY escaping: strings quoted, `NULL` for nothing).
struct Scalar<'a> {
    out: &'a mut String,
    in_array: bool,
}

impl Scalar<'_> {
    fn null(self) -> Result<(), Error> {
        self.out
            .push_str(if self.in_array { "NULL" } else { "\\N" });
        Ok(())
    }
    fn display(self, v: impl fmt::Display) -> Result<(), Error> {
        let _ = write!(self.out, "{v}");
        Ok(())
    }
    fn text(self, s: &str) -> Result<(), Error> {
        if self.in_array {
            self.out.push('"');
            for c in s.chars() {
                if c == '"' || c == '\\' {
                    self.out.push('\\');
                }
                self.out.push(c);
            }
            self.out.push('"');
        } else {
            escape(self.out, s);
        }
        Ok(())
    }
}

impl ser::Serializer for Scalar<'_> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Impossible<(), Error>;
    refuse_compound!();
    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.out.push(if v { 't' } else { 'f' });
        Ok(())
    }
    integers!(self, v => self.display(v));
    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        self.serialize_f64(v as f64)
    }
    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        // As serde_json: a number that JSON cannot carry is no value.
        if v.is_finite() {
            self.display(v)
        } else {
            self.null()
        }
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.text(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.text(v)
    }
    fn collect_str<T: fmt::Display + ?Sized>(self, v: &T) -> Result<(), Error> {
        if self.in_array {
            self.text(&v.to_string())
        } else {
            let _ = write!(Escaping(self.out), "{v}");
            Ok(())
        }
    }
    fn serialize_none(self) -> Result<(), Error> {
        self.null()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<(), Error> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Error> {
        self.null()
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Error> {
        self.null()
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, v: &'static str) -> Result<(), Error> {
        self.text(v)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<(), Error> {
        v.serialize(self)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Error> {
        cannot("a sequence")
    }
}

/// Writes an array column's literal (`{"a","b"}`) before COPY escaping; leaves it empty for
/// nothing (SQL `NULL`).
struct Array<'a> {
    lit: &'a mut String,
    /// An element was written (the next one needs a comma).
    started: bool,
}

impl<'a> ser::SerializeSeq for Array<'a> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Error> {
        if self.started {
            self.lit.push(',');
        }
        self.started = true;
        v.serialize(Scalar {
            out: self.lit,
            in_array: true,
        })
    }
    fn end(self) -> Result<(), Error> {
        self.lit.push('}');
        Ok(())
    }
}

impl<'a> ser::Serializer for Array<'a> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Self;
    refuse_compound!();
    fn serialize_seq(self, _: Option<usize>) -> Result<Self, Error> {
        self.lit.push('{');
        Ok(Array {
            lit: self.lit,
            started: false,
        })
    }
    fn serialize_none(self) -> Result<(), Error> {
        Ok(())
    }
    fn serialize_unit(self) -> Result<(), Error> {
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<(), Error> {
        v.serialize(self)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<(), Error> {
        v.serialize(self)
    }
    fn serialize_bool(self, _: bool) -> Result<(), Error> {
        cannot("a boolean")
    }
    integers!(self, _ => cannot("a number"));
    fn serialize_f32(self, _: f32) -> Result<(), Error> {
        cannot("a number")
    }
    fn serialize_f64(self, _: f64) -> Result<(), Error> {
        cannot("a number")
    }
    fn serialize_char(self, _: char) -> Result<(), Error> {
        cannot("a string")
    }
    fn serialize_str(self, _: &str) -> Result<(), Error> {
        cannot("a string")
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Error> {
        Ok(())
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Result<(), Error> {
        cannot("a string")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;
    use serde_json::{json, Value};

    /// One value of `kind`, as a one-column row would carry it.
    fn enc(v: Value, kind: Kind) -> Result<String, Error> {
        let names = vec!["c".to_owned()];
        let kinds = vec![kind];
        let mut e = Encoder::new(&names, &kinds);
        e.row(&json!({ "c": v }))?;
        Ok(e.out.trim_end_matches('\n').to_owned())
    }

    #[test]
    fn encodes_each_kind() {
        let ok = |v, k| enc(v, k).unwrap();
        assert_eq!(ok(json!(null), Kind::Scalar), "\\N");
        assert_eq!(ok(json!(null), Kind::Json), "\\N");
        assert_eq!(ok(json!(null), Kind::Array), "\\N");
        assert_eq!(ok(json!("a\tb\\c\nd"), Kind::Scalar), "a\\tb\\\\c\\nd");
        assert_eq!(ok(json!(true), Kind::Scalar), "t");
        assert_eq!(ok(json!(1.5), Kind::Scalar), "1.5");
        assert_eq!(ok(json!(-7), Kind::Scalar), "-7");
        assert_eq!(
            ok(json!(["x", "y\"z"]), Kind::Array),
            "{\"x\",\"y\\\\\"z\"}"
        );
        assert_eq!(
            ok(json!(["a\\b", null]), Kind::Array),
            "{\"a\\\\\\\\b\",NULL}"
        );
        assert_eq!(ok(json!([]), Kind::Array), "{}");
        assert_eq!(ok(json!({"k": "v\n"}), Kind::Json), "{\"k\":\"v\\\\n\"}");
        assert_eq!(ok(json!([1, 2]), Kind::Json), "[1,2]");
        assert!(enc(json!({"a": 1}), Kind::Scalar).is_err());
        assert!(enc(json!([1]), Kind::Scalar).is_err());
        assert!(enc(json!("x"), Kind::Array).is_err());
        assert!(enc(json!([[1]]), Kind::Array).is_err());
    }

    #[derive(Serialize)]
    struct Inner {
        b: Option<i32>,
        c: Vec<String>,
    }

    #[derive(Serialize)]
    struct Row {
        a: String,
        #[serde(flatten)]
        inner: Inner,
        t: chrono::DateTime<chrono::Utc>,
        u: uuid::Uuid,
        j: Value,
    }

    #[test]
    fn rows_of_structs_and_flattened_maps() {
        let t = chrono::DateTime::parse_from_rfc3339("2026-11-25T10:00:00.5Z")
            .unwrap()
            .to_utc();
        let row = |a: &str, b| Row {
            a: a.into(),
            inner: Inner {
                b,
                c: vec!["x".into()],
            },
            t,
            u: uuid::Uuid::nil(),
            j: json!({"k": 1}),
        };
        let mut names = Names(vec![]);
        row("", None).serialize(&mut names).unwrap();
        assert_eq!(names.0, ["a", "b", "c", "t", "u", "j"]);
        use Kind::*;
        let kinds = [Scalar, Scalar, Array, Scalar, Scalar, Json];
        let mut e = Encoder::new(&names.0, &kinds);
        e.row(&row("one\ttwo", Some(3))).unwrap();
        e.row(&row("", None)).unwrap();
        assert_eq!(
            e.out,
            "one\\ttwo\t3\t{\"x\"}\t2026-11-25T10:00:00.500Z\t00000000-0000-0000-0000-000000000000\t{\"k\":1}\n\
             \t\\N\t{\"x\"}\t2026-11-25T10:00:00.500Z\t00000000-0000-0000-0000-000000000000\t{\"k\":1}\n"
        );
        // A row of another shape is refused, not written under the wrong columns.
        let mut e = Encoder::new(&names.0[..2], &kinds[..2]);
        assert!(e.row(&row("x", None)).is_err());
    }
}
