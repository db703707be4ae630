//! What encrypting personal data costs the projector, in one run: the same events projected
//! four times (plain, sealed, sealed, plain) through the live path (`apply_batch`, lanes, state cache, as `bench/project.rs`) into
//! fresh databases — once as plain events, once sealed (`privacy.encrypt`: personal members
//! AES-256-GCM encrypted per subject), opened by the projector's keyring while folding. Prints
//! both rates and their ratio (goal: the sealed run at ≥ 0.85 of the plain one), plus what
//! sealing costs the intake per event.
//!
//! Run: `./dev with cargo bench --bench privacy` (`BENCH_EVENTS`, default 300 000, four runs;
//! `BENCH_BATCH`, default 5 000).

use authtrail::privacy::{Keyring, MasterKey};
use authtrail_projections::Rules;
use common::{env_usize, fresh_db};
use std::time::{Duration, Instant};

#[path = "common/mod.rs"]
mod common;

#[tokio::main]
async fn main() {
    let admin = std::env::var("AUTHTRAIL_TEST_DATABASE_URL")
        .expect("AUTHTRAIL_TEST_DATABASE_URL: run via ./dev with cargo bench --bench privacy");
    let n = env_usize("BENCH_EVENTS", 300_000);
    let batch = env_usize("BENCH_BATCH", 5_000);
    let lanes = authtrail::config::ProjectorConfig::default().lanes;
    let cache_sessions = authtrail::config::ProjectorConfig::default().state_cache_sessions;
    let rules = Rules::default();

    let events = common::seeded_events(n);
    let plain = common::log_of(&events, 12, "bench");

    // Seal the same events as the intake does (keys created on first use, in a database of
    // their own, which the projector's keyring then reads through a pool of its own).
    let (keys_cfg, keys_pool) = fresh_db(&admin, "authtrail_bench_privacy_keys").await;
    let master = MasterKey::from_bytes(&[7u8; 32]).unwrap();
    let keys = Keyring::new(keys_pool.clone(), master, Duration::from_secs(3600));
    let mut sealed_events = events.clone();
    let t = Instant::now();
    for chunk in sealed_events.chunks_mut(batch) {
        keys.seal_all(chunk).await.unwrap();
    }
    let seal_secs = t.elapsed().as_secs_f64();
    let subjects: i64 = sqlx::query_scalar("SELECT count(*) FROM subject_keys")
        .fetch_one(&keys_pool)
        .await
        .unwrap();
    let sealed_count = sealed_events
        .iter()
        .filter(|e| e.personal.is_some())
        .count();
    let sealed = common::log_of(&sealed_events, 12, "bench");
    let bytes = |m: &[authtrail::projector::LogMessage]| -> usize {
        m.iter().map(|m| m.payload.as_ref().unwrap().len()).sum()
    };
    println!(
        "privacy benchmark: {n} events ({sealed_count} sealed, {subjects} subjects' keys), {} MB plain, {} MB sealed; sealing took {seal_secs:.1}s ({:.0} events/s, keys created included)",
        bytes(&plain) / 1_000_000,
        bytes(&sealed) / 1_000_000,
        n as f64 / seal_secs
    );

    // Plain, sealed, sealed, plain, each into a fresh database: the order evens out what a
    // run leaves behind for the next (a busier disk, autovacuum).
    let mut secs = [0.0f64; 2];
    let mut counts: Vec<[i64; 4]> = vec![];
    for (i, sealed_run) in [false, true, true, false].into_iter().enumerate() {
        let label = if sealed_run { "sealed" } else { "plain" };
        let (_, pool) = fresh_db(&admin, &format!("authtrail_bench_privacy_{i}")).await;
        // A keyring as the projector has it: its own pool, nothing cached yet.
        let reader = Keyring::new(
            sqlx::postgres::PgPoolOptions::new()
                .max_connections(4)
                .connect(&keys_cfg.url)
                .await
                .unwrap(),
            MasterKey::from_bytes(&[7u8; 32]).unwrap(),
            Duration::from_secs(60),
        );
        let (s, phases) = common::project_live(
            &pool,
            "bench",
            &rules,
            if sealed_run { &sealed } else { &plain },
            batch,
            lanes,
            cache_sessions,
            label,
            sealed_run.then_some(&reader),
        )
        .await;
        secs[sealed_run as usize] += s;
        println!(
            "{label}: {s:.1}s, {:.0} events/s (parse{}: {:.1}s)",
            n as f64 / s,
            if sealed_run { " and open" } else { "" },
            phases.iter()[1].1.as_secs_f64()
        );
        let mut c = [0i64; 4];
        for (k, t) in [
            "sessions",
            "login_history",
            "security_events",
            "trusted_devices",
        ]
        .iter()
        .enumerate()
        {
            c[k] = sqlx::query_scalar(&format!("SELECT count(*) FROM {t}"))
                .fetch_one(&pool)
                .await
                .unwrap();
        }
        counts.push(c);
    }
    assert!(
        counts.windows(2).all(|w| w[0] == w[1]),
        "the same rows either way: {counts:?}"
    );
    let (plain_rate, sealed_rate) = (2.0 * n as f64 / secs[0], 2.0 * n as f64 / secs[1]);
    println!("plain:  {plain_rate:.0} events/s, sealed: {sealed_rate:.0} events/s (two runs each)");
    println!(
        "ratio: sealed/plain = {:.3} (goal >= 0.85, i.e. encryption costs <= 15 %)",
        sealed_rate / plain_rate
    );
}
