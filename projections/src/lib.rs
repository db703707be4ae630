//! The pure fold of authtrail: `(prior state, event) → row changes`.
//!
//! This crate knows the event contract ([`authtrail_events`]) and nothing of SQL, Kafka or
//! clocks: every derived value depends only on the events and the [`Rules`], so a replay of the
//! same log always yields the same rows. The projection workers (main crate, `src/projector/`)
//! own all I/O: they load the [`State`] a batch needs, run [`Fold`], and write the [`Changes`]
//! in the same transaction as the batch's checkpoint.
//!
//! Layout:
//! - [`rows`]: the rows of the read tables as plain values.
//! - [`state`]: what a batch must load ([`Needs`]), the loaded slice ([`State`]), and what it
//!   changes ([`Changes`]).
//! - [`fold`]: the audit rules, applied event by event ([`Fold`]).
//! - [`detect`]: the detection rules: signals (from the fold) and how they become alerts.
//! - [`cache`]: what a worker keeps of the state between batches, and why that is exact.
//! - [`position`]: partitions of the log and places in them, which the cache keys by.
//! - [`memory`]: the read tables in memory — the reference model the SQL sink is tested against,
//!   and a projection that needs no database.

pub mod cache;
pub mod detect;
pub mod fold;
pub mod memory;
pub mod position;
pub mod rows;
pub mod state;

#[cfg(feature = "gen")]
pub mod gen;

pub use authtrail_events as events;
pub use cache::Cache;
pub use fold::Fold;
pub use position::{Position, TopicPartition};
pub use state::{Changes, Needs, State};

use chrono::TimeDelta;

/// The configurable parts of the rules. Part of the fold's input: the same log under the same
/// rules gives the same tables.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    /// A session with no activity for this long is idle-expired (NIST 800-63B AAL2: 30 min).
    pub idle_timeout: TimeDelta,
    /// No session lives longer than this after login (AAL2: 12 h).
    pub absolute_timeout: TimeDelta,
    /// A login beyond this many active sessions revokes the least recently active one.
    pub max_sessions: usize,
    /// An attempt is suspicious when its key had at least this many failures ...
    pub failed_attempts_threshold: usize,
    /// ... within this window before it.
    pub failed_attempts_window: TimeDelta,
    /// A successful login is suspicious when its country was not seen in the user's successful
    /// logins within this window before it. Also the history the other per-login judgements
    /// look at (new device, hour profile, travel, known addresses).
    pub new_country_window: TimeDelta,
    /// The detection rules ([`detect`]).
    pub detection: detect::Detection,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            idle_timeout: TimeDelta::minutes(30),
            absolute_timeout: TimeDelta::hours(12),
            max_sessions: 5,
            failed_attempts_threshold: 3,
            failed_attempts_window: TimeDelta::minutes(15),
            new_country_window: TimeDelta::days(30),
            detection: detect::Detection::default(),
        }
    }
}
