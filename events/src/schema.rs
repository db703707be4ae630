//! JSON Schema (draft 2020-12) for every event type, generated from the Rust types.
//!
//! `events/schema/<type>.schema.json` holds the output; the test `schema_files_are_fresh` fails
//! when they differ from what the code generates. Regenerate with
//! `AUTHTRAIL_BLESS=1 cargo test -p authtrail-events --test contract`.
//! The schemas describe the shape; [`crate::parse`] also enforces the rules a schema cannot
//! express well (no secrets anywhere, `expires_at` after `time`, …).

use crate::data::data_schema;
use crate::event::{DATA_CONTENT_TYPE, PUBLISHER_ATTRIBUTE, SPEC_VERSION};
use crate::kind::EventType;
use crate::parse::{MAX_EVENT_BYTES, MAX_KEY_CHARS, MAX_STRING_CHARS};
use crate::personal::PERSONAL_ATTRIBUTE;
use crate::upcast::CURRENT_SCHEMA_VERSION;
use schemars::generate::SchemaSettings;
use serde_json::{json, Value};

/// The full envelope schema of one event type, `data` included.
pub fn event_schema(event_type: EventType) -> Value {
    let mut generator = SchemaSettings::draft2020_12().into_generator();
    let data = data_schema(event_type, &mut generator).to_value();
    let defs: serde_json::Map<String, Value> =
        generator.take_definitions(true).into_iter().collect();
    let mut required = vec![
        "specversion",
        "id",
        "source",
        "type",
        "time",
        "schemaversion",
        "data",
    ];
    if !event_type.subject_optional() {
        required.insert(5, "subject");
    }
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": format!("urn:authtrail:event:{}:v{}", event_type, CURRENT_SCHEMA_VERSION),
        "title": event_type.as_str(),
        "description": format!(
            "authtrail {event_type} event: a CloudEvents 1.0 structured-mode JSON object, at most {MAX_EVENT_BYTES} bytes; every string (values and member names) at most {MAX_STRING_CHARS} characters, without control or format characters (Unicode Cc, Cf)."
        ),
        "type": "object",
        "additionalProperties": false,
        "required": required,
        "properties": {
            "specversion": { "const": SPEC_VERSION },
            "id": { "type": "string", "format": "uuid", "description": "Idempotency key: the same id published twice is one fact." },
            "source": { "type": "string", "minLength": 1, "description": "The publishing service." },
            "type": { "const": event_type.as_str() },
            "time": { "type": "string", "format": "date-time", "description": "When it happened (RFC 3339)." },
            "subject": { "type": "string", "minLength": 1, "description": "The user id." },
            PUBLISHER_ATTRIBUTE: { "type": "string", "minLength": 1, "maxLength": MAX_KEY_CHARS, "description": "Extension attribute: the credential that appended the event, stamped by authtrail's intake. Publishers never send it (the intake refuses it)." },
            PERSONAL_ATTRIBUTE: { "type": "string", "pattern": "^a256gcm\\.[1-9][0-9]*\\.[A-Za-z0-9_-]+$", "description": "Extension attribute: the event's personal members (identifier, IP, user agent and what was parsed from it, city, coordinates, device name), AES-256-GCM encrypted with the subject's key by authtrail's intake; `data` then holds the rest, with \"[redacted]\" in required personal members. Publishers never send it (the intake refuses it)." },
            "datacontenttype": { "const": DATA_CONTENT_TYPE },
            "schemaversion": { "const": CURRENT_SCHEMA_VERSION, "description": "Version of the data shape; readers upcast older versions." },
            "data": data,
        },
        "$defs": defs,
    })
}

/// `(file name, pretty JSON)` for every event type, as checked into `events/schema/`.
pub fn schema_files() -> Vec<(String, String)> {
    EventType::ALL
        .iter()
        .map(|t| {
            let text = serde_json::to_string_pretty(&event_schema(*t)).expect("schema serialises");
            (format!("{t}.schema.json"), text + "\n")
        })
        .collect()
}
