//! `authtrail simulate`: realistic authentication traffic with injected attacks, through the
//! same intake as real publishers.
//!
//! The stream ([`model::Generator`]) is a pure function of [`Settings`]: ids come from a seeded
//! ChaCha8 RNG and times from `--start` plus a simulated clock, so a fixed `--seed` and `--start`
//! (and the same `--users`, `--rate`, attack options) give the same events twice, byte for
//! byte. `--rate` sets both the wall-clock pace and the mean simulated gap (1/rate), so with the
//! default start (now) event times track the wall clock, and no event is sent before its time.
//! With `--rate 0` (as fast as possible) the simulated clock outruns the wall clock, so the
//! default start is a day ago ([`BULK_HISTORY`]): an intake refuses events from the future
//! (`ingest.max_future_skew`) and, without the backfill scope, older than `ingest.max_age`.
//!
//! `--backfill 30d` starts 30 days ago at a history density of a few sessions per user and
//! day, publishes that history as fast as the target takes it, then continues live at `--rate`;
//! in every phase an event is sent only once the wall clock has reached its time ([`pump`]).
//! `--labels FILE` records which events each injected attack made (NDJSON, never in the events).
//!
//! Targets: `--kafka` (default; [`crate::ingest::Intake`]: enrich and append), `--http URL`
//! (batches to a running server's `POST /v1/events`, with `--api-key` or `--token`), or
//! `--stdout` (the raw, unenriched NDJSON a publisher would send).

pub mod catalog;
mod model;
pub mod score;

pub use model::{Attack, Generator, Label, Settings};

use crate::config::Config;
use crate::ingest::Intake;
use crate::kafka;
use anyhow::{bail, Context};
use authtrail_events::Event;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct SimulateArgs {
    /// Number of simulated users.
    #[arg(long, default_value_t = 50)]
    users: usize,
    /// Events per second (wall clock), also the simulated clock's pace; 0 = as fast as possible
    /// (the simulated clock then steps 50 ms on average).
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// Stop after this long (e.g. `90s`, `10m`, `2h`) of live traffic (after the backfill).
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// First publish this much history (e.g. `30d`) as fast as the target takes it, starting
    /// that long ago, then continue live at `--rate`. Needs a credential with the `backfill`
    /// scope once the history is older than `ingest.max_age`.
    #[arg(long, value_parser = parse_duration, conflicts_with = "start")]
    backfill: Option<Duration>,
    /// Write one NDJSON line per event an injected attack made to this file:
    /// `{"event_id", "attack", "attack_id"}` (the events themselves carry no label).
    #[arg(long, value_name = "FILE")]
    labels: Option<std::path::PathBuf>,
    /// Stop after this many events.
    #[arg(long)]
    events: Option<u64>,
    /// RNG seed; a random one is chosen (and printed) when absent.
    #[arg(long)]
    seed: Option<u64>,
    /// Time of the first event (RFC 3339); default now, or a day ago with `--rate 0`.
    #[arg(long, value_parser = parse_time)]
    start: Option<DateTime<Utc>>,
    /// Attack mix: `all`, `none`, or `kind[=weight],…` with kinds brute-force, password-spray,
    /// credential-stuffing, new-country, impossible-travel, token-reuse, otp-brute-force,
    /// session-hijack, privileged-login, off-hours-admin.
    #[arg(long, default_value = "all", value_parser = parse_attacks)]
    attacks: AttackMix,
    /// Mean number of normal events between two attacks.
    #[arg(long, default_value_t = 200)]
    attack_every: u32,
    /// Append directly to Kafka through the intake (default).
    #[arg(long, conflicts_with_all = ["http", "stdout"])]
    kafka: bool,
    /// POST batches to this intake (`http://host:port` or the full `/v1/events` URL).
    #[arg(long, value_name = "URL", conflicts_with = "stdout")]
    http: Option<String>,
    /// API key for `--http`.
    #[arg(long, env = "AUTHTRAIL_SIMULATE_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Service JWT for `--http`.
    #[arg(long, env = "AUTHTRAIL_SIMULATE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print the raw events as NDJSON instead of publishing them.
    #[arg(long)]
    stdout: bool,
    /// Events per publish call / HTTP request.
    #[arg(long, default_value_t = 200)]
    batch: usize,
    /// CloudEvents `source` of the simulated events.
    #[arg(long, default_value = "/services/simulated-auth")]
    source: String,
    /// No progress bar even on a terminal.
    #[arg(long)]
    no_progress: bool,
}

/// Attack kinds with weights.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AttackMix(Vec<(Attack, u32)>);

fn parse_attacks(s: &str) -> Result<AttackMix, String> {
    match s.trim() {
        "all" => return Ok(AttackMix(Attack::ALL.iter().map(|a| (*a, 1)).collect())),
        "none" | "" => return Ok(AttackMix(vec![])),
        _ => {}
    }
    let mut out = Vec::new();
    for part in s.split(',') {
        let (kind, weight) = match part.split_once('=') {
            Some((k, w)) => (
                k.trim(),
                w.trim()
                    .parse::<u32>()
                    .map_err(|_| format!("weight of {k:?} must be a whole number"))?,
            ),
            None => (part.trim(), 1),
        };
        out.push((kind.parse::<Attack>()?, weight));
    }
    Ok(AttackMix(out))
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map(|i| s.split_at(i))
        .unwrap_or((s, "s"));
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected e.g. 90s, 10m, 2h or 30d"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86_400.0,
        _ => return Err(format!("{s:?}: unit must be ms, s, m, h or d")),
    };
    if !secs.is_finite() || secs <= 0.0 || secs > 366.0 * 86_400.0 {
        return Err(format!("{s:?}: must be positive and at most a year"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{s:?} is not an RFC 3339 time: {e}"))
}

impl SimulateArgs {
    /// The mean simulated gap between two live events.
    fn live_gap(&self) -> Duration {
        if self.rate > 0.0 {
            Duration::from_secs_f64(1.0 / self.rate)
        } else {
            Duration::from_millis(50)
        }
    }

    /// The mean simulated gap between two events of the history: about
    /// [`HISTORY_EVENTS_PER_USER_DAY`] per user and day (a few sessions), never denser than live.
    fn backfill_gap(&self) -> Duration {
        let per_day = self.users as f64 * HISTORY_EVENTS_PER_USER_DAY;
        self.live_gap()
            .max(Duration::from_secs_f64(86_400.0 / per_day.max(1.0)))
    }

    /// The stream settings these arguments describe (`seed` and `start` resolved by the caller).
    fn settings(&self, seed: u64, start: DateTime<Utc>) -> Settings {
        let mean_gap = if self.backfill.is_some() {
            self.backfill_gap()
        } else {
            self.live_gap()
        };
        Settings {
            seed,
            users: self.users,
            start,
            mean_gap,
            attacks: self.attacks.0.clone(),
            attack_every: self.attack_every,
            warmup: 0,
            source: self.source.clone(),
        }
    }

    fn check(&self) -> anyhow::Result<()> {
        if self.users == 0 || self.users > 1_000_000 {
            bail!("--users must be between 1 and 1000000");
        }
        if !self.rate.is_finite() || self.rate < 0.0 {
            bail!("--rate must be a non-negative number");
        }
        if self.batch == 0 || self.batch > 10_000 {
            bail!("--batch must be between 1 and 10000");
        }
        if self.source.trim().is_empty() {
            bail!("--source must not be empty");
        }
        if self.http.is_some() && self.api_key.is_none() && self.token.is_none() {
            bail!("--http needs --api-key or --token (or AUTHTRAIL_SIMULATE_API_KEY / AUTHTRAIL_SIMULATE_TOKEN)");
        }
        Ok(())
    }
}

/// Where simulated events go.
enum Target {
    Kafka(Intake),
    Http {
        client: reqwest::Client,
        url: String,
        auth: (reqwest::header::HeaderName, String),
    },
    Stdout,
}

impl Target {
    /// The target the arguments name: `--stdout`, `--http URL` (with its credentials), else
    /// Kafka through the intake (the topic made if missing).
    async fn open(config: &Config, args: &SimulateArgs) -> anyhow::Result<Target> {
        if args.stdout {
            return Ok(Target::Stdout);
        }
        let Some(url) = &args.http else {
            kafka::ensure_topic(&config.kafka)
                .await
                .with_context(|| format!("ensuring topic {}", config.kafka.topic))?;
            return Ok(Target::Kafka(Intake::from_config(config)?));
        };
        let url = if url.trim_end_matches('/').ends_with("/v1/events") {
            url.clone()
        } else {
            format!("{}/v1/events", url.trim_end_matches('/'))
        };
        let auth = match (&args.api_key, &args.token) {
            (Some(k), _) => (
                reqwest::header::HeaderName::from_static("x-api-key"),
                k.clone(),
            ),
            (None, Some(t)) => (reqwest::header::AUTHORIZATION, format!("Bearer {t}")),
            (None, None) => unreachable!("checked"),
        };
        Ok(Target::Http {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()?,
            url,
            auth,
        })
    }

    async fn send(&self, events: Vec<Event>) -> anyhow::Result<()> {
        match self {
            Target::Kafka(intake) => {
                intake.submit(events, "cli:simulate").await?;
            }
            Target::Stdout => {
                let mut out = std::io::stdout().lock();
                for e in &events {
                    out.write_all(&e.to_json_bytes())?;
                    out.write_all(b"\n")?;
                }
                out.flush()?;
            }
            Target::Http { client, url, auth } => {
                let mut body = Vec::with_capacity(events.len() * 700);
                body.push(b'[');
                for (i, e) in events.iter().enumerate() {
                    if i > 0 {
                        body.push(b',');
                    }
                    body.extend_from_slice(&e.to_json_bytes());
                }
                body.push(b']');
                let mut backoff = Duration::from_millis(200);
                for attempt in 1..=6 {
                    let sent = client
                        .post(url)
                        .header(reqwest::header::CONTENT_TYPE, crate::ingest::CE_BATCH)
                        .header(auth.0.clone(), auth.1.as_str())
                        .body(body.clone())
                        .send()
                        .await;
                    match sent {
                        Ok(r) if r.status().is_success() => return Ok(()),
                        Ok(r) if r.status().is_client_error() => {
                            let status = r.status();
                            let text = r.text().await.unwrap_or_default();
                            bail!("{url} refused the batch ({status}): {text}");
                        }
                        Ok(r) if attempt == 6 => bail!("{url} answered {}", r.status()),
                        Err(e) if attempt == 6 => bail!("posting to {url}: {e}"),
                        Ok(r) => {
                            tracing::warn!(status = %r.status(), attempt, "intake unavailable; retrying")
                        }
                        Err(e) => tracing::warn!(error = %e, attempt, "posting failed; retrying"),
                    }
                    // Resending is safe: event ids are idempotency keys.
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
                unreachable!("the last attempt returns")
            }
        }
        Ok(())
    }
}

/// How far back a bulk run (`--rate 0`) starts by default: a day of simulated time is about
/// 1.7 million events at the bulk pace (50 ms apart on average).
const BULK_HISTORY: chrono::TimeDelta = chrono::TimeDelta::days(1);

/// Density of the `--backfill` history: events per user and day (three or four sessions).
const HISTORY_EVENTS_PER_USER_DAY: f64 = 80.0;

/// Runs the command.
pub(crate) async fn run(config: Config, args: SimulateArgs) -> anyhow::Result<ExitCode> {
    args.check()?;
    let seed = args.seed.unwrap_or_else(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        nanos ^ u64::from(std::process::id()).rotate_left(32)
    });
    let start = args.start.unwrap_or_else(|| {
        let now = Utc::now();
        let now = match args.backfill {
            Some(b) => now - chrono::TimeDelta::from_std(b).unwrap_or(BULK_HISTORY),
            None if args.rate > 0.0 => now,
            None => now - BULK_HISTORY,
        };
        DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now)
    });
    let settings = args.settings(seed, start);
    eprintln!(
        "simulating {} users from {} with seed {seed} (repeat with --seed {seed} --start {})",
        settings.users,
        start.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        start.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    );
    let target = Target::open(&config, &args).await?;
    let mut labels = match &args.labels {
        Some(path) => Some(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("creating the labels file {}", path.display()))?,
        )),
        None => None,
    };
    let mut generator = Generator::new(settings);
    let began = Instant::now();
    let sent = pump(&args, &mut generator, &target, labels.as_mut()).await?;
    let elapsed = began.elapsed().as_secs_f64();
    let types: Vec<String> = sent
        .by_type
        .iter()
        .map(|(t, n)| format!("{t}={n}"))
        .collect();
    let attacks: Vec<String> = generator
        .attacks_started
        .iter()
        .map(|(a, n)| format!("{}={n}", a.as_str()))
        .collect();
    eprintln!(
        "{}sent {} events in {elapsed:.1}s ({:.0}/s): {}; attacks: {}",
        if sent.interrupted {
            "interrupted: "
        } else {
            ""
        },
        sent.events,
        sent.events as f64 / elapsed.max(1e-9),
        types.join(" "),
        if attacks.is_empty() {
            "none".to_owned()
        } else {
            attacks.join(" ")
        }
    );
    if let Target::Kafka(intake) = &target {
        let _ = intake.publisher().flush(Duration::from_secs(10));
    }
    Ok(ExitCode::SUCCESS)
}

/// A bar over the history's simulated time on a terminal (unless `--no-progress` or
/// `--stdout`); progress lines on stderr otherwise (`./dev run` logs them).
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    /// The next tenth of the history to report without a bar.
    next_tenth: u64,
    from: DateTime<Utc>,
    began: Instant,
}

impl Progress {
    fn new(args: &SimulateArgs, from: DateTime<Utc>) -> Progress {
        let quiet = args.no_progress || args.stdout || !std::io::stderr().is_terminal();
        let bar = (!quiet).then(|| {
            let bar = indicatif::ProgressBar::new(100);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:40} {percent}% {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar
        });
        Progress {
            bar,
            next_tenth: 1,
            from,
            began: Instant::now(),
        }
    }

    /// Reports `events` sent up to simulated time `at`.
    fn update(&mut self, events: u64, at: DateTime<Utc>, live: bool) {
        let rate = events as f64 / self.began.elapsed().as_secs_f64().max(1e-9);
        let total = (Utc::now() - self.from).num_milliseconds().max(1) as f64;
        let done = ((at - self.from).num_milliseconds() as f64 / total).clamp(0.0, 1.0);
        let phase = if live { "live" } else { "backfill" };
        let msg = format!(
            "{phase}: {events} events ({rate:.0}/s), at {}",
            at.format("%Y-%m-%d %H:%M")
        );
        match &self.bar {
            Some(bar) => {
                bar.set_position((done * 100.0) as u64);
                bar.set_message(msg);
            }
            None if !live && done * 10.0 >= self.next_tenth as f64 => {
                self.next_tenth = (done * 10.0) as u64 + 1;
                eprintln!("{:.0}% {msg}", done * 100.0);
            }
            None => {}
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// What [`pump`] sent.
struct Sent {
    events: u64,
    by_type: BTreeMap<&'static str, u64>,
    /// Stopped by Ctrl-C.
    interrupted: bool,
}

/// Sends the stream to `target` until `--events`, `--duration` (of live traffic) or Ctrl-C.
///
/// One timeline, never ahead of the wall clock: a batch takes only events whose time has come
/// (`time <= now`, read when the batch is made), so no event is sent before its time whatever
/// the pace; when nothing is due, it sleeps until the next event is. With `--backfill` the
/// history is all due and goes as fast as the target takes it; the first batch that finds no
/// more due events ends the backfill, and the stream continues at the live pace (`--rate`).
/// `--rate 0` sends everything at once (times may then run ahead; the intake refuses those).
async fn pump(
    args: &SimulateArgs,
    generator: &mut Generator,
    target: &Target,
    mut labels: Option<&mut std::io::BufWriter<std::fs::File>>,
) -> anyhow::Result<Sent> {
    let mut sent = Sent {
        events: 0,
        by_type: BTreeMap::new(),
        interrupted: false,
    };
    let mut progress = Progress::new(args, generator.peek_time());
    let mut live_since = args.backfill.is_none().then(Instant::now);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let remaining = args.events.map(|n| n - sent.events);
        let out_of_time = live_since
            .zip(args.duration)
            .is_some_and(|(s, d)| s.elapsed() >= d);
        if remaining == Some(0) || out_of_time {
            break;
        }
        let n = remaining.map_or(args.batch, |r| r.min(args.batch as u64) as usize);
        let now = Utc::now();
        let mut batch = Vec::with_capacity(n);
        let mut batch_labels = vec![];
        while batch.len() < n && (args.rate <= 0.0 || generator.peek_time() <= now) {
            let (event, label) = generator.next_labelled();
            batch_labels.extend(label);
            batch.push(event);
        }
        if live_since.is_none() && batch.len() < n {
            live_since = Some(Instant::now());
            generator.set_pace(args.live_gap(), Utc::now());
            progress.finish();
            eprintln!(
                "backfill done: {} events in {:.1}s ({:.0}/s); live at {}/s",
                sent.events + batch.len() as u64,
                progress.began.elapsed().as_secs_f64(),
                (sent.events + batch.len() as u64) as f64
                    / progress.began.elapsed().as_secs_f64().max(1e-9),
                args.rate
            );
        }
        if batch.is_empty() {
            let wait = (generator.peek_time() - Utc::now())
                .to_std()
                .unwrap_or_default()
                .min(Duration::from_secs(1));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = &mut ctrl_c => { sent.interrupted = true; break; }
            }
            continue;
        }
        let last = batch.last().map(|e| e.time).unwrap_or(now);
        for e in &batch {
            *sent.by_type.entry(e.event_type().as_str()).or_default() += 1;
        }
        let count = batch.len() as u64;
        tokio::select! {
            r = target.send(batch) => r?,
            _ = &mut ctrl_c => { sent.interrupted = true; break; }
        }
        sent.events += count;
        if let Some(out) = labels.as_mut() {
            write_labels(out, &batch_labels)?;
        }
        progress.update(sent.events, last, live_since.is_some());
    }
    progress.finish();
    Ok(sent)
}

/// Appends the labels of a sent batch (NDJSON) and flushes them.
fn write_labels(
    out: &mut std::io::BufWriter<std::fs::File>,
    labels: &[crate::simulate::Label],
) -> anyhow::Result<()> {
    for l in labels {
        let line = serde_json::json!({
            "event_id": l.event_id,
            "attack": l.attack.as_str(),
            "attack_id": l.attack_id,
        });
        serde_json::to_writer(&mut *out, &line)?;
        out.write_all(b"\n")?;
    }
    out.flush().context("writing the labels file")?;
    Ok(())
}
