//! authtrail — an event-sourced authentication audit system.
//!
//! Auth services publish every authentication fact as an immutable CloudEvent on Kafka;
//! projection workers fold the log into PostgreSQL read tables; a query API serves users and
//! admins. The code is laid out as the data flows:
//!
//! - `events/` (crate [`authtrail_events`]): the contract — envelope, types, validating parser.
//! - [`kafka`]: the one place that turns configuration into Kafka clients: [`kafka::Publisher`]
//!   (appends events, resolves after the broker acknowledged) and topic administration.
//! - `projections/` (crate [`authtrail_projections`]): the pure fold, no I/O.
//! - [`db`]: PostgreSQL pool and the forward-only migrations in `migrations/`.
//! - [`auth`]: verifying JWTs and API keys. [`server`]: the HTTP layer every feature shares —
//!   state, caller extractors, per-route policies (rate limit, audit), the one error type and
//!   its RFC 9457 bodies, health/readiness/metrics routes.
//! - [`ingest`]: the intake (`POST /v1/events`, `authtrail publish`): validate, enrich (GeoIP,
//!   user agent, device fingerprint), append; [`simulate`]: realistic traffic with injected
//!   attacks.
//! - [`api`]: the query API (`/api/v1/...`): users' sessions and history, admin monitoring,
//!   revocation appended to the log, introspection, SSE, OpenAPI document.
//! - [`projector`]: projection workers — consume, batch, apply the fold with its checkpoints in
//!   one PostgreSQL transaction (`authtrail project`, also inside `serve`).
//! - [`alerts`]: acting on alerts — each published once to the alerts topic, and the response
//!   policy (revoke, lock) appended to the log (inside `serve`).
//! - [`replay`]: history read again — `authtrail replay` (log slices for analysts), `rebuild`
//!   (projections rebuilt into a fresh schema and swapped in), `as-of` (the fold at an instant,
//!   which the API's admin time-travel route also answers).
//! - `web`: serves the dashboard built from `web/` (user sessions and history, admin security
//!   monitoring) under `/ui/`; it talks only to the public query API.
//! - [`seal`]: tamper evidence — a hash chain per partition, signed checkpoints (inside
//!   `serve`), and `authtrail verify`.
//! - [`privacy`]: erasure by crypto-shredding — personal members encrypted per subject where
//!   events enter, opened by the readers, `authtrail forget` destroying a subject's key.
//! - [`app`]: the composition root, [`app::Application::build`], used by `serve`, the tests and
//!   the benchmarks.
//! - [`cli`]: subcommands; [`config`]: the one typed configuration (file + environment);
//!   [`telemetry`]: logging and metrics set-up; `signal`: shutdown signals and grace.
//!
//! `src/main.rs` only calls [`cli::main`].

/// mimalloc for every binary built on this crate: a projector batch allocates and frees millions
/// of small strings and maps, and glibc's allocator took a third of the worker's CPU in a profile
/// of the 1 M-event projector benchmark (`perf record`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod alerts;
pub mod api;
pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod db;
pub mod ingest;
pub mod kafka;
pub mod privacy;
pub mod projector;
pub mod replay;
pub mod seal;
pub mod server;
mod signal;
pub mod simulate;
pub mod telemetry;
mod web;

pub use authtrail_events as events;
pub use config::Config;
