//! Enrichment without a broker: GeoIP with MaxMind's test database, a table of real user agents,
//! the derived device id, and the rule that publisher-supplied values are kept.

use authtrail::config::IngestConfig;
use authtrail::ingest::enrich::{device_fingerprint, Enricher, GeoIp, UaParser};
use authtrail_events::data::Geo;
use authtrail_events::{parse, parse_value, Event, EventData};
use serde_json::{json, Value};
use std::path::PathBuf;

fn test_db() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/geoip/GeoIP2-City-Test.mmdb")
}

fn enricher() -> Enricher {
    Enricher::from_config(&IngestConfig {
        geoip_databases: vec![test_db()],
        ..IngestConfig::default()
    })
    .unwrap()
}

#[test]
fn geoip_with_the_maxmind_test_database() {
    let geo = GeoIp::open(&[test_db()], 100).unwrap();
    let hit = |ip: &str| geo.lookup(ip.parse().unwrap()).map(|h| h.geo);
    assert_eq!(
        hit("81.2.69.142"),
        Some(Geo {
            country_code: Some("GB".into()),
            country: Some("United Kingdom".into()),
            city: Some("London".into()),
            latitude: Some(51.5142),
            longitude: Some(-0.0931),
        })
    );
    // The same through an IPv4-mapped IPv6 address, and twice (cached).
    assert_eq!(hit("::ffff:81.2.69.142"), hit("81.2.69.142"));
    let se = hit("89.160.20.112").unwrap();
    assert_eq!(
        (se.country_code.as_deref(), se.city.as_deref()),
        (Some("SE"), Some("Linköping"))
    );
    let us = hit("216.160.83.56").unwrap();
    assert_eq!(
        (us.country_code.as_deref(), us.city.as_deref()),
        (Some("US"), Some("Milton"))
    );
    // A country without a city, over IPv6.
    let jp = hit("2001:218::1").unwrap();
    assert_eq!((jp.country_code.as_deref(), jp.city), (Some("JP"), None));
    // Private, loopback, documentation and unknown addresses: no geo.
    for ip in [
        "10.0.0.1",
        "192.168.1.10",
        "127.0.0.1",
        "::1",
        "192.0.2.1",
        "fd12::1",
        "1.2.3.4",
    ] {
        assert_eq!(hit(ip), None, "{ip}");
    }
    let h = geo.lookup("81.2.69.142".parse().unwrap()).unwrap();
    let (name, build) = geo.source(&h);
    assert_eq!(name, "GeoIP2-City-Test");
    assert!(build.unwrap().timestamp() > 1_500_000_000);
}

#[test]
fn missing_databases_are_skipped_and_bad_ones_refused() {
    let geo = GeoIp::open(&[PathBuf::from("/nonexistent/x.mmdb")], 10).unwrap();
    assert!(geo.databases().is_empty());
    assert_eq!(geo.lookup("81.2.69.142".parse().unwrap()), None);
    let not_a_db = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    assert!(GeoIp::open(&[not_a_db], 10).is_err());
}

/// `(user agent, type, browser, OS)` for real-world strings.
const USER_AGENTS: &[(&str, &str, &str, &str)] = &[
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
     "mobile", "Mobile Safari", "iOS"),
    ("Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
     "tablet", "Mobile Safari", "iOS"),
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36",
     "mobile", "Chrome Mobile", "Android"),
    ("Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Safari/537.36",
     "tablet", "Chrome", "Android"),
    ("Mozilla/5.0 (Linux; Android 14; SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36",
     "mobile", "Samsung Internet", "Android"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
     "desktop", "Chrome", "Windows"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.51",
     "desktop", "Edge", "Windows"),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15",
     "desktop", "Safari", "Mac OS X"),
    ("Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
     "desktop", "Firefox", "Ubuntu"),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
     "desktop", "Firefox", "Linux"),
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
     "bot", "Googlebot", ""),
    ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
     "bot", "bingbot", ""),
    ("curl/8.4.0", "bot", "curl", ""),
    ("python-requests/2.31.0", "bot", "Python Requests", ""),
    ("Mozilla/5.0 (Android 14; Tablet; rv:125.0) Gecko/125.0 Firefox/125.0",
     "tablet", "Firefox Mobile", "Android"),
    ("Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
     "desktop", "Chrome", "Chrome OS"),
    ("SomethingNobodyKnows/1.0", "unknown", "", ""),
];

#[test]
fn a_table_of_real_user_agents() {
    let parser = UaParser::builtin().unwrap();
    assert!(USER_AGENTS.len() >= 12);
    let mut failures = vec![];
    for (ua, kind, browser, os) in USER_AGENTS {
        let d = parser.parse(ua).device;
        let got = (
            d.device_type.as_str(),
            d.browser.as_deref().unwrap_or(""),
            d.os.as_deref().unwrap_or(""),
        );
        if got != (*kind, *browser, *os) {
            failures.push(format!(
                "{ua}\n   want {:?}\n   got  {got:?}",
                (kind, browser, os)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let d = parser.parse(USER_AGENTS[5].0).device;
    assert_eq!(d.name.as_deref(), Some("Chrome on Windows"));
    assert_eq!(d.browser_version.as_deref(), Some("124.0.0"));
    assert_eq!(d.os_version.as_deref(), Some("10"));
    // Garbage never panics.
    for ua in ["", " ", "\u{1F600}", &"(".repeat(2000), "Mozilla/5.0 ((((("] {
        let _ = parser.parse(ua);
    }
}

fn login(subject: &str, data: Value) -> Event {
    let mut d = json!({
        "session_id": "sess_1",
        "login_method": "password",
        "expires_at": "2026-11-24T21:15:02Z",
    });
    d.as_object_mut()
        .unwrap()
        .extend(data.as_object().unwrap().clone());
    parse_value(json!({
        "specversion": "1.0",
        "id": uuid::Uuid::new_v4(),
        "source": "/test",
        "type": "login.succeeded",
        "time": "2026-11-24T09:15:02Z",
        "subject": subject,
        "schemaversion": 1,
        "data": d,
    }))
    .unwrap()
}

const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";

#[test]
fn enrichment_adds_geo_device_id_and_provenance_and_is_idempotent() {
    let e = enricher();
    let mut ev = login("u1", json!({"ip": "81.2.69.142", "user_agent": IPHONE}));
    e.enrich(&mut ev);
    let EventData::LoginSucceeded(d) = &ev.data else {
        panic!()
    };
    assert_eq!(d.geo.as_ref().unwrap().city.as_deref(), Some("London"));
    assert_eq!(d.device.as_ref().unwrap().device_type.as_str(), "mobile");
    let id = d.device_id.as_ref().unwrap().as_str().to_owned();
    let en = d.enrichment.as_ref().unwrap();
    assert_eq!(en.device_id_derived, Some(true));
    assert_eq!(en.geoip_database.as_deref(), Some("GeoIP2-City-Test"));
    // Enriching again changes nothing; the bytes still parse to the same event.
    let once = ev.clone();
    e.enrich(&mut ev);
    assert_eq!(ev, once);
    assert_eq!(parse(&ev.to_json_bytes()).unwrap(), ev);
    // The fingerprint: stable for the account, different for another account, no versions.
    let parsed = e.parse_user_agent(IPHONE);
    assert_eq!(device_fingerprint("u1", &parsed).as_str(), id);
    assert_ne!(device_fingerprint("u2", &parsed).as_str(), id);
    let newer = e.parse_user_agent(&IPHONE.replace("17_4", "17_5").replace("17.4", "17.5"));
    assert_eq!(device_fingerprint("u1", &newer).as_str(), id);
}

#[test]
fn publisher_supplied_values_are_kept() {
    let e = enricher();
    let mut ev = login(
        "u1",
        json!({
            "ip": "81.2.69.142",
            "user_agent": IPHONE,
            "device_id": "dev_mine",
            "geo": {"country_code": "FR", "city": "Paris"},
            "device": {"type": "desktop", "name": "My thing"},
            "enrichment": {"geoip_database": "their-db"}
        }),
    );
    let before = ev.clone();
    e.enrich(&mut ev);
    assert_eq!(ev, before, "nothing to add: nothing changed");

    // Only device given: geo is added, the given device and its absent provenance stay.
    let mut ev = login(
        "u1",
        json!({"ip": "81.2.69.142", "user_agent": IPHONE, "device": {"type": "tablet"}}),
    );
    e.enrich(&mut ev);
    let EventData::LoginSucceeded(d) = &ev.data else {
        panic!()
    };
    assert_eq!(d.device.as_ref().unwrap().device_type.as_str(), "tablet");
    assert_eq!(d.geo.as_ref().unwrap().country_code.as_deref(), Some("GB"));
    let en = d.enrichment.as_ref().unwrap();
    assert_eq!(en.user_agent_parser, None);
    assert_eq!(en.device_id_derived, Some(true));
}

#[test]
fn events_without_address_or_agent_are_left_alone() {
    let e = enricher();
    let mut ev = login("u1", json!({"ip": "10.1.2.3"}));
    let before = ev.clone();
    e.enrich(&mut ev);
    assert_eq!(ev, before);
    let mut logout = parse_value(json!({
        "specversion": "1.0", "id": uuid::Uuid::new_v4(), "source": "/t",
        "type": "session.logged_out", "time": "2026-11-24T09:15:02Z", "subject": "u1",
        "schemaversion": 1, "data": {"session_id": "s1"}
    }))
    .unwrap();
    let before = logout.clone();
    e.enrich(&mut logout);
    assert_eq!(logout, before);
}

#[test]
fn every_contract_example_stays_valid_after_enrichment() {
    let e = enricher();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("events/examples");
    for f in std::fs::read_dir(dir).unwrap() {
        let path = f.unwrap().path();
        let mut ev = parse(&std::fs::read(&path).unwrap()).unwrap();
        e.enrich(&mut ev);
        assert_eq!(
            parse(&ev.to_json_bytes()).as_ref(),
            Ok(&ev),
            "{}",
            path.display()
        );
    }
}
