//! Fuzzing in the normal suite: every parser of untrusted input gets the committed seed corpus
//! (`fuzz/corpus/<target>/`, see `fuzz/README.md`) first, then random inputs — arbitrary bytes
//! and structure-aware mutations of the seeds (JSON nodes replaced, removed or added; strings
//! given control, format, token-shaped or oversized text; bytes set, inserted and cut; batches
//! assembled from mutated events).
//!
//! Targets: `event` (`authtrail_events::parse`), `upcast` (`authtrail_events::upcast::upcast`),
//! `batch` (the intake's body splitter, `authtrail::ingest::decode_body`), `jwt`
//! (`Verifier::verify_jwt` and `Verifier::authenticate`), `cursor` (`Cursor::decode`).
//!
//! Properties: no input panics; a refusal names the field (contract errors and intake errors
//! by `field`, cursors by parameter) without echoing a control or format character; what is
//! accepted re-parses to itself; a token whose signed part was altered never verifies.
//!
//! Each property runs proptest's default 256 cases (the whole module takes a few seconds);
//! run long with `PROPTEST_CASES=100000 cargo test --release --test security fuzz`. A failure
//! prints the shrunk input: add it to the target's corpus as a new file once fixed.

use authtrail::api::pagination::Cursor;
use authtrail::auth::Verifier;
use authtrail::config::{AuthConfig, IngestConfig};
use authtrail::ingest::{decode_body, Limits};
use authtrail::server::ApiError;
use authtrail_events::parse::is_refused_char;
use authtrail_events::{parse, EventType};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::OnceLock;

type Check = Result<(), TestCaseError>;

// ---------------------------------------------------------------------------------------------
// Corpus and mutations

/// `(file name, bytes)` of `fuzz/corpus/<target>/`, sorted.
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "{} holds no seeds", dir.display());
    out
}

/// The event seeds: the contract's examples (valid) and the `event` corpus (mostly hostile).
fn event_seeds() -> &'static [(String, Vec<u8>)] {
    static SEEDS: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let mut all = crate::common::examples();
        all.extend(corpus("event"));
        all
    })
}

/// Seed values of `seeds` that are JSON (the starting points of structure-aware mutation).
fn json_seeds(seeds: &[(String, Vec<u8>)]) -> Vec<Value> {
    seeds
        .iter()
        .filter_map(|(_, b)| serde_json::from_slice(b).ok())
        .collect()
}

fn event_json_seeds() -> &'static [Value] {
    static SEEDS: OnceLock<Vec<Value>> = OnceLock::new();
    SEEDS.get_or_init(|| json_seeds(event_seeds()))
}

/// Strings that mean something to some check: times at the edges, type and enum names, ids,
/// tokens, secrets' names, format characters, formula prefixes.
fn vocabulary() -> Vec<String> {
    let mut v: Vec<String> = [
        "",
        " ",
        "1.0",
        "2026-11-24T09:15:02Z",
        "2026-11-24T09:15:02.123456789+14:00",
        "1970-01-01T00:00:00Z",
        "9000-12-31T23:59:59Z",
        "+275760-09-13T00:00:00Z",
        "0b9f4c1e-8a57-4d8e-9c0f-2f6a1d3b7e01",
        "00000000-0000-0000-0000-000000000000",
        "/authtrail/api",
        "/services/auth-api",
        "application/json",
        "password",
        "access_token",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
        "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln",
        "admin\u{202e}txt.exe",
        "zero\u{200b}width",
        "\u{feff}",
        "soft\u{ad}hyphen",
        "\u{e0041}tag",
        "line\nbreak",
        "\u{1b}[31mred",
        "=HYPERLINK(\"http://x\")",
        "@SUM(1)",
        "one",
        "all",
        "all_except",
        "user",
        "super_admin",
        "password",
        "unknown_user",
        "81.2.69.142",
        "::1",
        "999.1.1.1",
        "GB",
        "gbr",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    v.extend(EventType::ALL.iter().map(|t| t.as_str().to_owned()));
    v
}

/// Characters that a check should catch (or that must pass): controls, format characters,
/// surrogate neighbours, the largest code point, combining marks.
const HOSTILE: &[char] = &[
    '\u{0}',
    '\u{7}',
    '\n',
    '\r',
    '\u{1b}',
    '\u{7f}',
    '\u{85}',
    '\u{ad}',
    '\u{61c}',
    '\u{200b}',
    '\u{200d}',
    '\u{200e}',
    '\u{202a}',
    '\u{202e}',
    '\u{2066}',
    '\u{2069}',
    '\u{2060}',
    '\u{feff}',
    '\u{fffb}',
    '\u{1d173}',
    '\u{e0001}',
    '\u{e007f}',
    '\u{d7ff}',
    '\u{e000}',
    '\u{10ffff}',
    '\u{301}',
    '"',
    '\\',
    '.',
    '[',
];

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z0-9_.:@/ -]{0,16}",
        2 => any::<String>(),
        3 => prop::sample::select(vocabulary()),
        2 => ("[a-z ]{0,8}", prop::sample::select(HOSTILE), "[a-z]{0,8}")
            .prop_map(|(a, c, b)| format!("{a}{c}{b}")),
        1 => (1usize..3000, prop::sample::select(vec!['x', 'é', '\u{202e}']))
            .prop_map(|(n, c)| std::iter::repeat_n(c, n).collect()),
    ]
}

/// Member names: the contract's own (so that mutations reach deep checks) or any text.
fn member_name() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => prop::sample::select(vec![
            "specversion", "id", "source", "type", "time", "subject", "publisher",
            "datacontenttype", "schemaversion", "data", "session_id", "expires_at", "until",
            "identifier", "failure_reason", "scope", "geo", "latitude", "country_code",
            "roles", "details", "security_event_id", "refresh_token_id", "enrichment",
        ])
        .prop_map(str::to_owned),
        1 => text(),
    ]
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop::sample::select(vec![0i64, 1, 2, -1, 90, 91, -181]).prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((member_name(), inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// One structure-aware edit of a JSON document; `Index` picks the node (pre-order).
#[derive(Debug, Clone)]
enum Edit {
    Replace(Index, Value),
    Remove(Index),
    Insert(Index, String, Value),
    /// Inserts text into a string node at a character position.
    Garble(Index, Index, String),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => (any::<Index>(), json_value()).prop_map(|(i, v)| Edit::Replace(i, v)),
        2 => any::<Index>().prop_map(Edit::Remove),
        2 => (any::<Index>(), member_name(), json_value()).prop_map(|(i, k, v)| Edit::Insert(i, k, v)),
        3 => (any::<Index>(), any::<Index>(), text()).prop_map(|(i, p, s)| Edit::Garble(i, p, s)),
    ]
}

/// JSON pointers of every node of `v`, pre-order.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match v {
        Value::Array(items) => {
            for (i, x) in items.iter().enumerate() {
                pointers(x, format!("{at}/{i}"), out);
            }
        }
        Value::Object(members) => {
            for (k, x) in members {
                let k = k.replace('~', "~0").replace('/', "~1");
                pointers(x, format!("{at}/{k}"), out);
            }
        }
        _ => {}
    }
}

fn apply(v: &mut Value, edit: &Edit) {
    let mut all = Vec::new();
    pointers(v, String::new(), &mut all);
    let pick = |i: &Index| all[i.index(all.len())].clone();
    match edit {
        Edit::Replace(i, new) => {
            if let Some(node) = v.pointer_mut(&pick(i)) {
                *node = new.clone();
            }
        }
        Edit::Remove(i) => {
            let p = pick(i);
            let Some((parent, last)) = p.rsplit_once('/') else {
                return;
            };
            match v.pointer_mut(parent) {
                Some(Value::Object(m)) => {
                    m.remove(&last.replace("~1", "/").replace("~0", "~"));
                }
                Some(Value::Array(a)) => {
                    if let Some(n) = last.parse::<usize>().ok().filter(|n| *n < a.len()) {
                        a.remove(n);
                    }
                }
                _ => {}
            }
        }
        Edit::Insert(i, key, new) => match v.pointer_mut(&pick(i)) {
            Some(Value::Object(m)) => {
                m.insert(key.clone(), new.clone());
            }
            Some(Value::Array(a)) => a.push(new.clone()),
            _ => {}
        },
        Edit::Garble(i, pos, s) => {
            if let Some(Value::String(t)) = v.pointer_mut(&pick(i)) {
                let n = pos.index(t.chars().count() + 1);
                let at = t.char_indices().nth(n).map_or(t.len(), |(b, _)| b);
                t.insert_str(at, s);
            }
        }
    }
}

/// One byte-level edit.
#[derive(Debug, Clone)]
enum ByteEdit {
    Set(Index, u8),
    Insert(Index, Vec<u8>),
    Cut(Index, Index),
}

fn byte_edit() -> impl Strategy<Value = ByteEdit> {
    prop_oneof![
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| ByteEdit::Set(i, b)),
        (
            any::<Index>(),
            prop_oneof![
                prop::collection::vec(any::<u8>(), 1..8),
                prop::sample::select(vec![
                    b"\"".to_vec(),
                    b"\\u202e".to_vec(),
                    b"\\ud800".to_vec(),
                    b"{".to_vec(),
                    b"]".to_vec(),
                    b",".to_vec(),
                    b"\n".to_vec(),
                    b"\xe2\x80\xae".to_vec(),
                    b"\xff".to_vec(),
                    b"1e999".to_vec(),
                ]),
            ]
        )
            .prop_map(|(i, b)| ByteEdit::Insert(i, b)),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| ByteEdit::Cut(a, b)),
    ]
}

fn apply_bytes(bytes: &mut Vec<u8>, edit: &ByteEdit) {
    match edit {
        ByteEdit::Set(i, b) if !bytes.is_empty() => {
            let i = i.index(bytes.len());
            bytes[i] = *b;
        }
        ByteEdit::Set(..) => {}
        ByteEdit::Insert(i, b) => {
            let at = i.index(bytes.len() + 1);
            bytes.splice(at..at, b.iter().copied());
        }
        ByteEdit::Cut(a, b) => {
            let (a, b) = (a.index(bytes.len() + 1), b.index(bytes.len() + 1));
            bytes.drain(a.min(b)..a.max(b));
        }
    }
}

/// A seed from `seeds` after `edits`, serialised, then after `bytes`.
fn mutated(seeds: &[Value], seed: &Index, edits: &[Edit], bytes: &[ByteEdit]) -> Vec<u8> {
    let mut v = seeds[seed.index(seeds.len())].clone();
    for e in edits {
        apply(&mut v, e);
    }
    let mut out = serde_json::to_vec(&v).expect("a JSON value serialises");
    for b in bytes {
        apply_bytes(&mut out, b);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Properties

/// A refusal names its field and gives a reason, neither carrying a control or format
/// character (they end up in logs, problem bodies and terminals).
fn names_a_field(field: &str, reason: &str) -> Check {
    prop_assert!(!field.is_empty(), "no field; reason {reason:?}");
    prop_assert!(!reason.is_empty(), "no reason for {field:?}");
    prop_assert!(
        !field.chars().chain(reason.chars()).any(is_refused_char),
        "the error echoes a control or format character: {field:?}: {reason:?}"
    );
    Ok(())
}

fn event_target(bytes: &[u8]) -> Check {
    match parse(bytes) {
        Ok(e) => {
            let again = parse(&e.to_json_bytes());
            prop_assert_eq!(
                again.as_ref().ok(),
                Some(&e),
                "accepted, but does not re-parse to itself"
            );
        }
        Err(err) => names_a_field(&err.field, &err.reason)?,
    }
    Ok(())
}

fn upcast_target(event_type: EventType, version: u64, data: Value) -> Check {
    use authtrail_events::upcast::{upcast, CURRENT_SCHEMA_VERSION};
    match upcast(event_type, version, data.clone()) {
        Ok(up) => {
            prop_assert!((1..=u64::from(CURRENT_SCHEMA_VERSION)).contains(&version));
            if version == u64::from(CURRENT_SCHEMA_VERSION) {
                prop_assert_eq!(up, data, "the current version passes through unchanged");
            }
        }
        Err(err) => names_a_field(&err.field, &err.reason)?,
    }
    Ok(())
}

/// The splitter's limits in the fuzz: small enough that "too many events" is reachable.
const MAX_BATCH: usize = 40;

fn limits() -> Limits {
    Limits::from(&IngestConfig {
        max_body_bytes: 256 * 1024,
        max_batch_events: MAX_BATCH,
        ..IngestConfig::default()
    })
}

fn batch_target(content_type: Option<&str>, body: &[u8]) -> Check {
    match decode_body(content_type, body, limits()) {
        Ok(events) => {
            prop_assert!((1..=MAX_BATCH).contains(&events.len()));
            for e in &events {
                let again = parse(&e.to_json_bytes());
                prop_assert_eq!(again.as_ref().ok(), Some(e));
            }
        }
        Err(ApiError::InvalidEvents {
            errors,
            invalid_count,
            ..
        }) => {
            let listed = errors.as_array().cloned().unwrap_or_default();
            prop_assert!(!listed.is_empty() && listed.len() <= invalid_count);
            for e in &listed {
                let field = e["field"].as_str().unwrap_or_default();
                names_a_field(field, e["reason"].as_str().unwrap_or_default())?;
                prop_assert!(e["index"].as_u64().is_some(), "no index: {e}");
            }
        }
        Err(
            ApiError::MalformedBody(_)
            | ApiError::TooLarge { .. }
            | ApiError::UnsupportedMediaType { .. },
        ) => {}
        Err(other) => prop_assert!(false, "unexpected refusal {other:?}"),
    }
    Ok(())
}

/// The fuzz's own HS256 secret, issuer and audience (the `jwt` corpus is signed with them).
const SECRET: &str = "fuzz-only-hs256-secret-at-least-32-bytes!";
const ISSUER: &str = "https://idp.fuzz.test";
const AUDIENCE: &str = "authtrail";
const API_KEY: &str = "fuzz-only-api-key-0123456789abcdef0123";

/// Runs `f` to completion on this thread's own runtime (verification is async: key sets).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    thread_local! {
        static RT: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
    }
    RT.with(|rt| rt.block_on(f))
}

fn verifier() -> &'static Verifier {
    static V: OnceLock<Verifier> = OnceLock::new();
    V.get_or_init(|| {
        Verifier::from_config(&AuthConfig {
            jwt_algorithms: vec!["HS256".into()],
            jwt_hs256_secret: SECRET.into(),
            jwt_issuer: Some(ISSUER.into()),
            jwt_audience: Some(AUDIENCE.into()),
            api_key_sha256: vec![authtrail::auth::api_key_sha256(API_KEY)],
            ..AuthConfig::default()
        })
        .expect("the fuzz's auth configuration is valid")
    })
}

/// Verifies `token` directly and as an `Authorization: Bearer` header. When `signed_part` is
/// given (the token was altered after signing), it may verify only if header and claims are
/// textually those that were signed.
fn jwt_target(token: &str, signed_part: Option<&str>) -> Check {
    use axum::http::{header, HeaderMap, HeaderValue};
    let direct = block_on(verifier().verify_jwt(token));
    if let Ok(value) = HeaderValue::from_str(&format!("Bearer {token}")) {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, value);
        let via_header = block_on(verifier().authenticate(&headers));
        if token.contains('.') && token.trim() == token && !token.is_empty() {
            prop_assert_eq!(
                via_header.is_ok(),
                direct.is_ok(),
                "header and direct disagree"
            );
        }
    }
    if let (Ok(caller), Some(signed)) = (&direct, signed_part) {
        let presented = token.rsplit_once('.').map(|(p, _)| p);
        prop_assert_eq!(
            presented,
            Some(signed),
            "an altered token verified as {:?}",
            caller.subject
        );
    }
    Ok(())
}

/// A compact JWS over arbitrary header and claims JSON, signed with the fuzz's secret.
fn sign(header: &Value, claims: &Value) -> String {
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    let message = format!("{}.{}", b64(header), b64(claims));
    let sig = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
        jsonwebtoken::Algorithm::HS256,
    )
    .expect("HS256 signs anything");
    format!("{message}.{sig}")
}

fn valid_claims() -> Value {
    serde_json::json!({
        "sub": "svc-fuzz", "role": "service", "iss": ISSUER, "aud": AUDIENCE,
        "iat": 1_700_000_000u64, "exp": 4_102_444_800u64,
    })
}

const LIST: &str = "sessions";

fn cursor_target(s: &str) -> Check {
    match Cursor::decode(LIST, s) {
        Ok(c) => {
            prop_assert_eq!(c.list.as_str(), LIST);
            prop_assert_eq!(Cursor::decode(LIST, &c.encode()).ok(), Some(c));
        }
        Err(ApiError::InvalidParameter { name, reason }) => {
            prop_assert_eq!(name.as_str(), "cursor");
            names_a_field(&name, &reason)?;
        }
        Err(other) => prop_assert!(false, "unexpected refusal {other:?}"),
    }
    Ok(())
}

/// The cursor seeds as JSON values (lenient base64, as a mutator may).
fn cursor_json_seeds() -> &'static [Value] {
    static SEEDS: OnceLock<Vec<Value>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        corpus("cursor")
            .iter()
            .filter_map(|(_, b)| {
                let s = String::from_utf8_lossy(b);
                let s = s.trim().trim_end_matches('=');
                let bytes = URL_SAFE_NO_PAD.decode(s).ok()?;
                serde_json::from_slice(&bytes).ok()
            })
            .collect()
    })
}

/// A batch corpus file: the first line is the Content-Type (`-` for none), the rest the body.
fn split_batch_seed(bytes: &[u8]) -> (Option<String>, Vec<u8>) {
    let (first, body) = match bytes.iter().position(|b| *b == b'\n') {
        Some(n) => (&bytes[..n], &bytes[n + 1..]),
        None => (bytes, &[][..]),
    };
    let ct = String::from_utf8_lossy(first).trim().to_owned();
    ((ct != "-").then_some(ct), body.to_vec())
}

fn run(target: &str, mut check: impl FnMut(&[u8]) -> Check) {
    for (name, bytes) in corpus(target) {
        if let Err(e) = check(&bytes) {
            panic!("fuzz/corpus/{target}/{name}: {e}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The corpus, then random cases

#[test]
fn the_seed_corpus_passes_every_target() {
    for (name, bytes) in event_seeds() {
        if let Err(e) = event_target(bytes) {
            panic!("event seed {name}: {e}");
        }
    }
    run("upcast", |bytes| {
        let v: Value = serde_json::from_slice(bytes).unwrap_or_default();
        let t = v["type"].as_str().and_then(|t| t.parse().ok());
        let t = t.unwrap_or(EventType::LoginSucceeded);
        upcast_target(
            t,
            v["schemaversion"].as_u64().unwrap_or(0),
            v["data"].clone(),
        )
    });
    run("batch", |bytes| {
        let (ct, body) = split_batch_seed(bytes);
        batch_target(ct.as_deref(), &body)
    });
    run("jwt", |bytes| {
        jwt_target(&String::from_utf8_lossy(bytes), None)
    });
    run("cursor", |bytes| {
        cursor_target(&String::from_utf8_lossy(bytes))
    });
}

proptest! {
    #[test]
    fn arbitrary_bytes_are_refused_naming_a_field(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
        event_target(&bytes)?;
    }

    #[test]
    fn mutated_events_are_refused_naming_a_field_or_reparse_to_themselves(
        seed in any::<Index>(),
        edits in prop::collection::vec(edit(), 1..4),
        bytes in prop::collection::vec(byte_edit(), 0..2),
    ) {
        event_target(&mutated(event_json_seeds(), &seed, &edits, &bytes))?;
    }

    #[test]
    fn mutated_seed_bytes_never_panic_the_parser(
        seed in any::<Index>(),
        bytes in prop::collection::vec(byte_edit(), 1..6),
    ) {
        let seeds = event_seeds();
        let mut b = seeds[seed.index(seeds.len())].1.clone();
        for e in &bytes {
            apply_bytes(&mut b, e);
        }
        event_target(&b)?;
    }

    #[test]
    fn the_upcaster_takes_any_version_and_data(
        t in prop::sample::select(EventType::ALL.to_vec()),
        version in prop_oneof![0u64..4, any::<u64>()],
        seed in any::<Index>(),
        edits in prop::collection::vec(edit(), 0..3),
    ) {
        let seeds = event_json_seeds();
        let mut data = seeds[seed.index(seeds.len())]["data"].clone();
        for e in &edits {
            apply(&mut data, e);
        }
        upcast_target(t, version, data)?;
    }

    #[test]
    fn arbitrary_bodies_are_split_or_refused(
        ct in prop_oneof![
            Just(None),
            prop::sample::select(vec![
                "application/x-ndjson", "application/ndjson", "application/cloudevents-batch+json",
                "application/cloudevents+json", "application/json", "application/json; charset=latin1",
                "APPLICATION/X-NDJSON; charset=\"utf-8\"", "text/plain", ";", "",
            ]).prop_map(|s| Some(s.to_owned())),
            text().prop_map(Some),
        ],
        body in prop::collection::vec(any::<u8>(), 0..1024),
    ) {
        batch_target(ct.as_deref(), &body)?;
    }

    /// Batches assembled from mutated events: the splitter accepts exactly when every event is
    /// valid, and otherwise lists exactly the invalid ones, by index.
    #[test]
    fn a_batch_of_mutated_events_lists_exactly_the_invalid_ones(
        ndjson in any::<bool>(),
        crlf in any::<bool>(),
        items in prop::collection::vec(
            (any::<Index>(), prop::collection::vec(edit(), 0..2)),
            0..(MAX_BATCH + 3),
        ),
    ) {
        let events: Vec<Vec<u8>> = items
            .iter()
            .map(|(seed, edits)| mutated(event_json_seeds(), seed, edits, &[]))
            .collect();
        let (ct, body) = if ndjson {
            let sep: &[u8] = if crlf { b"\r\n\r\n" } else { b"\n" };
            ("application/x-ndjson", events.join(sep))
        } else {
            let sep: &[u8] = if crlf { b",\r\n " } else { b"," };
            ("application/cloudevents-batch+json", [b"[".to_vec(), events.join(sep), b"]".to_vec()].concat())
        };
        let invalid: Vec<u64> = events
            .iter()
            .enumerate()
            .filter(|(_, e)| parse(e).is_err())
            .map(|(i, _)| i as u64)
            .collect();
        match decode_body(Some(ct), &body, limits()) {
            Ok(got) => {
                prop_assert!(invalid.is_empty() && !events.is_empty() && events.len() <= MAX_BATCH);
                let want: Vec<_> = events.iter().map(|e| parse(e).unwrap()).collect();
                prop_assert_eq!(got, want);
            }
            Err(ApiError::InvalidEvents { errors, invalid_count, .. }) => {
                prop_assert!(events.len() <= MAX_BATCH);
                prop_assert_eq!(invalid_count, invalid.len());
                let listed: Vec<u64> = errors
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["index"].as_u64().unwrap())
                    .collect();
                prop_assert_eq!(listed, invalid);
            }
            Err(ApiError::TooLarge { .. }) => prop_assert!(events.len() > MAX_BATCH),
            Err(ApiError::MalformedBody(_)) => prop_assert!(events.is_empty()),
            Err(other) => prop_assert!(false, "unexpected refusal {other:?}"),
        }
    }

    #[test]
    fn mutated_batch_seeds_are_split_or_refused(
        seed in any::<Index>(),
        bytes in prop::collection::vec(byte_edit(), 1..4),
    ) {
        let seeds = corpus("batch");
        let (ct, mut body) = split_batch_seed(&seeds[seed.index(seeds.len())].1);
        for e in &bytes {
            apply_bytes(&mut body, e);
        }
        batch_target(ct.as_deref(), &body)?;
    }

    #[test]
    fn arbitrary_tokens_never_verify(token in prop_oneof![
        any::<String>(),
        "[A-Za-z0-9_-]{0,40}\\.[A-Za-z0-9_-]{0,40}\\.[A-Za-z0-9_-]{0,40}",
        "eyJ[A-Za-z0-9_=+/-]{0,60}(\\.[A-Za-z0-9_-]{0,30}){1,5}",
    ]) {
        prop_assert!(block_on(verifier().verify_jwt(&token)).is_err());
        jwt_target(&token, None)?;
    }

    /// A validly signed token, then altered anywhere: it verifies only if the signed part is
    /// untouched.
    #[test]
    fn an_altered_token_never_verifies(
        edits in prop::collection::vec(byte_edit(), 1..4),
    ) {
        let token = sign(&serde_json::json!({"alg": "HS256", "typ": "JWT"}), &valid_claims());
        let signed = token.rsplit_once('.').unwrap().0.to_owned();
        let mut bytes = token.into_bytes();
        for e in &edits {
            apply_bytes(&mut bytes, e);
        }
        jwt_target(&String::from_utf8_lossy(&bytes), Some(&signed))?;
    }

    /// Signed with the right secret, but header and claims mutated: no panic, and whatever
    /// verifies carries the configured issuer and audience and an expiry.
    #[test]
    fn signed_tokens_with_mutated_header_and_claims_are_checked(
        header_edits in prop::collection::vec(edit(), 0..3),
        claim_edits in prop::collection::vec(edit(), 0..3),
    ) {
        let mut header = serde_json::json!({"alg": "HS256", "typ": "JWT"});
        let mut claims = valid_claims();
        for e in &header_edits {
            apply(&mut header, e);
        }
        for e in &claim_edits {
            apply(&mut claims, e);
        }
        let token = sign(&header, &claims);
        if block_on(verifier().verify_jwt(&token)).is_ok() {
            prop_assert_eq!(&claims["iss"], ISSUER);
            let aud = &claims["aud"];
            prop_assert!(aud == AUDIENCE || aud.as_array().is_some_and(|a| a.iter().any(|x| x == AUDIENCE)));
            prop_assert!(claims["exp"].is_number());
        }
        jwt_target(&token, None)?;
    }

    #[test]
    fn arbitrary_cursors_are_refused_naming_the_parameter(
        s in prop_oneof![
            any::<String>(),
            prop::collection::vec(any::<u8>(), 0..200).prop_map(|b| URL_SAFE_NO_PAD.encode(b)),
        ],
    ) {
        cursor_target(&s)?;
    }

    #[test]
    fn mutated_cursors_are_refused_naming_the_parameter_or_round_trip(
        seed in any::<Index>(),
        edits in prop::collection::vec(edit(), 1..3),
        bytes in prop::collection::vec(byte_edit(), 0..2),
    ) {
        let json = mutated(cursor_json_seeds(), &seed, &edits, &bytes);
        cursor_target(&URL_SAFE_NO_PAD.encode(json))?;
    }
}
