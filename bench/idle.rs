//! CPU spent while nothing happens: the broker alone (the baseline), then the broker and one
//! idle projection worker (`authtrail project`, its own process) for each `projector.fetch_wait_ms`
//! in `BENCH_IDLE_FETCH_WAITS` (default `20,500`: the shipped default and librdkafka's), all in
//! one run against the same broker. CPU time is read from `/proc/PID/stat` (user + system) over
//! `BENCH_IDLE_SECONDS` (default 30) once the worker holds its partitions; printed as % of one
//! core and as a multiple of the broker's baseline.
//!
//! Run: `./dev with cargo bench --bench idle` (needs the broker `./dev` started:
//! `AUTHTRAIL_DEV_KAFKA_PID`, and `AUTHTRAIL_TEST_DATABASE_URL`).

use authtrail::config::KafkaConfig;
use common::{env_usize, fresh_db};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "common/mod.rs"]
mod common;

/// User + system CPU seconds of a process so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) start at state (field 3).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    ticks / clock_ticks()
}

fn clock_ticks() -> f64 {
    let out = Command::new("getconf").arg("CLK_TCK").output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// % of one core each process spent over `window`.
fn measure(pids: &[u32], window: Duration) -> Vec<f64> {
    let before: Vec<f64> = pids.iter().map(|&p| cpu_seconds(p)).collect();
    let t = Instant::now();
    std::thread::sleep(window);
    let secs = t.elapsed().as_secs_f64();
    pids.iter()
        .zip(before)
        .map(|(&p, b)| (cpu_seconds(p) - b) / secs * 100.0)
        .collect()
}

fn assigned(log: &Path) -> bool {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .contains("partitions assigned")
}

#[tokio::main]
async fn main() {
    let broker: u32 = std::env::var("AUTHTRAIL_DEV_KAFKA_PID")
        .expect("AUTHTRAIL_DEV_KAFKA_PID: run via ./dev with cargo bench --bench idle (a broker ./dev started)")
        .parse()
        .unwrap();
    let admin = std::env::var("AUTHTRAIL_TEST_DATABASE_URL").expect("AUTHTRAIL_TEST_DATABASE_URL");
    let brokers = std::env::var("AUTHTRAIL_KAFKA_BROKERS").expect("AUTHTRAIL_KAFKA_BROKERS");
    let window = Duration::from_secs(env_usize("BENCH_IDLE_SECONDS", 30) as u64);
    let waits = std::env::var("BENCH_IDLE_FETCH_WAITS").unwrap_or_else(|_| "20,500".into());

    let kafka = KafkaConfig {
        brokers: brokers.clone(),
        topic: format!("bench-idle-{}", uuid::Uuid::new_v4().simple()),
        partitions: 12,
        ..KafkaConfig::default()
    };
    authtrail::kafka::ensure_topic(&kafka).await.unwrap();
    let (db, pool) = fresh_db(&admin, "authtrail_bench_idle").await;
    pool.close().await;

    println!(
        "idle CPU over {} s windows, 12-partition topic, no traffic",
        window.as_secs()
    );
    let base = measure(&[broker], window)[0];
    println!("broker alone (baseline):               broker {base:5.1} % of a core");
    let logs = tempfile::tempdir().unwrap();
    for wait in waits.split(',') {
        let wait: u64 = wait
            .trim()
            .parse()
            .expect("BENCH_IDLE_FETCH_WAITS: ms,ms,...");
        let log = logs.path().join(format!("worker-{wait}.log"));
        let mut worker = Command::new(env!("CARGO_BIN_EXE_authtrail"))
            .arg("project")
            .env("AUTHTRAIL_KAFKA_BROKERS", &brokers)
            .env("AUTHTRAIL_KAFKA_TOPIC", &kafka.topic)
            .env("AUTHTRAIL_DATABASE_URL", &db.url)
            .env(
                "AUTHTRAIL_PROJECTOR_GROUP_ID",
                format!("bench-idle-{wait}-{}", uuid::Uuid::new_v4().simple()),
            )
            .env("AUTHTRAIL_PROJECTOR_FETCH_WAIT_MS", wait.to_string())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !assigned(&log) {
            assert!(
                Instant::now() < deadline,
                "the worker was never assigned its partitions:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // Settle: the first fetches after the assignment are not idle.
        std::thread::sleep(Duration::from_secs(2));
        let cpu = measure(&[broker, worker.id()], window);
        println!(
            "idle projector, fetch_wait_ms={wait:>4}:     broker {:5.1} % ({:.1}x baseline), projector {:5.1} %",
            cpu[0],
            cpu[0] / base.max(0.01),
            cpu[1]
        );
        let _ = worker.kill();
        let _ = worker.wait();
    }
}
