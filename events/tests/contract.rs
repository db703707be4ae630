//! The contract's own tests: examples, schemas, and the refusal of bad input.

use authtrail_events::{parse, schema, EventType, MAX_EVENT_BYTES};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn crate_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn examples() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = std::fs::read_dir(crate_dir().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

fn example(name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(crate_dir().join("examples").join(name)).unwrap())
        .unwrap()
}

#[test]
fn every_type_has_an_example_and_every_example_round_trips() {
    let mut seen = BTreeSet::new();
    for (name, bytes) in examples() {
        let event = parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        seen.insert(event.event_type());
        let canonical = event.to_json_bytes();
        // Canonical bytes are a fixed point, and say exactly what the example says.
        let again = parse(&canonical).unwrap();
        assert_eq!(again, event, "{name}");
        assert_eq!(again.to_json_bytes(), canonical, "{name}");
        let original: Value = serde_json::from_slice(&bytes).unwrap();
        let written: Value = serde_json::from_slice(&canonical).unwrap();
        assert_eq!(
            written, original,
            "{name}: canonical form differs from the example"
        );
    }
    let all: BTreeSet<_> = EventType::ALL.iter().copied().collect();
    assert_eq!(seen, all, "types without an example");
}

#[test]
fn schema_files_are_fresh() {
    let dir = crate_dir().join("schema");
    let bless = std::env::var_os("AUTHTRAIL_BLESS").is_some();
    let mut stale = vec![];
    for (file, text) in schema::schema_files() {
        let path = dir.join(&file);
        if bless {
            std::fs::write(&path, &text).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            stale.push(file);
        }
    }
    let on_disk = std::fs::read_dir(&dir).unwrap().count();
    assert!(
        stale.is_empty(),
        "stale JSON Schemas {stale:?}: run AUTHTRAIL_BLESS=1 cargo test -p authtrail-events --test contract"
    );
    assert_eq!(
        on_disk,
        EventType::ALL.len(),
        "events/schema/ holds files for unknown types"
    );
}

#[test]
fn examples_validate_against_their_json_schema_and_bad_ones_do_not() {
    for (name, bytes) in examples() {
        let instance: Value = serde_json::from_slice(&bytes).unwrap();
        let t: EventType = instance["type"].as_str().unwrap().parse().unwrap();
        let validator = jsonschema::validator_for(&schema::event_schema(t)).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{name}: {errors:?}");

        // The schema is not vacuous: it refuses what the parser refuses.
        let mut unknown = instance.clone();
        unknown["data"]["sesion_id"] = json!("x");
        assert!(
            !validator.is_valid(&unknown),
            "{name}: unknown data field accepted by schema"
        );
        let mut no_data = instance.clone();
        no_data.as_object_mut().unwrap().remove("data");
        assert!(
            !validator.is_valid(&no_data),
            "{name}: missing data accepted by schema"
        );
    }
    let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl";
    let mut ev = example("login.succeeded.json");
    ev["data"]["refresh_token_id"] = json!(jwt);
    let validator =
        jsonschema::validator_for(&schema::event_schema(EventType::LoginSucceeded)).unwrap();
    assert!(
        !validator.is_valid(&ev),
        "schema accepts a raw JWT as a token id"
    );
}

/// Applies `edit` to the named example and returns the refusal's field and reason.
fn refuse(name: &str, edit: impl FnOnce(&mut Value)) -> (String, String) {
    let mut v = example(name);
    edit(&mut v);
    let err = parse(&serde_json::to_vec(&v).unwrap()).expect_err("must be refused");
    (err.field, err.reason)
}

#[test]
fn bad_events_are_refused_naming_the_field() {
    let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
    let ls = "login.succeeded.json";
    #[allow(clippy::type_complexity)]
    let cases: Vec<(&str, &str, Box<dyn FnOnce(&mut Value)>, &str)> = vec![
        (
            "unknown type",
            ls,
            Box::new(|v| v["type"] = json!("login.maybe")),
            "type",
        ),
        (
            "missing required data field",
            ls,
            Box::new(|v| {
                v["data"].as_object_mut().unwrap().remove("session_id");
            }),
            "data",
        ),
        (
            "ill-typed required field",
            ls,
            Box::new(|v| v["data"]["expires_at"] = json!(12)),
            "data.expires_at",
        ),
        (
            "bad enum value",
            ls,
            Box::new(|v| v["data"]["login_method"] = json!("magic")),
            "data.login_method",
        ),
        (
            "bad time",
            ls,
            Box::new(|v| v["time"] = json!("yesterday at noon")),
            "time",
        ),
        (
            "time without offset",
            ls,
            Box::new(|v| v["time"] = json!("2026-11-24T09:15:02")),
            "time",
        ),
        (
            "unknown schemaversion",
            ls,
            Box::new(|v| v["schemaversion"] = json!(2)),
            "schemaversion",
        ),
        (
            "schemaversion zero",
            ls,
            Box::new(|v| v["schemaversion"] = json!(0)),
            "schemaversion",
        ),
        (
            "schemaversion as string",
            ls,
            Box::new(|v| v["schemaversion"] = json!("1")),
            "schemaversion",
        ),
        (
            "missing schemaversion",
            ls,
            Box::new(|v| {
                v.as_object_mut().unwrap().remove("schemaversion");
            }),
            "schemaversion",
        ),
        (
            "raw JWT as token id",
            ls,
            Box::new(move |v| v["data"]["refresh_token_id"] = json!(jwt)),
            "data.refresh_token_id",
        ),
        (
            "raw JWT in free text",
            "admin.action.json",
            Box::new(move |v| v["data"]["details"]["note"] = json!(format!("Bearer {jwt}"))),
            "data.details.note",
        ),
        (
            "password in details",
            "admin.action.json",
            Box::new(|v| v["data"]["details"]["password"] = json!("hunter2")),
            "data.details.password",
        ),
        (
            "unknown data field",
            ls,
            Box::new(|v| v["data"]["sesion_id"] = json!("s")),
            "data.sesion_id",
        ),
        (
            "unknown attribute",
            ls,
            Box::new(|v| v["priority"] = json!("high")),
            "priority",
        ),
        (
            "id not a UUID",
            ls,
            Box::new(|v| v["id"] = json!("12345")),
            "id",
        ),
        (
            "wrong specversion",
            ls,
            Box::new(|v| v["specversion"] = json!("0.3")),
            "specversion",
        ),
        (
            "wrong datacontenttype",
            ls,
            Box::new(|v| v["datacontenttype"] = json!("text/xml")),
            "datacontenttype",
        ),
        (
            "missing subject",
            ls,
            Box::new(|v| {
                v.as_object_mut().unwrap().remove("subject");
            }),
            "subject",
        ),
        (
            "subject-less failure of a known user",
            "login.failed.json",
            Box::new(|v| {
                v.as_object_mut().unwrap().remove("subject");
            }),
            "subject",
        ),
        (
            "empty source",
            ls,
            Box::new(|v| v["source"] = json!("  ")),
            "source",
        ),
        (
            "data not an object",
            ls,
            Box::new(|v| v["data"] = json!([1, 2])),
            "data",
        ),
        (
            "bad IP",
            ls,
            Box::new(|v| v["data"]["ip"] = json!("999.1.1.1")),
            "data.ip",
        ),
        (
            "expiry before login",
            ls,
            Box::new(|v| v["data"]["expires_at"] = json!("2020-01-01T00:00:00Z")),
            "data.expires_at",
        ),
        (
            "refresh does not rotate",
            "token.refreshed.json",
            Box::new(|v| {
                v["data"]["refresh_token_id"] = v["data"]["previous_refresh_token_id"].clone()
            }),
            "data.refresh_token_id",
        ),
        (
            "revoke one without session",
            "session.revoked.json",
            Box::new(|v| {
                v["data"]["scope"] = json!("one");
                v["data"].as_object_mut().unwrap().remove("session_id");
            }),
            "data.session_id",
        ),
        (
            "control character",
            ls,
            Box::new(|v| v["data"]["device_name"] = json!("iPhone\u{0007}")),
            "data.device_name",
        ),
        (
            "id with spaces",
            ls,
            Box::new(|v| v["data"]["session_id"] = json!("a b")),
            "data.session_id",
        ),
        (
            "empty role",
            ls,
            Box::new(|v| v["data"]["roles"] = json!(["user", ""])),
            "data.roles[1]",
        ),
        (
            "bad country code",
            ls,
            Box::new(|v| v["data"]["geo"] = json!({"country_code": "gbr"})),
            "data.geo.country_code",
        ),
        (
            "overlong string",
            ls,
            Box::new(|v| v["data"]["user_agent"] = json!("x".repeat(5000))),
            "data.user_agent",
        ),
        (
            "review of a non-UUID",
            "security_event.reviewed.json",
            Box::new(|v| v["data"]["security_event_id"] = json!("nope")),
            "data.security_event_id",
        ),
    ];
    assert!(cases.len() >= 15);
    for (what, name, edit, field) in cases {
        let (got_field, reason) = refuse(name, edit);
        assert_eq!(got_field, field, "{what}: reason was {reason:?}");
        assert!(!reason.is_empty(), "{what}");
        assert!(
            !reason.contains("SflKxw") && !reason.contains("hunter2"),
            "{what}: reason echoes a secret"
        );
    }
}

#[test]
fn unknown_data_fields_are_named_in_the_reason() {
    let (_, reason) = refuse("login.succeeded.json", |v| {
        v["data"]["sesion_id"] = json!("s")
    });
    assert!(reason.contains("sesion_id"), "{reason}");
    let (_, reason) = refuse("login.succeeded.json", |v| {
        v["data"].as_object_mut().unwrap().remove("session_id");
    });
    assert!(reason.contains("session_id"), "{reason}");
}

#[test]
fn malformed_bytes_are_refused_for_the_whole_event() {
    let oversized = {
        let mut v = example("admin.action.json");
        let filler: serde_json::Map<String, Value> = (0..40)
            .map(|i| (format!("k{i}"), json!("y".repeat(2000))))
            .collect();
        v["data"]["details"] = Value::Object(filler);
        serde_json::to_vec(&v).unwrap()
    };
    assert!(oversized.len() > MAX_EVENT_BYTES);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("bad JSON", b"{\"specversion\": \"1.0\",".to_vec()),
        ("not an object", b"[1,2,3]".to_vec()),
        ("empty", vec![]),
        ("non-UTF-8", vec![b'{', 0xff, 0xfe, b'}']),
        ("oversized", oversized),
        ("trailing garbage", b"{} {}".to_vec()),
    ];
    for (what, bytes) in cases {
        let err = parse(&bytes).expect_err(what);
        assert_eq!(err.field, "(event)", "{what}: {err}");
    }
}

#[test]
fn partition_key_is_subject_or_lowercased_identifier() {
    let ok = parse(&serde_json::to_vec(&example("login.succeeded.json")).unwrap()).unwrap();
    assert_eq!(ok.partition_key(), "7c9e6679-7425-40de-944b-e07fc1f90ae7");
    let anon =
        parse(&serde_json::to_vec(&example("login.failed.unknown_user.json")).unwrap()).unwrap();
    assert_eq!(anon.subject, None);
    assert_eq!(anon.partition_key(), "mallory@example.com");
}

#[test]
fn time_offsets_are_normalised_to_utc() {
    let mut v = example("session.logged_out.json");
    v["time"] = json!("2026-11-24T18:02:00+01:00");
    let e = parse(&serde_json::to_vec(&v).unwrap()).unwrap();
    let out: Value = serde_json::from_slice(&e.to_json_bytes()).unwrap();
    assert_eq!(out["time"], json!("2026-11-24T17:02:00Z"));
}

#[test]
fn times_are_truncated_to_microseconds() {
    let mut v = example("login.succeeded.json");
    v["time"] = json!("2026-11-24T09:15:02.123456789Z");
    v["data"]["expires_at"] = json!("2026-11-24T21:15:02.000000999+00:00");
    let e = parse(&serde_json::to_vec(&v).unwrap()).unwrap();
    let out: Value = serde_json::from_slice(&e.to_json_bytes()).unwrap();
    assert_eq!(out["time"], json!("2026-11-24T09:15:02.123456Z"));
    assert_eq!(out["data"]["expires_at"], json!("2026-11-24T21:15:02Z"));
}

/// Unicode format characters (category Cf: bidi controls, zero-width characters, the soft
/// hyphen, tags, ...) are refused in every string value and member name, named by code point.
#[test]
fn format_characters_are_refused_anywhere_naming_the_code_point() {
    use authtrail_events::parse::is_format_char;
    let listed = [
        0xAD, 0x600, 0x605, 0x61C, 0x6DD, 0x70F, 0x890, 0x891, 0x8E2, 0x180E, 0x200B, 0x200C,
        0x200D, 0x200E, 0x200F, 0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2060, 0x2064, 0x2066,
        0x2067, 0x2068, 0x2069, 0x206F, 0xFEFF, 0xFFF9, 0xFFFB, 0x110BD, 0x110CD, 0x13430, 0x1343F,
        0x1BCA0, 0x1BCA3, 0x1D173, 0x1D17A, 0xE0001, 0xE0020, 0xE007F,
    ];
    for cp in listed {
        let c = char::from_u32(cp).unwrap();
        assert!(is_format_char(c), "U+{cp:04X}");
        let code = format!("U+{cp:04X}");
        for (what, edit, field) in [
            (
                "subject",
                Box::new(move |v: &mut Value| v["subject"] = json!(format!("u{c}1")))
                    as Box<dyn Fn(&mut Value)>,
                "subject".to_owned(),
            ),
            (
                "free text",
                Box::new(move |v: &mut Value| {
                    v["data"]["details"]["note"] = json!(format!("ok{c}"))
                }),
                "data.details.note".to_owned(),
            ),
            (
                "member name",
                Box::new(move |v: &mut Value| v["data"]["details"][format!("k{c}")] = json!(1)),
                format!("data.details.k{}", c.escape_unicode()),
            ),
        ] {
            let (got_field, reason) = refuse("admin.action.json", edit);
            assert_eq!(got_field, field, "{what} {code}");
            assert_eq!(
                reason,
                format!("contains the format character {code}"),
                "{what}"
            );
        }
    }
    for c in [
        'a',
        'é',
        ' ',
        '\u{2065}',
        '\u{FFFC}',
        '\u{1F600}',
        '\u{E0080}',
    ] {
        assert!(!is_format_char(c), "{c:?}");
    }
}

/// A top-level member that is not an attribute is named only when the name could be one
/// (CloudEvents: 1 to 20 lower-case letters and digits).
#[test]
fn unknown_attribute_names_are_echoed_only_when_plausible() {
    for (name, field) in [
        ("priority", "priority"),
        ("ext2", "ext2"),
        ("Priority", "(attribute)"),
        ("x-trace", "(attribute)"),
        ("abcdefghijklmnopqrstu", "(attribute)"),
        ("a\u{202e}b", "(attribute)"),
        ("a\nb", "(attribute)"),
        ("", "(attribute)"),
    ] {
        let (got, reason) = refuse("login.succeeded.json", |v| v[name] = json!(1));
        assert_eq!(got, field, "{name:?}: {reason}");
        if field == "(attribute)" && !name.is_empty() {
            assert!(!reason.contains(name), "{name:?} echoed: {reason}");
        }
    }
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// No input panics: arbitrary bytes, and examples with bytes flipped.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn mutated_examples_never_panic(idx in 0usize..17, pos in any::<prop::sample::Index>(), b in any::<u8>()) {
            let all = examples();
            let (_, mut bytes) = all[idx % all.len()].clone();
            let i = pos.index(bytes.len());
            bytes[i] = b;
            if let Ok(e) = parse(&bytes) {
                // Whatever is accepted re-parses to itself.
                prop_assert_eq!(parse(&e.to_json_bytes()).unwrap(), e);
            }
        }
    }
}
