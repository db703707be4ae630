//! The CloudEvents envelope and its canonical serialisation.

use crate::data::EventData;
use crate::kind::EventType;
use crate::personal::{Sealed, PERSONAL_ATTRIBUTE};
use crate::upcast::CURRENT_SCHEMA_VERSION;
use chrono::{DateTime, Utc};
use serde::ser::{Serialize, SerializeMap, Serializer};
use uuid::Uuid;

/// The only CloudEvents version spoken.
pub const SPEC_VERSION: &str = "1.0";
/// The only `datacontenttype`.
pub const DATA_CONTENT_TYPE: &str = "application/json";
/// The CloudEvents extension attribute naming who appended an event: the credential the intake
/// authenticated (`api-key:<name>`, `service:<sub>`), or authtrail itself. Stamped by authtrail,
/// never taken from a publisher.
pub const PUBLISHER_ATTRIBUTE: &str = "publisher";

/// One validated authentication fact at the current schema version.
///
/// The type is not stored separately: it is [`EventData::event_type`], so the two cannot disagree.
/// Values are built by [`crate::parse`] (from a publisher's bytes) or directly by trusted code
/// (the simulator, API commands); [`Event::to_json_bytes`] is the one serialisation appended to
/// the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The idempotency key: the same id published twice is one fact.
    pub id: Uuid,
    /// The publishing service, e.g. `auth-service` or `/services/django-auth`.
    pub source: String,
    /// When it happened (not when it was published).
    pub time: DateTime<Utc>,
    /// The user id; `None` only for a failed login of an unknown user.
    pub subject: Option<String>,
    /// Who appended it ([`PUBLISHER_ATTRIBUTE`]); `None` until the intake stamps it (and in logs
    /// written before stamping existed).
    pub publisher: Option<String>,
    /// The encrypted personal members ([`crate::personal`]); `None` while they are in `data`.
    pub personal: Option<Sealed>,
    pub data: EventData,
}

impl Event {
    pub fn event_type(&self) -> EventType {
        self.data.event_type()
    }

    /// The Kafka message key: the subject, or for a failed login of an unknown user the
    /// lower-cased identifier, so that every event about one account lands in one partition in
    /// order. A review is keyed by the security event it reviews, so that all reviews of one
    /// security event are in one partition and "the first review in the log" is well defined.
    pub fn partition_key(&self) -> String {
        match (&self.subject, &self.data) {
            (_, EventData::SecurityEventReviewed(d)) => d.security_event_id.to_string(),
            (Some(subject), _) => subject.clone(),
            (None, EventData::LoginFailed(d)) => d.identifier.as_str().to_lowercase(),
            // parse() refuses other subject-less events; trusted builders get a stable fallback.
            (None, _) => self.id.to_string(),
        }
    }

    /// The canonical JSON bytes of this event: attribute order fixed, absent options omitted,
    /// times in UTC. Parsing these bytes gives back an equal `Event`.
    pub fn to_json_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an Event always serialises")
    }
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("specversion", SPEC_VERSION)?;
        m.serialize_entry("id", &self.id)?;
        m.serialize_entry("source", &self.source)?;
        m.serialize_entry("type", self.event_type().as_str())?;
        m.serialize_entry("time", &self.time)?;
        if let Some(subject) = &self.subject {
            m.serialize_entry("subject", subject)?;
        }
        if let Some(publisher) = &self.publisher {
            m.serialize_entry(PUBLISHER_ATTRIBUTE, publisher)?;
        }
        if let Some(sealed) = &self.personal {
            m.serialize_entry(PERSONAL_ATTRIBUTE, &sealed.encode())?;
        }
        m.serialize_entry("datacontenttype", DATA_CONTENT_TYPE)?;
        m.serialize_entry("schemaversion", &CURRENT_SCHEMA_VERSION)?;
        m.serialize_entry("data", &self.data)?;
        m.end()
    }
}
