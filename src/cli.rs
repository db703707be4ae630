//! The `authtrail` command line: one subcommand per job, each a thin shell over the library.
//!
//! Exit codes: 0 success; 1 input was (partly) rejected (`publish`); 2 configuration, broker or
//! database error.

use crate::config::Config;
use crate::signal::{finish_within, stop_signal, stopped};
use crate::{db, kafka, telemetry};
use anyhow::Context;
use authtrail_events::Event;
use clap::{Parser, Subcommand};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "authtrail",
    version,
    about = "Event-sourced authentication audit"
)]
struct Cli {
    /// TOML configuration file (default: $AUTHTRAIL_CONFIG, else ./authtrail.toml if present).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Ensure the topic and (when the query API or the projector runs) the database schema, then
    /// serve HTTP: health, readiness, metrics, the
    /// intake (`POST /v1/events`) and the query API (`/api/v1/...`, OpenAPI at
    /// `/api/v1/openapi.json`); runs the projector too unless `projector.enabled = false`.
    Serve,
    /// Validate NDJSON events (one per line) and append the valid ones to the events topic.
    ///
    /// Every line is validated before anything is appended; rejected lines are reported by line
    /// number on stderr and the exit code is 1.
    Publish {
        /// NDJSON file; standard input when absent or `-`.
        file: Option<PathBuf>,
        /// Print `{"id","partition","offset"}` of every appended event on stdout.
        #[arg(long)]
        print_offsets: bool,
    },
    /// Create the database if missing and apply pending migrations.
    Migrate,
    /// Create the events topic if missing and print its partition count.
    Topic,
    /// Print the effective configuration (passwords masked).
    Config,
    /// Publish realistic simulated traffic (users, devices, habits, injected attacks) through the
    /// intake: directly to Kafka, or as batches to a running server's `POST /v1/events`.
    Simulate(crate::simulate::SimulateArgs),
    /// Run a projection worker: fold the events topic into the read tables until stopped.
    Project,
    /// Run the enrichment stage: validate and enrich what direct publishers write to
    /// `enrich.raw_topic`, append it to the events topic (or `enrich.rejected_topic`, with
    /// field and reason) exactly once, until stopped.
    Enrich,
    /// Re-read the log and check it against the seal checkpoints: names the first record that
    /// differs, and forged, unsigned or missing checkpoints. Exit 1 when anything is wrong.
    Verify(crate::seal::verify::VerifyArgs),
    /// Erase a person (GDPR art. 17): destroy the user's data keys, so the personal members of
    /// every event about them are unreadable in every copy of the log, and purge their rows from
    /// the read tables. Needs `privacy.master_key_file`. Prints the erasure record (JSON).
    Forget {
        /// The user id (the events' `subject`).
        user: String,
    },
    /// Check NDJSON events against the contract without appending them: each valid line is
    /// printed as the canonical event authtrail would store (stdout); each invalid one is
    /// reported by line, field and reason (stderr), and the exit code is 1. For publishers'
    /// tests and the SDKs' conformance tests.
    Validate {
        /// NDJSON file; standard input when absent or `-`.
        file: Option<PathBuf>,
    },
    /// Delete ended sessions and old login history from the read tables (never the log).
    Cleanup,
    /// DEV/TEST ONLY: mint an HS256 JWT signed with the configured `auth.jwt_hs256_secret`.
    ///
    /// For demos and tests against a local server. Production tokens come from the auth
    /// service; a deployment that shares its HS256 secret with this command is misconfigured.
    Token(TokenArgs),
    /// Write a slice of the log (offsets or times, filters) as NDJSON or CSV, merged across
    /// partitions in event time; a summary goes to stderr.
    Replay(crate::replay::export::ReplayArgs),
    /// Rebuild every projection from offset 0 into a fresh schema while the live workers run,
    /// then swap it in atomically and compare old and new (resumable: run it again).
    Rebuild(crate::replay::rebuild::RebuildArgs),
    /// Build the projections as they were at TIME (event time) into a schema of their own.
    AsOf(crate::replay::asof::AsOfArgs),
}

/// `authtrail token` (dev/test only).
#[derive(Debug, clap::Args)]
struct TokenArgs {
    /// `sub`: the user (or service) id.
    #[arg(long)]
    sub: String,
    /// `role`: user, admin, super_admin or service.
    #[arg(long, default_value = "user")]
    role: String,
    /// `sid`: the caller's current session id.
    #[arg(long)]
    sid: Option<String>,
    /// Lifetime in seconds (`exp` = now + ttl).
    #[arg(long, default_value_t = 3600)]
    ttl: u64,
    /// `scope` of a service token: `authtrail:publish`, `authtrail:backfill`,
    /// `authtrail:introspect`, space-separated (none: publish only).
    #[arg(long)]
    scope: Option<String>,
}

/// Parses the command line and runs the command.
pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Checking events needs no configuration (and must not fail on an unrelated AUTHTRAIL_*
    // variable of a publisher's environment).
    if let Command::Validate { file } = &cli.command {
        return validate(file.as_deref()).unwrap_or_else(|e| {
            eprintln!("authtrail: {e:#}");
            ExitCode::from(2)
        });
    }
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("authtrail: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init_logging(&config.log);
    match run(cli.command, config).await {
        Ok(code) => code,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "failed");
            eprintln!("authtrail: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<ExitCode> {
    match command {
        Command::Config => {
            print!("{}", config.redacted_toml());
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate => {
            db::migrate(&config.database)
                .await
                .context("migrating the database")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Topic => {
            let partitions = kafka::ensure_topic(&config.kafka).await?;
            println!("{} {partitions}", config.kafka.topic);
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve => serve(config).await,
        Command::Publish {
            file,
            print_offsets,
        } => publish(config, file, print_offsets).await,
        Command::Simulate(args) => crate::simulate::run(config, args).await,
        Command::Project => {
            let _ = telemetry::metrics();
            let pool = db::migrate(&config.database)
                .await
                .context("migrating the database")?;
            kafka::ensure_topic(&config.kafka).await?;
            let grace = Duration::from_millis(config.http.shutdown_grace_ms);
            let projector = crate::projector::Projector::new(config, pool)?;
            let stop = stop_signal();
            finish_within(grace, stop.clone(), projector.run(stopped(stop))).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Enrich => {
            let _ = telemetry::metrics();
            kafka::ensure_topic(&config.kafka).await?;
            crate::ingest::stage::Stage::ensure_topics(&config).await?;
            let grace = Duration::from_millis(config.http.shutdown_grace_ms);
            let intake = std::sync::Arc::new(crate::ingest::Intake::from_config(&config)?);
            let stage = crate::ingest::stage::Stage::new(&config, intake)?;
            let stop = stop_signal();
            finish_within(grace, stop.clone(), stage.run(stopped(stop))).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate { file } => validate(file.as_deref()),
        Command::Forget { user } => forget(&config, &user).await,
        Command::Verify(args) => {
            // Read only: the database under audit is never migrated or written by verify.
            let pool = db::pool_options(2, Duration::from_secs(10))
                .connect(&config.database.url)
                .await
                .context("connecting to the database")?;
            let report = crate::seal::verify::verify(&config, &pool, &args).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                for p in &report.problems {
                    println!("FAIL {p}");
                }
                println!(
                    "{}: {} records verified against {} checkpoints, {} after the last checkpoint (unsealed), {} problem(s)",
                    if report.ok() { "ok" } else { "TAMPERED" },
                    report.verified,
                    report.checkpoints,
                    report.unsealed,
                    report.problems.len()
                );
            }
            Ok(if report.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Cleanup => {
            let pool = db::migrate(&config.database)
                .await
                .context("migrating the database")?;
            let (sessions, history) = crate::projector::cleanup(&pool, &config.retention).await?;
            tracing::info!(sessions, login_history = history, "cleanup done");
            println!("deleted {sessions} session(s) and {history} login attempt(s)");
            Ok(ExitCode::SUCCESS)
        }
        Command::Token(args) => {
            let token = crate::auth::dev_token::mint(
                &config.auth,
                &crate::auth::dev_token::DevToken {
                    sub: args.sub,
                    role: args.role,
                    sid: args.sid,
                    ttl: args.ttl,
                    scope: args.scope,
                },
            )?;
            eprintln!("authtrail token: DEV/TEST ONLY - signed with the configured HS256 secret");
            println!("{token}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Replay(args) => {
            crate::replay::export::run(config, args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Rebuild(args) => {
            crate::replay::rebuild::run(config, args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::AsOf(args) => {
            crate::replay::asof::run(config, args).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<ExitCode> {
    let grace = Duration::from_millis(config.http.shutdown_grace_ms);
    let app = crate::app::Application::build(config).await?;
    // One shutdown signal for the server and the projector.
    let stop = stop_signal();
    finish_within(grace, stop.clone(), app.run_until_stopped(stopped(stop))).await?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// How many events one `publish_all` call carries: bounds memory of in-flight futures while
/// keeping the producer's pipeline full.
const PUBLISH_CHUNK: usize = 5_000;

async fn publish(
    config: Config,
    file: Option<PathBuf>,
    print_offsets: bool,
) -> anyhow::Result<ExitCode> {
    let mut input = Vec::new();
    match file.as_deref() {
        None => std::io::stdin().read_to_end(&mut input),
        Some(p) if p.as_os_str() == "-" => std::io::stdin().read_to_end(&mut input),
        Some(p) => std::fs::File::open(p)
            .with_context(|| format!("opening {}", p.display()))?
            .read_to_end(&mut input),
    }
    .context("reading input")?;

    let (events, rejected) = validate_ndjson(&input);
    for (line, err) in &rejected {
        eprintln!("line {line}: {err}");
    }
    if rejected.is_empty() && events.is_empty() {
        eprintln!("no events in input");
        return Ok(ExitCode::SUCCESS);
    }
    if !events.is_empty() {
        kafka::ensure_topic(&config.kafka).await?;
        // The intake's path: enrich (GeoIP, user agent, device id), then append.
        let intake = crate::ingest::Intake::from_config(&config)?;
        let mut stdout = std::io::stdout().lock();
        let mut done = 0usize;
        for chunk in events.chunks(PUBLISH_CHUNK) {
            let appended = intake.submit(chunk.to_vec(), "cli:publish").await?;
            done += appended.len();
            if print_offsets {
                for a in &appended {
                    serde_json::to_writer(&mut stdout, a)?;
                    stdout.write_all(b"\n")?;
                }
            }
            if events.len() > PUBLISH_CHUNK {
                eprintln!("appended {done}/{}", events.len());
            }
        }
        stdout.flush()?;
    }
    eprintln!(
        "appended {} event(s) to {}; rejected {} line(s)",
        events.len(),
        config.kafka.topic,
        rejected.len()
    );
    Ok(if rejected.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Splits NDJSON into valid events and `(line number, error)` for the rest. Blank lines are
/// skipped; a trailing `\r` is tolerated.
fn validate_ndjson(input: &[u8]) -> (Vec<Event>, Vec<(usize, authtrail_events::ContractError)>) {
    let mut events = Vec::new();
    let mut rejected = Vec::new();
    for (i, line) in input.split(|b| *b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match authtrail_events::parse(line) {
            Ok(e) => events.push(e),
            Err(e) => rejected.push((i + 1, e)),
        }
    }
    (events, rejected)
}

/// `authtrail validate`: canonical events out, errors by line, exit 1 when any line is invalid.
fn validate(file: Option<&std::path::Path>) -> anyhow::Result<ExitCode> {
    let mut input = Vec::new();
    match file {
        Some(p) if p.as_os_str() != "-" => {
            input = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?
        }
        _ => {
            std::io::stdin().read_to_end(&mut input)?;
        }
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut invalid = 0usize;
    for (i, line) in input.split(|b| *b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match authtrail_events::parse(line) {
            Ok(event) => {
                out.write_all(&event.to_json_bytes())?;
                out.write_all(b"\n")?;
            }
            Err(e) => {
                invalid += 1;
                eprintln!("line {}: {}: {}", i + 1, e.field, e.reason);
            }
        }
    }
    out.flush()?;
    Ok(if invalid == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `authtrail forget USER`: erases a person (see [`crate::privacy::forget`]).
async fn forget(config: &Config, user: &str) -> anyhow::Result<ExitCode> {
    // Without encryption the log holds personal data in the clear: a forget would purge
    // the tables and the next rebuild would bring everything back.
    anyhow::ensure!(
        config.privacy.encrypt,
        "forget needs privacy.encrypt (and privacy.master_key_file): without it events are stored in the clear and cannot be erased"
    );
    let pool = db::migrate(&config.database)
        .await
        .context("migrating the database")?;
    let keys = crate::privacy::Keyring::from_config(config)?
        .context("forget needs privacy.master_key_file (the key that wraps the subjects' keys)")?;
    let by = format!(
        "cli:{}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into())
    );
    let erasure =
        crate::privacy::forget::forget_everywhere(config, &pool, Some(&keys), user, &by).await?;
    println!("{}", serde_json::to_string_pretty(&erasure)?);
    Ok(ExitCode::SUCCESS)
}
