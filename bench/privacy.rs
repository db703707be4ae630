//! What encrypting personal data costs the projector, in one run: the same events projected
//! twice through the live path (`apply_batch`, lanes, state cache, as `bench/project.rs`) into
//! fresh databases — once as plain events, once sealed (`privacy.encrypt`: personal members
//! AES-256-GCM encrypted per subject), opened by the projector's keyring while folding. Prints
//! both rates and their ratio (goal: the sealed run at ≥ 0.85 of the plain one), plus what
//! sealing costs the intake per event.
//!
//! Run: `./dev with cargo bench --bench privacy` (`BENCH_EVENTS`, default 1 000 000;
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
    let n = env_usize("BENCH_EVENTS", 1_000_000);
    let batch = env_usize("BENCH_BATCH", 5_000);
    let lanes = authtrail::config::ProjectorConfig::default().lanes;
    let cache_sessions = authtrail::config::ProjectorConfig::default().state_cache_sessions;
    let rules = Rules::default();

    let events = common::seeded_events(n);
    let plain = common::log_of(&events, 12, "bench");

    // Seal the same events as the intake does (keys created on first use, in the sealed run's
    // database).
    let (_, sealed_pool) = fresh_db(&admin, "authtrail_bench_privacy_sealed").await;
    let master = MasterKey::from_bytes(&[7u8; 32]).unwrap();
    let keys = Keyring::new(sealed_pool.clone(), master, Duration::from_secs(3600));
    let mut sealed_events = events.clone();
    let t = Instant::now();
    for chunk in sealed_events.chunks_mut(batch) {
        keys.seal_all(chunk).await.unwrap();
    }
    let seal_secs = t.elapsed().as_secs_f64();
    let subjects: i64 = sqlx::query_scalar("SELECT count(*) FROM subject_keys")
        .fetch_one(&sealed_pool)
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

    let (_, plain_pool) = fresh_db(&admin, "authtrail_bench_privacy_plain").await;
    let (plain_secs, _) = common::project_live(
        &plain_pool,
        "bench",
        &rules,
        &plain,
        batch,
        lanes,
        cache_sessions,
        "plain",
        None,
    )
    .await;
    let plain_rate = n as f64 / plain_secs;
    println!("plain:  {plain_secs:.1}s, {plain_rate:.0} events/s");

    // A keyring as the projector has it: nothing cached yet.
    let reader = Keyring::new(
        sealed_pool.clone(),
        MasterKey::from_bytes(&[7u8; 32]).unwrap(),
        Duration::from_secs(60),
    );
    let (sealed_secs, phases) = common::project_live(
        &sealed_pool,
        "bench",
        &rules,
        &sealed,
        batch,
        lanes,
        cache_sessions,
        "sealed",
        Some(&reader),
    )
    .await;
    let sealed_rate = n as f64 / sealed_secs;
    println!(
        "sealed: {sealed_secs:.1}s, {sealed_rate:.0} events/s (parse and open: {:.1}s)",
        phases.iter()[1].1.as_secs_f64()
    );

    // Same tables either way.
    for t in [
        "sessions",
        "login_history",
        "security_events",
        "trusted_devices",
    ] {
        let q = format!("SELECT count(*) FROM {t}");
        let a: i64 = sqlx::query_scalar(&q).fetch_one(&plain_pool).await.unwrap();
        let b: i64 = sqlx::query_scalar(&q)
            .fetch_one(&sealed_pool)
            .await
            .unwrap();
        assert_eq!(a, b, "{t}: {a} rows plain, {b} sealed");
    }
    println!(
        "ratio: sealed/plain = {:.3} (goal >= 0.85, i.e. encryption costs <= 15 %)",
        sealed_rate / plain_rate
    );
}
