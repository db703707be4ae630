//! The slice of the read tables a batch needs ([`State`]), how to know which slice
//! ([`Needs`]), and what a batch changes ([`Changes`]).
//!
//! Contract with the loader (the SQL sink, or [`crate::memory::Tables`]): for a batch whose
//! earliest event time is `since`, [`State`] must hold at least
//! - every session named by an event of the batch;
//! - every session of the batch's users with `(ended_at IS NULL OR ended_at > since)` and
//!   `horizon > since` (could be active at or after `since`);
//! - every failed attempt of the batch's subject keys at or after `since - failed window`;
//! - every successful login of the batch's users at or after `since - history window`
//!   ([`Rules::new_country_window`]: new country, new device, hour profile, travel);
//! - the profiles and trusted devices of the batch's users.
//!
//! The fold only ever decides by event time (`active at t`, `within the window before t`), so
//! holding more than this never changes a result: the tables do not depend on batch boundaries.

use crate::detect::Signal;
use crate::rows::{
    LoginAttempt, Review, SecurityEvent, Session, StatCounts, StatKey, TrustedDevice, UserProfile,
};
use crate::Rules;
use authtrail_events::data::EventData;
use authtrail_events::Event;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// What a batch must load.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Needs {
    pub session_ids: BTreeSet<String>,
    pub users: BTreeSet<String>,
    pub subject_keys: BTreeSet<String>,
    /// The earliest event time in the batch.
    pub since: Option<DateTime<Utc>>,
    pub failures_since: Option<DateTime<Utc>>,
    pub countries_since: Option<DateTime<Utc>>,
}

impl Needs {
    pub fn of(events: &[&Event], rules: &Rules) -> Needs {
        let mut n = Needs::default();
        for e in events {
            if let Some(s) = &e.subject {
                n.users.insert(s.clone());
            }
            n.subject_keys.insert(e.partition_key());
            if let Some(sid) = session_of(&e.data) {
                n.session_ids.insert(sid.to_owned());
            }
            n.since = Some(n.since.map_or(e.time, |s| s.min(e.time)));
        }
        n.failures_since = n.since.map(|s| s - rules.failed_attempts_window);
        n.countries_since = n.since.map(|s| s - rules.new_country_window);
        n
    }
}

/// The session an event names, if any.
pub fn session_of(data: &EventData) -> Option<&str> {
    match data {
        EventData::LoginSucceeded(d) => Some(d.session_id.as_str()),
        EventData::TokenRefreshed(d) => Some(d.session_id.as_str()),
        EventData::SessionActivity(d) => Some(d.session_id.as_str()),
        EventData::SessionLoggedOut(d) => Some(d.session_id.as_str()),
        EventData::SessionRevoked(d) => d.session_id.as_ref().map(|s| s.as_str()),
        EventData::OtpSent(d) => d.session_id.as_ref().map(|s| s.as_str()),
        EventData::OtpVerified(d) => d.session_id.as_ref().map(|s| s.as_str()),
        EventData::OtpFailed(d) => d.session_id.as_ref().map(|s| s.as_str()),
        _ => None,
    }
}

/// What the rules remember of one successful login (a `login_history` row).
#[derive(Debug, Clone, PartialEq)]
pub struct PastLogin {
    pub at: DateTime<Utc>,
    /// The login's event id (travel alerts show both ends of the journey).
    pub event_id: Uuid,
    pub country_code: Option<String>,
    /// The device id, else the user agent: what "the same device" means.
    pub device: Option<String>,
    pub ip: Option<String>,
    /// Latitude and longitude, when geo-located.
    pub point: Option<(f64, f64)>,
    /// "City, Country" (or what is known of it).
    pub place: Option<String>,
    /// Whether the login raised a detection signal: the hour-of-day profile learns from the
    /// others only, so an intruder's night logins do not make nights usual.
    pub flagged: bool,
}

/// The loaded slice of the tables, updated in memory as a batch is folded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct State {
    pub sessions: BTreeMap<String, Session>,
    /// user → ids of that user's sessions in `sessions`.
    pub user_sessions: BTreeMap<String, BTreeSet<String>>,
    /// subject key → times of failed attempts.
    pub failures: BTreeMap<String, Vec<DateTime<Utc>>>,
    /// user → their successful logins (within the history window of the batch).
    pub logins: BTreeMap<String, Vec<PastLogin>>,
    pub profiles: BTreeMap<String, UserProfile>,
    pub devices: BTreeMap<(String, String), TrustedDevice>,
}

impl State {
    /// Adds a loaded session (and indexes it by user).
    pub fn insert_session(&mut self, s: Session) {
        if let Some(prev) = self.sessions.get(&s.session_id) {
            if prev.user_id != s.user_id {
                if let Some(ids) = self.user_sessions.get_mut(&prev.user_id) {
                    ids.remove(&s.session_id);
                }
            }
        }
        self.user_sessions
            .entry(s.user_id.clone())
            .or_default()
            .insert(s.session_id.clone());
        self.sessions.insert(s.session_id.clone(), s);
    }

    /// Removes a session (and its entry in its user's index).
    pub fn remove_session(&mut self, sid: &str) {
        let Some(s) = self.sessions.remove(sid) else {
            return;
        };
        if let Some(ids) = self.user_sessions.get_mut(&s.user_id) {
            ids.remove(sid);
            if ids.is_empty() {
                self.user_sessions.remove(&s.user_id);
            }
        }
    }
}

/// What a batch changes: final images of upserted rows, appended rows, additive deltas.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    pub sessions: BTreeMap<String, Session>,
    pub login_history: Vec<LoginAttempt>,
    pub security_events: Vec<SecurityEvent>,
    /// Earliest review per security event within the batch (the sink keeps the earliest overall).
    pub reviews: BTreeMap<Uuid, Review>,
    pub devices: BTreeMap<(String, String), TrustedDevice>,
    pub profiles: BTreeMap<String, UserProfile>,
    pub stats: BTreeMap<StatKey, StatCounts>,
    /// Detection signals (stage 1); the sink turns them into alerts (`crate::detect`).
    pub signals: Vec<Signal>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
            && self.login_history.is_empty()
            && self.security_events.is_empty()
            && self.reviews.is_empty()
            && self.devices.is_empty()
            && self.profiles.is_empty()
            && self.stats.is_empty()
            && self.signals.is_empty()
    }
}
