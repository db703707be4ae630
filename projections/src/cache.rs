//! A worker's memory of the [`State`] its batches need, so that a batch loads only what the
//! worker has not seen (a new user, a partition it just took over) instead of everything.
//!
//! Why it is exact: every row of the state belongs to an *entity* — a user id or a failed
//! attempt's subject key — and every event that writes an entity's rows carries that entity as
//! its partition key, so it arrives on one partition (its *home*). A worker that applied the
//! last batch of a partition (the checkpoint it finds is the one it wrote) and holds an entity
//! of that home holds exactly what the tables hold for it: nobody else wrote those rows since.
//! The exceptions are handled where they arise:
//! - a partition applied elsewhere in between (rebalance, a dead letter set aside by another
//!   path): the checkpoint differs, its entities are forgotten ([`Cache::begin`]);
//! - someone else changed the tables (cleanup, a rebuild swapped in, an event naming *another*
//!   user's session): they change the projection's *epoch*, and a cache that finds another
//!   epoch starts over ([`Cache::begin`], [`Cache::foreign`]);
//! - a batch whose transaction did not commit: the cache was changed for it already, so the next
//!   [`Cache::begin`] finds it unconfirmed and starts over.
//!
//! An entity is held *from* a time (`covered`): the state contract ([`crate::state`]) for any
//! batch whose earliest event is at or after it. An earlier batch (a late event) loads it again.
//! Holding more than the contract asks never changes a result, so old rows are dropped only to
//! bound memory ([`Cache::committed`]).

use crate::position::{Position, TopicPartition};
use crate::state::{Changes, Needs, State};
use crate::Rules;
use authtrail_events::Event;
use chrono::{DateTime, TimeDelta, Utc};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use uuid::Uuid;

/// How long before a partition's latest events the cache keeps rows (beyond the rules' windows).
const KEEP_BEFORE: TimeDelta = TimeDelta::hours(1);
/// Old rows are dropped every this many committed batches.
const EVICT_EVERY: u64 = 64;

#[derive(Debug, Clone)]
struct Entry {
    /// The partition the entity's events arrive on.
    home: TopicPartition,
    covered: DateTime<Utc>,
}

/// See the module documentation. [`Cache::disabled`] holds nothing and makes every batch load
/// everything it needs.
#[derive(Debug, Clone)]
pub struct Cache {
    enabled: bool,
    max_sessions: usize,
    state: State,
    entries: HashMap<String, Entry>,
    /// The checkpoint this cache's last committed batch left per partition.
    next: HashMap<TopicPartition, i64>,
    /// The earliest event time of each partition's part of its latest batch.
    low: HashMap<TopicPartition, DateTime<Utc>>,
    epoch: Option<Uuid>,
    /// A batch changed the cache and its commit was not confirmed yet.
    unconfirmed: bool,
    /// Entities of the batch in hand that must not be kept (seen on two partitions).
    transient: BTreeSet<String>,
    batches: u64,
}

impl Cache {
    /// A cache that drops everything it held when it holds more than `max_sessions` sessions
    /// after dropping the old ones (`0` disables it).
    pub fn new(max_sessions: usize) -> Cache {
        Cache {
            enabled: max_sessions > 0,
            max_sessions,
            state: State::default(),
            entries: HashMap::new(),
            next: HashMap::new(),
            low: HashMap::new(),
            epoch: None,
            unconfirmed: false,
            transient: BTreeSet::new(),
            batches: 0,
        }
    }

    pub fn disabled() -> Cache {
        Cache::new(0)
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Sessions held (for metrics).
    pub fn sessions(&self) -> usize {
        self.state.sessions.len()
    }

    /// Entities held (for metrics).
    pub fn entities(&self) -> usize {
        self.entries.len()
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        let (enabled, max) = (self.enabled, self.max_sessions);
        *self = Cache::new(max);
        self.enabled = enabled;
    }

    /// Starts a batch: `epoch` is the projection's epoch and `checkpoints` the locked
    /// checkpoint of every partition in the batch, both as read in the batch's transaction.
    pub fn begin(&mut self, epoch: Option<Uuid>, checkpoints: &BTreeMap<TopicPartition, i64>) {
        if !self.enabled {
            return;
        }
        if self.unconfirmed || self.epoch != epoch {
            self.clear();
            self.epoch = epoch;
        }
        self.unconfirmed = true;
        for (home, &at) in checkpoints {
            if self.next.get(home) != Some(&at) {
                self.forget_home(home);
            }
        }
    }

    /// Decides what the batch's `events` (each with the partition it came from) must load
    /// beyond what is held, and forgets what it will load again.
    pub fn plan(&mut self, events: &[(&Event, &TopicPartition)], needs: &Needs) -> Needs {
        if !self.enabled {
            return needs.clone();
        }
        let Some(since) = needs.since else {
            return needs.clone();
        };
        // Where each entity of the batch lives and its earliest event here; one seen on two
        // partitions (the topic was repartitioned) is loaded and not kept.
        let mut homes: BTreeMap<String, (&TopicPartition, DateTime<Utc>)> = BTreeMap::new();
        let mut transient = BTreeSet::new();
        for (e, home) in events {
            let key = e.partition_key();
            let subject = e.subject.as_ref().filter(|s| **s != key).cloned();
            for entity in [Some(key), subject].into_iter().flatten() {
                match homes.get_mut(&entity) {
                    Some((h, _)) if *h != *home => {
                        transient.insert(entity);
                    }
                    Some((_, first)) => *first = (*first).min(e.time),
                    None => {
                        homes.insert(entity, (home, e.time));
                    }
                }
            }
        }
        // An entity's rows matter from its own earliest event on (every rule looks back from
        // an event's time), so a late event of one user reloads that user only.
        let mut missing = BTreeSet::new();
        for (entity, (home, first)) in &homes {
            let held = self
                .entries
                .get(entity)
                .is_some_and(|en| &en.home == *home && en.covered <= *first);
            if !held || transient.contains(entity) {
                missing.insert(entity.clone());
            }
        }
        for entity in &missing {
            self.forget(entity);
        }
        for entity in &missing {
            if !transient.contains(entity) {
                self.entries.insert(
                    entity.clone(),
                    Entry {
                        home: homes[entity].0.clone(),
                        covered: since,
                    },
                );
            }
        }
        // A named session of a user with no event here may have been written on its owner's
        // partition by another worker since: read it again.
        for sid in &needs.session_ids {
            let foreign = self
                .state
                .sessions
                .get(sid)
                .is_some_and(|s| !homes.contains_key(&s.user_id));
            if foreign {
                self.state.remove_session(sid);
            }
        }
        let load = Needs {
            session_ids: needs
                .session_ids
                .iter()
                .filter(|s| !self.state.sessions.contains_key(*s))
                .cloned()
                .collect(),
            users: needs.users.intersection(&missing).cloned().collect(),
            subject_keys: needs.subject_keys.intersection(&missing).cloned().collect(),
            ..needs.clone()
        };
        self.transient = transient;
        load
    }

    /// Adds what was loaded for [`Cache::plan`] and hands out the whole state for the fold.
    pub fn state_with(&mut self, loaded: State) -> State {
        if !self.enabled {
            return loaded;
        }
        let mut state = std::mem::take(&mut self.state);
        for s in loaded.sessions.into_values() {
            state.insert_session(s);
        }
        // Failures and past logins were loaded only for entities forgotten in `plan`.
        for (k, v) in loaded.failures {
            state.failures.entry(k).or_default().extend(v);
        }
        for (u, v) in loaded.logins {
            state.logins.entry(u).or_default().extend(v);
        }
        state.profiles.extend(loaded.profiles);
        state.devices.extend(loaded.devices);
        state
    }

    /// Whether the batch names a session of a user it has no event of: its owner's partition
    /// may be another worker's, whose cache must then start over (the caller changes the epoch).
    pub fn foreign(state: &State, events: &[&Event]) -> bool {
        // Per event, not per batch: a batch holding the owner's own events (another partition)
        // still writes the owner's row from here, which the owner's partition's worker may hold.
        events.iter().any(|e| {
            crate::state::session_of(&e.data).is_some_and(|sid| {
                state
                    .sessions
                    .get(sid)
                    .is_some_and(|s| e.subject.as_deref() != Some(s.user_id.as_str()))
            })
        })
    }

    /// Takes the state back after the fold; `epoch` is the projection's epoch if the batch
    /// changed it.
    pub fn keep(
        &mut self,
        mut state: State,
        events: &[(&Event, &TopicPartition)],
        needs: &Needs,
        changes: &Changes,
        epoch: Option<Option<Uuid>>,
    ) {
        if !self.enabled {
            return;
        }
        for entity in std::mem::take(&mut self.transient) {
            forget_in(&mut state, &entity);
        }
        // Sessions of owners not held (named by other users' events) are not kept: `plan` would
        // read them again anyway, and eviction only walks held owners.
        let touched = needs.session_ids.iter().chain(changes.sessions.keys());
        for sid in touched {
            let unheld = state
                .sessions
                .get(sid)
                .is_some_and(|s| !self.entries.contains_key(&s.user_id));
            if unheld {
                state.remove_session(sid);
            }
        }
        self.state = state;
        let mut low: HashMap<&TopicPartition, DateTime<Utc>> = HashMap::new();
        for (e, home) in events {
            let l = low.entry(home).or_insert(e.time);
            *l = (*l).min(e.time);
        }
        for (home, t) in low {
            self.low.insert(home.clone(), t);
        }
        if let Some(epoch) = epoch {
            self.epoch = epoch;
        }
    }

    /// Records the checkpoints the batch moved (each the next offset of its partition).
    pub fn advanced(&mut self, advanced: &[Position]) {
        if !self.enabled {
            return;
        }
        for next in advanced {
            self.next.insert(next.topic_partition(), next.offset);
        }
    }

    /// The batch committed: the cache is confirmed. Drops rows too old to matter now and then.
    pub fn committed(&mut self, rules: &Rules) {
        if !self.enabled {
            return;
        }
        self.unconfirmed = false;
        self.batches += 1;
        if self.batches % EVICT_EVERY == 0 || self.state.sessions.len() > self.max_sessions {
            self.evict(rules);
        }
        if self.state.sessions.len() > self.max_sessions {
            self.clear();
        }
    }

    /// Drops, per entity, what no batch from its partition's latest events on needs; such a
    /// batch loads the entity again.
    fn evict(&mut self, rules: &Rules) {
        let state = &mut self.state;
        for (entity, en) in self.entries.iter_mut() {
            let Some(low) = self.low.get(&en.home) else {
                continue;
            };
            let cut = *low - KEEP_BEFORE;
            if cut <= en.covered {
                continue;
            }
            en.covered = cut;
            if let Some(ids) = state.user_sessions.get_mut(entity) {
                ids.retain(|id| {
                    let open = state
                        .sessions
                        .get(id)
                        .is_some_and(|s| s.ended_at.is_none_or(|e| e > cut) && s.horizon() > cut);
                    if !open {
                        state.sessions.remove(id);
                    }
                    open
                });
                if ids.is_empty() {
                    state.user_sessions.remove(entity);
                }
            }
            if let Some(v) = state.failures.get_mut(entity) {
                v.retain(|t| *t >= cut - rules.failed_attempts_window);
                if v.is_empty() {
                    state.failures.remove(entity);
                }
            }
            if let Some(v) = state.logins.get_mut(entity) {
                v.retain(|l| l.at >= cut - rules.new_country_window);
                if v.is_empty() {
                    state.logins.remove(entity);
                }
            }
        }
    }

    fn forget_home(&mut self, home: &TopicPartition) {
        let gone: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, en)| &en.home == home)
            .map(|(k, _)| k.clone())
            .collect();
        for entity in gone {
            self.forget(&entity);
        }
        self.next.remove(home);
        self.low.remove(home);
    }

    fn forget(&mut self, entity: &str) {
        self.entries.remove(entity);
        forget_in(&mut self.state, entity);
    }
}

/// Removes every row of `entity` from `state`.
fn forget_in(state: &mut State, entity: &str) {
    if let Some(ids) = state.user_sessions.remove(entity) {
        for id in ids {
            state.sessions.remove(&id);
        }
    }
    state.failures.remove(entity);
    state.logins.remove(entity);
    state.profiles.remove(entity);
    let devices: Vec<(String, String)> = state
        .devices
        .range((entity.to_owned(), String::new())..)
        .take_while(|((u, _), _)| u == entity)
        .map(|(k, _)| k.clone())
        .collect();
    for k in devices {
        state.devices.remove(&k);
    }
}
