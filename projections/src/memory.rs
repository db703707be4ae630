//! The read tables in memory.
//!
//! The reference model of the SQL sink: [`Tables::load`] returns exactly the slice the SQL
//! loader returns (see the contract in [`crate::state`]) and [`Tables::write`] applies
//! [`Changes`] with the SQL sink's semantics (upsert final images, append rows, add deltas, keep
//! the earliest review). Tests compare the two; tools that need a projection without a database
//! (time travel for one user) can use it directly.

use crate::cache::Cache;
use crate::detect::{self, Alert, Signal};
use crate::position::{Position, TopicPartition};
use crate::rows::{
    LoginAttempt, Review, SecurityEvent, Session, StatCounts, StatKey, TrustedDevice, UserProfile,
};
use crate::state::{Changes, Needs, PastLogin, State};
use crate::{Fold, Rules};
use authtrail_events::Event;
use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tables {
    pub sessions: BTreeMap<String, Session>,
    pub login_history: BTreeMap<Uuid, LoginAttempt>,
    pub security_events: BTreeMap<Uuid, SecurityEvent>,
    pub reviews: BTreeMap<Uuid, Review>,
    pub devices: BTreeMap<(String, String), TrustedDevice>,
    pub profiles: BTreeMap<String, UserProfile>,
    pub stats: BTreeMap<StatKey, StatCounts>,
    /// Detection signals by (rule, subject, time, event id).
    pub signals: BTreeMap<SignalKey, Signal>,
    /// Alerts: the episodes of all signals that reach their rule's thresholds.
    pub alerts: BTreeMap<Uuid, Alert>,
    /// Ids of every event projected (the deduplication set).
    pub processed: BTreeSet<Uuid>,
}

/// The key of `alert_signals`.
pub type SignalKey = (String, String, chrono::DateTime<chrono::Utc>, Uuid);

/// The key of a signal row.
pub fn signal_key(s: &Signal) -> SignalKey {
    (s.rule.clone(), s.subject.clone(), s.at, s.event_id)
}

/// The events of a batch that are new: not projected before and first of their id in the batch.
pub fn fresh<'e>(events: &'e [Event], already: &BTreeSet<Uuid>) -> Vec<&'e Event> {
    let mut seen = BTreeSet::new();
    events
        .iter()
        .filter(|e| !already.contains(&e.id) && seen.insert(e.id))
        .collect()
}

/// Folds a batch of new events over a loaded state.
pub(crate) fn fold_batch(rules: &Rules, state: State, events: &[&Event]) -> Changes {
    fold_with_state(rules, state, events).0
}

/// Folds a batch of new events over a loaded state; also returns the state afterwards.
pub fn fold_with_state(rules: &Rules, state: State, events: &[&Event]) -> (Changes, State) {
    let mut fold = Fold::new(rules, state);
    for e in events {
        fold.apply(e);
    }
    fold.finish()
}

/// Where a log stands, for [`Tables::apply_batch_cached`]: how many events each partition has
/// had applied (its checkpoint), and the projection's epoch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogPosition {
    pub checkpoints: BTreeMap<TopicPartition, i64>,
    pub epoch: Option<Uuid>,
}

impl LogPosition {
    /// Changes the epoch, as anyone who writes the tables outside a partition's worker must.
    pub fn bump(&mut self) {
        self.epoch = Some(Uuid::from_u128(self.epoch.map_or(1, |u| u.as_u128() + 1)));
    }
}

impl Tables {
    /// The slice a batch needs (same contract as the SQL loader).
    pub fn load(&self, needs: &Needs) -> State {
        let mut state = State::default();
        let Some(since) = needs.since else {
            return state;
        };
        for s in self.sessions.values() {
            let named = needs.session_ids.contains(&s.session_id);
            let open = needs.users.contains(&s.user_id)
                && s.ended_at.is_none_or(|e| e > since)
                && s.horizon() > since;
            if named || open {
                state.insert_session(s.clone());
            }
        }
        let failures_since = needs.failures_since.unwrap_or(since);
        let countries_since = needs.countries_since.unwrap_or(since);
        let flagged: BTreeSet<Uuid> = self.signals.values().map(|s| s.event_id).collect();
        for a in self.login_history.values() {
            if !a.success
                && needs.subject_keys.contains(&a.subject_key)
                && a.attempted_at >= failures_since
            {
                state
                    .failures
                    .entry(a.subject_key.clone())
                    .or_default()
                    .push(a.attempted_at);
            }
            if let (true, Some(user)) = (a.success, &a.user_id) {
                if needs.users.contains(user) && a.attempted_at >= countries_since {
                    state
                        .logins
                        .entry(user.clone())
                        .or_default()
                        .push(PastLogin {
                            flagged: flagged.contains(&a.id),
                            ..a.past_login()
                        });
                }
            }
        }
        for user in &needs.users {
            if let Some(p) = self.profiles.get(user) {
                state.profiles.insert(user.clone(), p.clone());
            }
        }
        for ((user, device), d) in &self.devices {
            if needs.users.contains(user) {
                state
                    .devices
                    .insert((user.clone(), device.clone()), d.clone());
            }
        }
        state
    }

    /// Applies a batch's changes.
    pub fn write(&mut self, rules: &Rules, changes: Changes) {
        let mut touched = BTreeSet::new();
        for sig in changes.signals {
            touched.insert((sig.rule.clone(), sig.subject.clone()));
            self.signals.entry(signal_key(&sig)).or_insert(sig);
        }
        // Each touched rule × subject's alerts, recomputed from all its signals.
        for (rule, subject) in touched {
            self.alerts
                .retain(|_, a| !(a.rule == rule && a.subject == subject));
            let lo = (
                rule.clone(),
                subject.clone(),
                chrono::DateTime::<chrono::Utc>::MIN_UTC,
                Uuid::nil(),
            );
            let all: Vec<Signal> = self
                .signals
                .range(lo..)
                .take_while(|(k, _)| k.0 == rule && k.1 == subject)
                .map(|(_, s)| s.clone())
                .collect();
            let Some(r) = detect::Rule::parse(&rule) else {
                continue;
            };
            let Some(settings) = rules.detection.on(r) else {
                continue;
            };
            for a in detect::episodes(r, settings, rules.detection.evidence_max, &all) {
                self.alerts.insert(a.id, a);
            }
        }
        self.sessions.extend(changes.sessions);
        for a in changes.login_history {
            self.login_history.insert(a.id, a);
        }
        for e in changes.security_events {
            self.security_events.insert(e.id, e);
        }
        for (id, r) in changes.reviews {
            // The first review in the log stands (`Review`).
            self.reviews.entry(id).or_insert(r);
        }
        self.devices.extend(changes.devices);
        self.profiles.extend(changes.profiles);
        for (k, d) in changes.stats {
            let c = self.stats.entry(k).or_default();
            c.successes += d.successes;
            c.failures += d.failures;
            c.suspicious += d.suspicious;
        }
    }

    /// Projects one batch: deduplicate, load, fold, write, remember the ids.
    pub fn apply_batch(&mut self, rules: &Rules, events: &[Event]) {
        let new = fresh(events, &self.processed);
        if new.is_empty() {
            return;
        }
        let needs = Needs::of(&new, rules);
        let state = self.load(&needs);
        let changes = fold_batch(rules, state, &new);
        self.processed.extend(new.iter().map(|e| e.id));
        self.write(rules, changes);
    }

    /// Projects one batch as the SQL sink does with a worker's [`Cache`]: `events` come with
    /// the partition each was read from; every event moves its partition's checkpoint in `log`
    /// by one; a batch naming another user's session bumps the epoch.
    pub fn apply_batch_cached(
        &mut self,
        rules: &Rules,
        events: &[(Event, TopicPartition)],
        cache: &mut Cache,
        log: &mut LogPosition,
    ) {
        let homes: BTreeSet<&TopicPartition> = events.iter().map(|(_, h)| h).collect();
        let at: BTreeMap<TopicPartition, i64> = homes
            .iter()
            .map(|h| ((*h).clone(), log.checkpoints.get(*h).copied().unwrap_or(0)))
            .collect();
        cache.begin(log.epoch, &at);
        let mut seen = BTreeSet::new();
        let new: Vec<(&Event, &TopicPartition)> = events
            .iter()
            .filter(|(e, _)| !self.processed.contains(&e.id) && seen.insert(e.id))
            .map(|(e, h)| (e, h))
            .collect();
        for (_, h) in events {
            *log.checkpoints.entry(h.clone()).or_default() += 1;
        }
        let advanced: Vec<Position> = homes
            .iter()
            .map(|h| (*h).clone().at(log.checkpoints[*h]))
            .collect();
        let mut bumped = None;
        let mut changes = Changes::default();
        if !new.is_empty() {
            let only: Vec<&Event> = new.iter().map(|(e, _)| *e).collect();
            let needs = Needs::of(&only, rules);
            let load = cache.plan(&new, &needs);
            let state = cache.state_with(self.load(&load));
            if Cache::foreign(&state, &only) {
                log.bump();
                bumped = Some(log.epoch);
            }
            let (c, state) = fold_with_state(rules, state, &only);
            cache.keep(state, &new, &needs, &c, bumped);
            self.processed.extend(only.iter().map(|e| e.id));
            changes = c;
        }
        cache.advanced(&advanced);
        self.write(rules, changes);
        cache.committed(rules);
    }
}
