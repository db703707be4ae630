//! The validating parser: publisher bytes in, an [`Event`] or a [`ContractError`] out.
//!
//! Checks run in this order, and the first failure is reported:
//! 1. size (at most [`MAX_EVENT_BYTES`]), UTF-8, JSON, a JSON object;
//! 2. every string anywhere in the event (values and member names): no raw JWT, no control
//!    characters, no format characters (Unicode Cf: bidi overrides, zero-width, ...), at most
//!    [`MAX_STRING_CHARS`]; no member named like a secret (`password`, `otp`, `access_token`, …);
//! 3. envelope attributes: known names only (an unknown one is echoed only when it looks like
//!    an attribute name), `specversion`, `id`, `source`, `type`, `time`,
//!    `subject`, `publisher` (the extension authtrail stamps), `datacontenttype`, `schemaversion`;
//! 4. `data` upcast to the current version, then typed (unknown fields refused);
//! 5. rules across fields (e.g. `expires_at` after `time`, `session_id` for scope `one`).
//!
//! Nothing here allocates more than the input's size, and no input panics.

use crate::data::{EventData, Geo};
use crate::event::{Event, DATA_CONTENT_TYPE, PUBLISHER_ATTRIBUTE, SPEC_VERSION};
use crate::kind::{EventType, FailureReason, RevokeScope};
use crate::personal::{Sealed, PERSONAL_ATTRIBUTE};
use crate::upcast::upcast;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use std::fmt;
use uuid::Uuid;

/// Largest accepted event, in bytes. Auth events are small; a larger one is a bug or an attack.
pub const MAX_EVENT_BYTES: usize = 64 * 1024;
/// Longest accepted string value, in characters (user agents run to a few hundred).
pub const MAX_STRING_CHARS: usize = 2048;

/// Longest `subject` (user id) and `identifier` accepted, in characters: they are index keys.
pub const MAX_KEY_CHARS: usize = 320;
/// Times must fall within these years, so that every derived time (expiry = time + 12 h, ...)
/// stays representable everywhere (PostgreSQL, RFC 3339 with four-digit years).
pub const YEARS: std::ops::RangeInclusive<i32> = 1970..=9000;

/// The reason given for a member named like a secret.
pub const SECRET_NAME_REASON: &str =
    "names a secret; authtrail never stores passwords, tokens or one-time codes — publish an id or a hash";

/// The reason given for a value that looks like a raw token.
pub const RAW_TOKEN_REASON: &str =
    "looks like a raw JWT; publish the token's id (jti) or a hash of it, never the token";

const ATTRIBUTES: &[&str] = &[
    "specversion",
    "id",
    "source",
    "type",
    "time",
    "subject",
    PUBLISHER_ATTRIBUTE,
    PERSONAL_ATTRIBUTE,
    "datacontenttype",
    "schemaversion",
    "data",
];

/// Member names that announce a secret. authtrail stores only ids and hashes.
const SECRET_NAMES: &[&str] = &[
    "password",
    "passwd",
    "pwd",
    "new_password",
    "old_password",
    "secret",
    "client_secret",
    "otp",
    "otp_code",
    "code",
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "jwt",
    "api_key",
    "authorization",
    "cookie",
];

/// Why an event was refused: the field (a path such as `data.session_id` or `roles[1]`, or
/// `(event)` for the whole) and a reason a publisher can act on. Never echoes a secret value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContractError {
    pub field: String,
    pub reason: String,
}

impl ContractError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ContractError {
            field: field.into(),
            reason: reason.into(),
        }
    }
    fn whole(reason: impl Into<String>) -> Self {
        Self::new("(event)", reason)
    }
}

impl fmt::Display for ContractError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

impl std::error::Error for ContractError {}

/// Parses and validates one event from its wire bytes.
pub fn parse(bytes: &[u8]) -> Result<Event, ContractError> {
    // Encryption grows an event (base64 of its personal members): a sealed event may be up to
    // twice the limit a publisher's is held to.
    let too_large = |len: usize| {
        ContractError::whole(format!(
            "event is {len} bytes; the limit is {MAX_EVENT_BYTES}"
        ))
    };
    let may_be_sealed = || {
        let name = concat!("\"", "personaldata", "\"").as_bytes();
        bytes.windows(name.len()).any(|w| w == name)
    };
    if bytes.len() > 2 * MAX_EVENT_BYTES || (bytes.len() > MAX_EVENT_BYTES && !may_be_sealed()) {
        return Err(too_large(bytes.len()));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        ContractError::whole(format!(
            "not valid UTF-8 (bad byte at offset {})",
            e.valid_up_to()
        ))
    })?;
    let value: Value = serde_json::from_str(text)
        .map_err(|e| ContractError::whole(format!("not valid JSON: {e}")))?;
    let event = parse_value(value)?;
    if event.personal.is_none() && bytes.len() > MAX_EVENT_BYTES {
        return Err(too_large(bytes.len()));
    }
    Ok(event)
}

/// Validates an already-decoded JSON value (e.g. one element of a batch).
pub fn parse_value(value: Value) -> Result<Event, ContractError> {
    let Value::Object(mut obj) = value else {
        return Err(ContractError::whole("must be a JSON object"));
    };
    for (key, v) in &obj {
        if !ATTRIBUTES.contains(&key.as_str()) {
            return Err(unknown_attribute(key));
        }
        // The ciphertext is longer than any member may be; its own parser checks it.
        if key != PERSONAL_ATTRIBUTE {
            scan(v, key)?;
        }
    }

    let specversion = required_str(&obj, "specversion")?;
    if specversion != SPEC_VERSION {
        return Err(ContractError::new(
            "specversion",
            format!("must be \"{SPEC_VERSION}\", got {specversion:?}"),
        ));
    }
    let id = required_str(&obj, "id")?;
    let id =
        Uuid::parse_str(id).map_err(|e| ContractError::new("id", format!("not a UUID: {e}")))?;
    let source = required_str(&obj, "source")?.to_owned();
    if source.trim().is_empty() {
        return Err(ContractError::new("source", "must not be empty"));
    }
    let event_type: EventType = required_str(&obj, "type")?
        .parse()
        .map_err(|e| ContractError::new("type", e))?;
    let time = parse_time(required_str(&obj, "time")?, "time")?;
    let subject = match obj.get("subject") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.chars().count() > MAX_KEY_CHARS => {
            return Err(ContractError::new(
                "subject",
                format!("is longer than {MAX_KEY_CHARS} characters"),
            ))
        }
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
        Some(Value::String(_)) => return Err(ContractError::new("subject", "must not be empty")),
        Some(_) => {
            return Err(ContractError::new(
                "subject",
                "must be a string (the user id)",
            ))
        }
    };
    let publisher = match obj.get(PUBLISHER_ATTRIBUTE) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() || s.chars().count() > MAX_KEY_CHARS => {
            return Err(ContractError::new(
                PUBLISHER_ATTRIBUTE,
                format!("must be 1 to {MAX_KEY_CHARS} characters"),
            ))
        }
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(ContractError::new(PUBLISHER_ATTRIBUTE, "must be a string")),
    };
    let personal = match obj.get(PERSONAL_ATTRIBUTE) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            Some(Sealed::decode(s).map_err(|r| ContractError::new(PERSONAL_ATTRIBUTE, r))?)
        }
        Some(_) => return Err(ContractError::new(PERSONAL_ATTRIBUTE, "must be a string")),
    };
    if subject.is_none() && !event_type.subject_optional() {
        return Err(ContractError::new(
            "subject",
            format!("is required for {event_type} (the user id)"),
        ));
    }
    match obj.get("datacontenttype") {
        None => {}
        Some(Value::String(s)) if s == DATA_CONTENT_TYPE => {}
        Some(_) => {
            return Err(ContractError::new(
                "datacontenttype",
                format!("must be \"{DATA_CONTENT_TYPE}\""),
            ))
        }
    }
    let version = match obj.get("schemaversion") {
        None => return Err(ContractError::new("schemaversion", "is required")),
        Some(v) => v
            .as_u64()
            .ok_or_else(|| ContractError::new("schemaversion", "must be a positive integer"))?,
    };
    let data = match obj.remove("data") {
        None => return Err(ContractError::new("data", "is required")),
        Some(d @ Value::Object(_)) => d,
        Some(_) => return Err(ContractError::new("data", "must be a JSON object")),
    };
    let data = upcast(event_type, version, data)?;
    let data = EventData::from_value(event_type, data).map_err(|(path, reason)| {
        let field = if path.is_empty() {
            "data".to_owned()
        } else {
            format!("data.{path}")
        };
        ContractError::new(field, reason)
    })?;
    let mut event = Event {
        id,
        source,
        time,
        subject,
        publisher,
        personal,
        data,
    };
    normalise_times(&mut event);
    check_rules(&event)?;
    Ok(event)
}

fn required_str<'a>(obj: &'a Map<String, Value>, field: &str) -> Result<&'a str, ContractError> {
    match obj.get(field) {
        None | Some(Value::Null) => Err(ContractError::new(field, "is required")),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(ContractError::new(field, "must be a string")),
    }
}

fn parse_time(s: &str, field: &str) -> Result<DateTime<Utc>, ContractError> {
    let t = DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| ContractError::new(field, format!("not an RFC 3339 time ({e}): {s:?}")))?;
    check_year(t, field)?;
    Ok(t)
}

fn check_year(t: DateTime<Utc>, field: &str) -> Result<(), ContractError> {
    use chrono::Datelike;
    if YEARS.contains(&t.year()) {
        Ok(())
    } else {
        Err(ContractError::new(
            field,
            format!(
                "year {} is outside {} to {}",
                t.year(),
                YEARS.start(),
                YEARS.end()
            ),
        ))
    }
}

/// Walks every member name and string value under `value`.
fn scan(value: &Value, path: &str) -> Result<(), ContractError> {
    match value {
        Value::String(s) => check_string(s, path),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| scan(v, &format!("{path}[{i}]"))),
        Value::Object(members) => members.iter().try_for_each(|(k, v)| {
            if let Err(reason) = string_fault(k) {
                // The name itself is refused: the path shows it escaped and cut short, so the
                // error cannot carry what it refuses (a bidi override, 64 KB, ...).
                let field = format!("{path}.{}", printable(k, MAX_ECHOED_NAME_CHARS));
                return Err(ContractError::new(field, reason));
            }
            let child = format!("{path}.{k}");
            if SECRET_NAMES.contains(&k.to_ascii_lowercase().as_str()) {
                return Err(ContractError::new(child, SECRET_NAME_REASON));
            }
            scan(v, &child)
        }),
        _ => Ok(()),
    }
}

fn check_string(s: &str, path: &str) -> Result<(), ContractError> {
    string_fault(s).map_err(|reason| ContractError::new(path, reason))
}

/// Why a string value or member name is refused: too long, a control or format character, or
/// a raw token.
fn string_fault(s: &str) -> Result<(), String> {
    let chars = s.chars().count();
    if chars > MAX_STRING_CHARS {
        return Err(format!(
            "is {chars} characters; the limit is {MAX_STRING_CHARS}"
        ));
    }
    if let Some(c) = s.chars().find(|c| c.is_control()) {
        return Err(format!("contains the control character {}", code_point(c)));
    }
    if let Some(c) = s.chars().find(|c| is_format_char(*c)) {
        return Err(format!("contains the format character {}", code_point(c)));
    }
    if looks_like_jwt(s) {
        return Err(RAW_TOKEN_REASON.to_owned());
    }
    Ok(())
}

/// `U+202E`: how a reason names a character without containing it.
fn code_point(c: char) -> String {
    format!("U+{:04X}", u32::from(c))
}

/// Unicode general category Cf (format characters), as of Unicode 15/16: invisible characters
/// that change how text around them is shown — bidi embeddings, overrides and isolates
/// (U+202A–U+202E, U+2066–U+2069), marks (U+200E, U+200F), zero-width characters
/// (U+200B–U+200D, U+2060, U+FEFF), the soft hyphen (U+00AD), tags. An identifier or a note
/// holding one can read differently from what it is ("Trojan Source"), so the contract refuses
/// them everywhere, like control characters.
const FORMAT_CHARS: &[(u32, u32)] = &[
    (0x00AD, 0x00AD),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
];

/// Whether `c` is a Unicode format character (general category Cf, see [`FORMAT_CHARS`]).
pub fn is_format_char(c: char) -> bool {
    let c = u32::from(c);
    FORMAT_CHARS
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                std::cmp::Ordering::Less
            } else if lo > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// Whether the contract refuses `c` in any string: a control or a format character.
pub fn is_refused_char(c: char) -> bool {
    c.is_control() || is_format_char(c)
}

/// The most characters of a refused name an error shows.
const MAX_ECHOED_NAME_CHARS: usize = 64;

/// `s` safe to show in an error, a log line or an audit record: control and format characters
/// as `\u{202e}`, at most `max` characters (then `…`).
pub fn printable(s: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        if is_refused_char(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether `name` can be a CloudEvents attribute name (1 to 20 lower-case ASCII letters or
/// digits): only such a name is echoed in an error.
fn plausible_attribute(name: &str) -> bool {
    (1..=20).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// The error for a top-level member that is not an attribute of the contract. The name is
/// echoed only when it is a plausible attribute name; anything else (64 KB, control or bidi
/// characters) is reported as `(attribute)` without it.
fn unknown_attribute(name: &str) -> ContractError {
    let allowed = ATTRIBUTES.join(", ");
    if plausible_attribute(name) {
        ContractError::new(name, format!("unknown attribute; allowed are {allowed}"))
    } else {
        ContractError::new(
            "(attribute)",
            format!(
                "a member name is not a valid attribute name (CloudEvents: 1 to 20 lower-case \
                 letters and digits); allowed are {allowed}"
            ),
        )
    }
}

/// Whether `s` contains something shaped like a compact JWS/JWE: base64url segments joined by
/// two or four dots, the first starting with `eyJ` (the encoding of `{"`). Catches `Bearer eyJ…`.
pub fn looks_like_jwt(s: &str) -> bool {
    let is_b64url = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    s.split(|c: char| !(is_b64url(c) || c == '.')).any(|word| {
        let parts: Vec<&str> = word.split('.').collect();
        (parts.len() == 3 || parts.len() == 5)
            && parts[0].starts_with("eyJ")
            && parts[0].len() >= 10
            && !parts[1].is_empty()
    })
}

/// Truncates every time to microseconds, the precision of PostgreSQL and most clocks, so that a
/// time read back from any store equals the one in the event.
fn normalise_times(event: &mut Event) {
    use chrono::SubsecRound;
    event.time = event.time.trunc_subsecs(6);
    match &mut event.data {
        EventData::LoginSucceeded(d) => d.expires_at = d.expires_at.trunc_subsecs(6),
        EventData::TokenRefreshed(d) => d.expires_at = d.expires_at.trunc_subsecs(6),
        EventData::AccountLocked(d) | EventData::AccountUnlocked(d) => {
            d.until = d.until.map(|u| u.trunc_subsecs(6))
        }
        _ => {}
    }
    if let Some(e) = event.data.client_mut().and_then(|c| c.enrichment.as_mut()) {
        e.geoip_build = e.geoip_build.map(|b| b.trunc_subsecs(6));
    }
}

fn check_rules(event: &Event) -> Result<(), ContractError> {
    let after_time = |t: DateTime<Utc>, field: &str| {
        if t > event.time {
            Ok(())
        } else {
            Err(ContractError::new(field, "must be after the event's time"))
        }
    };
    let geo = |g: &Option<Geo>| check_geo(g.as_ref());
    let identifier = match &event.data {
        EventData::LoginSucceeded(d) => d.identifier.as_deref(),
        EventData::LoginFailed(d) => Some(d.identifier.as_str()),
        _ => None,
    };
    if identifier.is_some_and(|i| i.chars().count() > MAX_KEY_CHARS) {
        return Err(ContractError::new(
            "data.identifier",
            format!("is longer than {MAX_KEY_CHARS} characters"),
        ));
    }
    let times = match &event.data {
        EventData::LoginSucceeded(d) => vec![("data.expires_at", Some(d.expires_at))],
        EventData::TokenRefreshed(d) => vec![("data.expires_at", Some(d.expires_at))],
        EventData::AccountLocked(d) | EventData::AccountUnlocked(d) => {
            vec![("data.until", d.until)]
        }
        _ => vec![],
    };
    for (field, t) in times {
        if let Some(t) = t {
            check_year(t, field)?;
        }
    }
    match &event.data {
        EventData::LoginSucceeded(d) => {
            after_time(d.expires_at, "data.expires_at")?;
            geo(&d.geo)?;
        }
        EventData::LoginFailed(d) => {
            if event.subject.is_none() && d.failure_reason != FailureReason::UnknownUser {
                return Err(ContractError::new(
                    "subject",
                    "may be absent only when failure_reason is unknown_user",
                ));
            }
            geo(&d.geo)?;
        }
        EventData::TokenRefreshed(d) => {
            after_time(d.expires_at, "data.expires_at")?;
            if d.refresh_token_id == d.previous_refresh_token_id {
                return Err(ContractError::new(
                    "data.refresh_token_id",
                    "must differ from previous_refresh_token_id (a refresh rotates the token)",
                ));
            }
            geo(&d.geo)?;
        }
        EventData::SessionActivity(d) => geo(&d.geo)?,
        EventData::SessionRevoked(d) if d.session_id.is_none() && d.scope != RevokeScope::All => {
            return Err(ContractError::new(
                "data.session_id",
                format!("is required for scope {}", d.scope),
            ));
        }
        EventData::AccountLocked(d) => {
            if let Some(until) = d.until {
                after_time(until, "data.until")?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn check_geo(geo: Option<&Geo>) -> Result<(), ContractError> {
    let Some(g) = geo else { return Ok(()) };
    if let Some(cc) = &g.country_code {
        if cc.len() != 2 || !cc.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(ContractError::new(
                "data.geo.country_code",
                "must be two upper-case letters (ISO 3166-1 alpha-2)",
            ));
        }
    }
    if g.latitude.is_some_and(|v| !(-90.0..=90.0).contains(&v)) {
        return Err(ContractError::new(
            "data.geo.latitude",
            "must be within -90 and 90",
        ));
    }
    if g.longitude.is_some_and(|v| !(-180.0..=180.0).contains(&v)) {
        return Err(ContractError::new(
            "data.geo.longitude",
            "must be within -180 and 180",
        ));
    }
    Ok(())
}
