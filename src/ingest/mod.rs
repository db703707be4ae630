//! The intake: events in (HTTP, `authtrail publish`, the simulator), validated by the contract,
//! enriched, appended through the [`Publisher`].
//!
//! - `decode`: a request body and its media type → events, all-or-nothing (pure, no I/O).
//! - `admit`: whether the caller may append those events now — its grant's types and sources,
//!   the time window (`ingest.max_future_skew`, `ingest.max_age`) — all-or-nothing (pure).
//! - [`Intake::submit`]: stamp the publisher, enrich and append; resolves after the broker
//!   acknowledged every event.
//! - [`enrich`]: GeoIP and user-agent enrichment.
//! - `http`: `POST /v1/events`.
//! - [`stage`]: the enrichment stage, the same door for events written to the raw topic.

pub mod enrich;
pub(crate) mod http;
pub mod stage;

use crate::auth::Grant;
use crate::config::IngestConfig;
use crate::kafka::{Appended, PublishError, Publisher};
use crate::privacy::Keyring;
use crate::server::ApiError;
use authtrail_events::event::PUBLISHER_ATTRIBUTE;
use authtrail_events::{ContractError, Event, EventType};
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use serde_json::json;
use serde_json::value::RawValue;
use std::sync::Arc;

pub use enrich::Enricher;

/// Single event: `application/cloudevents+json` (CloudEvents structured mode).
const CE_JSON: &str = "application/cloudevents+json";
/// Batch: a JSON array of events (CloudEvents batched mode).
pub const CE_BATCH: &str = "application/cloudevents-batch+json";
/// Batch: one event per line.
const NDJSON: &str = "application/x-ndjson";

/// Size limits of one request and the time window of its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    max_body_bytes: usize,
    max_batch_events: usize,
    max_future_skew: TimeDelta,
    max_age: TimeDelta,
}

impl From<&IngestConfig> for Limits {
    fn from(c: &IngestConfig) -> Self {
        Limits {
            max_body_bytes: c.max_body_bytes,
            max_batch_events: c.max_batch_events,
            max_future_skew: c.max_future_skew.delta(),
            max_age: c.max_age.delta(),
        }
    }
}

/// How a body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Single,
    JsonBatch,
    Ndjson,
}

/// The framing of a `Content-Type` value, or a 415 naming the accepted types.
fn framing(content_type: Option<&str>) -> Result<Framing, ApiError> {
    let unsupported = |got: &str| {
        ApiError::UnsupportedMediaType {
        detail: format!(
            "Content-Type {got}: send one event as {CE_JSON} or application/json, or a batch as {CE_BATCH} or {NDJSON} (UTF-8)"
        ),
        accepted: Some(json!([CE_JSON, "application/json", CE_BATCH, NDJSON])),
    }
    };
    let Some(ct) = content_type else {
        return Err(unsupported("missing"));
    };
    let mut parts = ct.split(';');
    let essence = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    for param in parts {
        if let Some((k, v)) = param.split_once('=') {
            if k.trim().eq_ignore_ascii_case("charset") {
                let v = v.trim().trim_matches('"');
                if !v.eq_ignore_ascii_case("utf-8") && !v.eq_ignore_ascii_case("utf8") {
                    return Err(unsupported(&format!("{essence:?} with charset {v:?}")));
                }
            }
        }
    }
    match essence.as_str() {
        CE_JSON | "application/json" => Ok(Framing::Single),
        CE_BATCH => Ok(Framing::JsonBatch),
        NDJSON | "application/ndjson" => Ok(Framing::Ndjson),
        _ => Err(unsupported(&format!("{essence:?}"))),
    }
}

/// One refused event of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct EventError {
    /// 0-based position in the batch (NDJSON: among non-blank lines).
    index: usize,
    /// NDJSON only: 1-based line number.
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<usize>,
    field: String,
    reason: String,
    /// The event's `type` when it named a known one (for metrics).
    #[serde(skip)]
    event_type: Option<EventType>,
}

/// At most this many per-event errors are listed in one problem body.
const MAX_LISTED_ERRORS: usize = 100;

/// 413 with the limit that was exceeded.
fn too_large(what: &str, limit: usize, unit: &'static str) -> ApiError {
    ApiError::TooLarge {
        what: what.to_owned(),
        limit,
        unit,
    }
}

fn bad_body(detail: impl Into<String>) -> ApiError {
    ApiError::MalformedBody(detail.into())
}

/// Splits and validates a body. All-or-nothing: any invalid event gives a 400 listing every
/// invalid event by index, field and reason (the reasons of [`authtrail_events::parse`]).
fn decode(framing: Framing, body: &[u8], limits: Limits) -> Result<Vec<Event>, ApiError> {
    if body.len() > limits.max_body_bytes {
        return Err(too_large("request body", limits.max_body_bytes, "bytes"));
    }
    let mut errors: Vec<EventError> = Vec::new();
    let mut events = Vec::new();
    let mut check =
        |index: usize, line: Option<usize>, bytes: &[u8]| match authtrail_events::parse(bytes) {
            Ok(e) => events.push(e),
            Err(ContractError { field, reason }) => errors.push(EventError {
                index,
                line,
                field,
                reason,
                event_type: peek_type(bytes),
            }),
        };
    match framing {
        Framing::Single => {
            let trimmed = body.trim_ascii_start();
            if trimmed.starts_with(b"[") {
                return Err(bad_body(format!(
                    "the body is a JSON array; send a batch as {CE_BATCH}"
                )));
            }
            check(0, None, body);
        }
        Framing::JsonBatch => {
            let items: Vec<&RawValue> = serde_json::from_slice(body).map_err(|e| {
                bad_body(format!(
                    "a batch must be a JSON array of event objects: {e}"
                ))
            })?;
            if items.len() > limits.max_batch_events {
                return Err(too_large(
                    &format!("batch of {} events", items.len()),
                    limits.max_batch_events,
                    "events",
                ));
            }
            for (i, raw) in items.iter().enumerate() {
                check(i, None, raw.get().as_bytes());
            }
        }
        Framing::Ndjson => {
            let lines: Vec<(usize, &[u8])> = body
                .split(|b| *b == b'\n')
                .enumerate()
                .map(|(i, l)| (i + 1, l.strip_suffix(b"\r").unwrap_or(l)))
                .filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace))
                .collect();
            if lines.len() > limits.max_batch_events {
                return Err(too_large(
                    &format!("batch of {} events", lines.len()),
                    limits.max_batch_events,
                    "events",
                ));
            }
            for (i, (line, bytes)) in lines.into_iter().enumerate() {
                check(i, Some(line), bytes);
            }
        }
    }
    if !errors.is_empty() {
        return Err(invalid_events(&errors, events.len() + errors.len()));
    }
    if events.is_empty() {
        return Err(bad_body("the batch holds no events"));
    }
    Ok(events)
}

/// [`decode`] of a body sent as `content_type`: what `POST /v1/events` does before enriching.
/// Only for the fuzz tests (`tests/security/input/fuzz.rs`), which feed it arbitrary bodies.
#[doc(hidden)]
pub fn decode_body(
    content_type: Option<&str>,
    body: &[u8],
    limits: Limits,
) -> Result<Vec<Event>, ApiError> {
    decode(framing(content_type)?, body, limits)
}

/// Why one event may not be appended by the holder of `grant` at `now`, if it may not: beyond
/// the grant (a type or source it does not hold), carrying the `publisher` attribute only
/// authtrail sets, or outside the time window. Shared by the HTTP intake and the enrichment
/// stage, so both doors admit the same events.
pub(crate) fn refusal(
    e: &Event,
    grant: &Grant,
    now: DateTime<Utc>,
    limits: Limits,
) -> Option<Refused> {
    if let Err(r) = grant.check(e.event_type(), &e.source) {
        return Some(Refused {
            forbidden: true,
            field: r.field,
            reason: r.reason,
        });
    }
    let invalid = |field: &'static str, reason: String| {
        Some(Refused {
            forbidden: false,
            field,
            reason,
        })
    };
    if e.publisher.is_some() {
        invalid(
            PUBLISHER_ATTRIBUTE,
            "is stamped by authtrail from your credential; leave it out".to_owned(),
        )
    } else if e.personal.is_some() {
        invalid(
            authtrail_events::personal::PERSONAL_ATTRIBUTE,
            "is set by authtrail when it encrypts personal data; send the members in data"
                .to_owned(),
        )
    } else if e.time > now + limits.max_future_skew {
        invalid(
            "time",
            format!(
                "is {} ahead of the server clock; at most {} is allowed",
                about(e.time - now),
                span(limits.max_future_skew)
            ),
        )
    } else if e.time < now - limits.max_age && !grant.may_backfill() {
        invalid(
            "time",
            format!(
                "is {} old; events older than {} need a credential with the backfill scope",
                about(now - e.time),
                span(limits.max_age)
            ),
        )
    } else {
        None
    }
}

/// Why an event was not admitted (see [`refusal`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused {
    /// Beyond the caller's grant (403), rather than invalid now (400).
    pub(crate) forbidden: bool,
    pub(crate) field: &'static str,
    pub(crate) reason: String,
}

/// Whether the holder of `grant` may append `events` at `now`. All-or-nothing, like
/// [`decode`]: any event beyond the grant refuses the request with 403 listing those; otherwise
/// any other [`refusal`] refuses it with 400 naming the field.
fn admit(
    events: &[Event],
    grant: &Grant,
    now: DateTime<Utc>,
    limits: Limits,
) -> Result<(), ApiError> {
    let refused: Vec<(usize, Refused)> = events
        .iter()
        .enumerate()
        .filter_map(|(i, e)| Some((i, refusal(e, grant, now, limits)?)))
        .collect();
    let listed = |forbidden: bool| -> Vec<EventError> {
        refused
            .iter()
            .filter(|(_, r)| r.forbidden == forbidden)
            .map(|(i, r)| EventError {
                index: *i,
                line: None,
                field: r.field.to_owned(),
                reason: r.reason.clone(),
                event_type: Some(events[*i].event_type()),
            })
            .collect()
    };
    let forbidden = listed(true);
    if !forbidden.is_empty() {
        return Err(refused_events(
            &forbidden,
            events.len(),
            "not_permitted",
            true,
        ));
    }
    let invalid = listed(false);
    if !invalid.is_empty() {
        return Err(refused_events(
            &invalid,
            events.len(),
            "out_of_window",
            false,
        ));
    }
    Ok(())
}

/// A limit for messages, exact in the largest unit that divides it (`2m`, `7d`, `150s`).
fn span(d: TimeDelta) -> String {
    let s = d.num_seconds();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if s >= size && s % size == 0 {
            return format!("{}{unit}", s / size);
        }
    }
    format!("{s}s")
}

/// A measured offset for messages, to the nearest whole unit a person would use (`45m`, `8d`).
fn about(d: TimeDelta) -> String {
    let s = d.num_seconds();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if s >= 2 * size {
            return format!("{}{unit}", (s + size / 2) / size);
        }
    }
    format!("{s}s")
}

fn invalid_events(errors: &[EventError], total: usize) -> ApiError {
    refused_events(errors, total, "invalid", false)
}

/// The problem listing refused events (`forbidden`: 403, else 400), counted by type and reason.
fn refused_events(
    errors: &[EventError],
    total: usize,
    reason: &'static str,
    forbidden: bool,
) -> ApiError {
    for e in errors {
        let t = e.event_type.map(EventType::as_str).unwrap_or("unknown");
        metrics::counter!("authtrail_ingest_events_rejected_total", "type" => t, "reason" => reason)
            .increment(1);
    }
    let rest = total - errors.len();
    if rest > 0 {
        metrics::counter!("authtrail_ingest_events_rejected_total", "type" => "unknown", "reason" => "batch_refused")
            .increment(rest as u64);
    }
    let first = &errors[0];
    let detail = if total == 1 && first.line.is_none() {
        format!("{}: {}", first.field, first.reason)
    } else {
        format!(
            "{} of {total} events {}; nothing was appended. First: event {}{}: {}: {}",
            errors.len(),
            if forbidden {
                "not permitted"
            } else {
                "invalid"
            },
            first.index,
            first
                .line
                .map(|l| format!(" (line {l})"))
                .unwrap_or_default(),
            first.field,
            first.reason
        )
    };
    let listed: Vec<_> = errors.iter().take(MAX_LISTED_ERRORS).collect();
    ApiError::InvalidEvents {
        detail,
        errors: serde_json::to_value(listed).unwrap_or_default(),
        invalid_count: errors.len(),
        forbidden,
    }
}

/// The `type` of an (invalid) event, when it names a known one.
fn peek_type(bytes: &[u8]) -> Option<EventType> {
    #[derive(serde::Deserialize)]
    struct Peek<'a> {
        #[serde(borrow, rename = "type")]
        t: Option<&'a str>,
    }
    serde_json::from_slice::<Peek>(bytes)
        .ok()
        .and_then(|p| p.t)
        .and_then(|t| t.parse().ok())
}

/// Enrich-and-append, shared by the HTTP intake, `authtrail publish` and the simulator.
pub struct Intake {
    publisher: Arc<Publisher>,
    enricher: Arc<Enricher>,
    limits: Limits,
    /// The subjects' keys; personal members are encrypted when `encrypt`.
    keys: Option<Arc<Keyring>>,
    encrypt: bool,
}

impl Intake {
    /// Publisher, enricher and limits from configuration (does not contact the broker).
    pub(crate) fn from_config(config: &crate::config::Config) -> anyhow::Result<Self> {
        let publisher = Arc::new(Publisher::new(&config.kafka)?);
        let enricher = Arc::new(Enricher::from_config(&config.ingest)?);
        let intake = Intake::new(publisher, enricher, Limits::from(&config.ingest));
        // The keyring's pool connects on first use: an intake-only server or `publish` without
        // encryption never touches the database.
        let keys = Keyring::from_config(config)?;
        Ok(intake.with_keys(keys, config.privacy.encrypt))
    }

    /// Encrypts personal members with `keys` when `encrypt` (see [`crate::privacy`]).
    pub fn with_keys(mut self, keys: Option<Arc<Keyring>>, encrypt: bool) -> Self {
        assert!(
            keys.is_some() || !encrypt,
            "encryption needs a keyring (Config::check refuses privacy.encrypt without a master key)"
        );
        self.keys = keys;
        self.encrypt = encrypt;
        self
    }

    /// The keyring (`None` without `privacy.master_key_file`), for the readers in this process.
    pub fn keys(&self) -> Option<&Arc<Keyring>> {
        self.keys.as_ref()
    }

    pub fn new(publisher: Arc<Publisher>, enricher: Arc<Enricher>, limits: Limits) -> Self {
        Intake {
            publisher,
            enricher,
            limits,
            keys: None,
            encrypt: false,
        }
    }

    pub(crate) fn limits(&self) -> Limits {
        self.limits
    }

    pub(crate) fn enricher(&self) -> &Arc<Enricher> {
        &self.enricher
    }

    pub(crate) fn publisher(&self) -> &Arc<Publisher> {
        &self.publisher
    }

    /// Enriches `events` in place. Parsing user agents is CPU work: on a multi-threaded runtime
    /// it runs as blocking work, so other requests keep being served.
    fn enrich(&self, events: &mut [Event]) {
        use tokio::runtime::{Handle, RuntimeFlavor};
        match Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(RuntimeFlavor::MultiThread) => {
                tokio::task::block_in_place(|| self.enricher.enrich_all(events))
            }
            _ => self.enricher.enrich_all(events),
        }
    }

    /// What every door does to admitted events before they are appended: stamps `publisher`,
    /// enriches them, then encrypts their personal members (the HTTP intake, `publish`, the
    /// simulator and the enrichment stage). Enrichment comes first: it reads the IP address and
    /// user agent that encryption then takes out of `data`.
    pub(crate) async fn prepare(
        &self,
        events: &mut [Event],
        publisher: &str,
    ) -> Result<(), crate::privacy::PrivacyError> {
        for e in events.iter_mut() {
            e.publisher = Some(publisher.to_owned());
        }
        self.enrich(events);
        if let (true, Some(keys)) = (self.encrypt, &self.keys) {
            keys.seal_all(events).await?;
        }
        Ok(())
    }

    /// Stamps `publisher` (who appends them: see [`crate::auth::Caller::publisher`]) on every
    /// event, enriches and appends them; resolves after the broker acknowledged every one, with
    /// where each landed (input order). On error some may already be appended: submitting them
    /// again is safe (consumers deduplicate by id). What the publisher may append is checked
    /// before (the HTTP intake's `admit`); callers in this process are trusted.
    pub async fn submit(
        &self,
        events: Vec<Event>,
        publisher: &str,
    ) -> Result<Vec<Appended>, PublishError> {
        let mut events = events;
        let appended = match self.prepare(&mut events, publisher).await {
            Ok(()) => self.publisher.publish_all(&events).await,
            Err(e) => Err(PublishError::Privacy(e.to_string())),
        };
        match &appended {
            Ok(_) => {
                for e in &events {
                    metrics::counter!("authtrail_ingest_events_accepted_total", "type" => e.event_type().as_str())
                        .increment(1);
                }
            }
            Err(err) => {
                tracing::error!(error = %err, events = events.len(), "appending to the log failed");
                for e in &events {
                    metrics::counter!("authtrail_ingest_events_rejected_total", "type" => e.event_type().as_str(), "reason" => "publish_failed")
                        .increment(1);
                }
            }
        }
        appended
    }
}
