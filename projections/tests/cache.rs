//! A worker's state cache never changes the tables: for random streams, cut into random batches
//! applied by one to three workers (each with its own cache, partitions moving between them),
//! each worker taking some partitions' next events, with redeliveries, small caches that must drop rows, and events that name other users'
//! sessions, the tables equal those of the same batches loaded afresh every time.

use authtrail_events::data::{EventData, OpaqueId};
use authtrail_events::Event;
use authtrail_projections::cache::Cache;
use authtrail_projections::gen::StreamGen;
use authtrail_projections::memory::{LogPosition, Tables};
use authtrail_projections::state::session_of;
use authtrail_projections::{Rules, TopicPartition};
use proptest::prelude::*;
use std::hash::{Hash, Hasher};

/// The partition an event arrives on.
type Home = TopicPartition;

/// The partition of an event's key (any stable hash does for the model).
fn home(e: &Event, partitions: i32) -> Home {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    e.partition_key().hash(&mut h);
    TopicPartition::new("events", (h.finish() % partitions as u64) as i32)
}

/// Makes some session events name a session of another user (a hostile or broken producer).
fn cross_user(events: &mut [Event], every: usize) {
    let mut owners: Vec<(String, String)> = vec![]; // (session, user)
    for (i, event) in events.iter_mut().enumerate() {
        let user = event.subject.clone().unwrap_or_default();
        if let Some(sid) = session_of(&event.data) {
            if !owners.iter().any(|(s, _)| s == sid) {
                owners.push((sid.to_owned(), user.clone()));
            }
        }
        if every == 0 || i % every != every - 1 {
            continue;
        }
        let Some((other, _)) = owners.iter().rev().find(|(_, u)| *u != user).cloned() else {
            continue;
        };
        let other = OpaqueId::try_from(other).expect("a generated id");
        match &mut event.data {
            EventData::TokenRefreshed(d) => d.session_id = other,
            EventData::SessionActivity(d) => d.session_id = other,
            EventData::SessionLoggedOut(d) => d.session_id = other,
            EventData::SessionRevoked(d) if d.session_id.is_some() => d.session_id = Some(other),
            _ => {}
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn cached_state_gives_the_tables_of_fresh_loads(
        seed in any::<u64>(),
        users in 1usize..12,
        n in 1usize..500,
        partitions in 1i32..5,
        cuts in proptest::collection::vec(1usize..60, 1..30),
        workers in proptest::collection::vec(0usize..3, 1..20),
        masks in proptest::collection::vec(0u8..16, 1..20),
        max_sessions in prop_oneof![Just(1usize), Just(8), Just(100_000)],
        foreign_every in prop_oneof![Just(0usize), Just(7), Just(23)],
        redeliver in any::<bool>(),
        late in prop_oneof![Just(0usize), 2usize..40],
    ) {
        let rules = Rules { max_sessions: 3, ..Rules::default() };
        let start = "2026-11-01T00:00:00Z".parse().unwrap();
        let mut events = StreamGen::new(seed, users, start).take(n);
        cross_user(&mut events, foreign_every);
        // Late events: reverse runs of the log, so times run back by up to half an hour.
        if late > 1 {
            for run in events.chunks_mut(late) {
                run.reverse();
            }
        }
        let log: Vec<(Event, Home)> = events
            .iter()
            .flat_map(|e| {
                let h = home(e, partitions);
                let times = if redeliver { 2 } else { 1 };
                std::iter::repeat_n((e.clone(), h), times)
            })
            .collect();

        // Each step, one worker takes the next events of some partitions (in log order within
        // each partition, as Kafka delivers them); partitions move between workers freely.
        let mut queues: Vec<std::collections::VecDeque<(Event, Home)>> =
            (0..partitions).map(|_| Default::default()).collect();
        for m in log {
            queues[m.1.partition as usize].push_back(m);
        }
        let mut fresh = Tables::default();
        let mut cached = Tables::default();
        let mut caches: Vec<Cache> = (0..3).map(|_| Cache::new(max_sessions)).collect();
        let mut position = LogPosition::default();
        let mut k = 0;
        while queues.iter().any(|q| !q.is_empty()) {
            let len = cuts[k % cuts.len()];
            let mask = masks[k % masks.len()] | 1 << (k % partitions as usize);
            let mut batch = vec![];
            for (p, q) in queues.iter_mut().enumerate() {
                if mask & (1 << p) != 0 {
                    let take = len.min(q.len());
                    batch.extend(q.drain(..take));
                }
            }
            if batch.is_empty() {
                k += 1;
                continue;
            }
            let plain: Vec<Event> = batch.iter().map(|(e, _)| e.clone()).collect();
            fresh.apply_batch(&rules, &plain);
            let w = workers[k % workers.len()];
            cached.apply_batch_cached(&rules, &batch, &mut caches[w], &mut position);
            prop_assert_eq!(&cached, &fresh, "after batch {} (worker {})", k, w);
            k += 1;
        }
    }
}

#[test]
fn the_cache_loads_each_user_once_while_it_owns_the_partition() {
    let rules = Rules::default();
    let start = "2026-11-01T00:00:00Z".parse().unwrap();
    let events = StreamGen::new(3, 40, start).take(4000);
    let log: Vec<(Event, Home)> = events.iter().map(|e| (e.clone(), home(e, 4))).collect();
    let mut tables = Tables::default();
    let mut cache = Cache::new(100_000);
    let mut position = LogPosition::default();
    for batch in log.chunks(200) {
        tables.apply_batch_cached(&rules, batch, &mut cache, &mut position);
    }
    // Every user (and subject key) of the stream is held; sessions too.
    assert!(cache.entities() >= 40, "{} entities held", cache.entities());
    assert!(cache.sessions() > 0);
    // A bumped epoch (someone else wrote the tables) makes it start over.
    position.bump();
    let before = cache.entities();
    tables.apply_batch_cached(&rules, &log[..1], &mut cache, &mut position);
    assert!(cache.entities() < before, "the cache did not start over");
}

#[test]
fn a_disabled_cache_holds_nothing() {
    let rules = Rules::default();
    let start = "2026-11-01T00:00:00Z".parse().unwrap();
    let events = StreamGen::new(5, 10, start).take(500);
    let log: Vec<(Event, Home)> = events.iter().map(|e| (e.clone(), home(e, 3))).collect();
    let mut tables = Tables::default();
    let mut cache = Cache::disabled();
    let mut position = LogPosition::default();
    for batch in log.chunks(50) {
        tables.apply_batch_cached(&rules, batch, &mut cache, &mut position);
    }
    assert_eq!((cache.entities(), cache.sessions()), (0, 0));
    let mut plain = Tables::default();
    plain.apply_batch(&rules, &events);
    assert_eq!(tables, plain);
}
