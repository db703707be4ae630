//! The fold does not depend on how the log is cut: for random streams, the tables are identical
//! whatever the batch boundaries, with every event delivered twice, and across restarts — alerts
//! of every detection rule included.

use authtrail_projections::detect::Rule;
use authtrail_projections::gen::StreamGen;
use authtrail_projections::memory::Tables;
use authtrail_projections::Rules;
use proptest::prelude::*;

/// The default rules with every detection threshold at most 2, windows of at least two hours
/// and hour profiles from 3 logins, so that short random streams raise alerts of every rule.
fn sensitive(max_sessions: usize) -> Rules {
    let mut r = Rules {
        max_sessions,
        ..Rules::default()
    };
    r.detection.hour_profile_min_logins = 3;
    for s in r.detection.rules.values_mut() {
        s.threshold = s.threshold.min(2);
        s.distinct = s.distinct.min(2);
        s.distinct_ips = s.distinct_ips.min(2);
        s.window = s.window.max(chrono::TimeDelta::hours(2));
    }
    r
}

fn single_pass(events: &[authtrail_events::Event], rules: &Rules) -> Tables {
    let mut t = Tables::default();
    t.apply_batch(rules, events);
    t
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn batch_boundaries_duplicates_and_restarts_do_not_change_the_tables(
        seed in any::<u64>(),
        users in 1usize..12,
        n in 1usize..400,
        cuts in proptest::collection::vec(1usize..60, 1..40),
        restart_every in 1usize..8,
    ) {
        let rules = sensitive(3);
        let start = "2026-11-01T00:00:00Z".parse().unwrap();
        let events = StreamGen::new(seed, users, start).take(n);
        let expected = single_pass(&events, &rules);

        // Deliver every event twice (a redelivery right after it), cut into random batches;
        // every few batches "restart": continue from a copy of what was written.
        let doubled: Vec<_> = events.iter().flat_map(|e| [e.clone(), e.clone()]).collect();
        let mut tables = Tables::default();
        let (mut i, mut k) = (0, 0);
        while i < doubled.len() {
            let len = cuts[k % cuts.len()].min(doubled.len() - i);
            tables.apply_batch(&rules, &doubled[i..i + len]);
            if k % restart_every == 0 {
                tables = tables.clone();
                // A crash after the write but before the consumer moved on: the batch comes again.
                tables.apply_batch(&rules, &doubled[i..i + len]);
            }
            i += len;
            k += 1;
        }
        prop_assert_eq!(&tables, &expected);
    }
}

#[test]
fn the_generator_is_deterministic_and_exercises_the_rules() {
    let start = "2026-11-01T00:00:00Z".parse().unwrap();
    let a = StreamGen::new(7, 20, start).take(3000);
    let b = StreamGen::new(7, 20, start).take(3000);
    assert_eq!(a, b);
    let t = single_pass(&a, &sensitive(2));
    let raised: std::collections::BTreeSet<&str> =
        t.alerts.values().map(|a| a.rule.as_str()).collect();
    for rule in Rule::ALL {
        assert!(
            raised.contains(rule.as_str()),
            "no {rule} alert: {raised:?}"
        );
    }
    let reasons: Vec<_> = t
        .sessions
        .values()
        .filter_map(|s| s.revoked_reason.clone())
        .collect();
    for r in [
        "concurrent_limit",
        "refresh_token_reuse",
        "account_locked",
        "user_request",
    ] {
        assert!(reasons.iter().any(|x| x == r), "no session revoked for {r}");
    }
    assert!(t.login_history.values().any(|h| h
        .suspicious_reason
        .as_deref()
        .is_some_and(|r| r.contains("failed"))));
    assert!(t.login_history.values().any(|h| h
        .suspicious_reason
        .as_deref()
        .is_some_and(|r| r.contains("unusual location"))));
    assert!(!t.reviews.is_empty());
}
