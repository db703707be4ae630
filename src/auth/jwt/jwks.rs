//! The identity provider's JSON Web Key Set (`auth.jwks_url`), cached.
//!
//! Contract:
//! - The set is fetched on first use, and again after `auth.jwks_cache_secs` (in the background:
//!   requests meanwhile use the set in hand) or when a token names a `kid` that no key has (a
//!   rotation: the request waits for that fetch, so the first token of a new key is accepted).
//! - Every fetch, whatever triggers it, counts against one rate limit: at most one per
//!   `auth.jwks_refetch_min_secs`. A flood of tokens with made-up `kid`s costs the identity
//!   provider at most one request per interval; such tokens are refused without waiting.
//!   Concurrent requests share one fetch.
//! - A key is used only for its own algorithm: its `alg` (or, without one, the algorithm its
//!   key type implies) must be RS256, ES256 or EdDSA and in `auth.jwt_algorithms`; symmetric
//!   (`oct`) keys, keys for encryption (`use` other than `sig`) and unusable keys are skipped.
//! - A fetched set replaces the one in hand (keys it no longer lists stop verifying; old and
//!   new keys verify together while both are listed). A failed fetch (unreachable, not 2xx,
//!   over 1 MiB, not a key set) keeps the set in hand and is logged.

use super::{config_error, Algorithm, JwtConfigError, Key};
use crate::config::AuthConfig;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::DecodingKey;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Largest key set document read.
const MAX_BYTES: usize = 1024 * 1024;
/// Most keys taken from one set (the rest are skipped): bounds the work per token.
const MAX_KEYS: usize = 64;
/// Longest one fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// The key set of one URL, shared by every request.
pub(super) struct Jwks {
    inner: Arc<Inner>,
}

struct Inner {
    url: reqwest::Url,
    client: reqwest::Client,
    allowed: Vec<Algorithm>,
    ttl: Duration,
    refetch_min: Duration,
    cached: RwLock<Cached>,
    /// When the last fetch started (the rate limit's clock).
    last_attempt: Mutex<Option<Instant>>,
    /// Held for the duration of a fetch: concurrent requests wait for its result.
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Clone, Default)]
struct Cached {
    keys: Arc<[Key]>,
    fetched_at: Option<Instant>,
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwks")
            .field("url", &self.inner.url.as_str())
            .field("keys", &self.inner.cached().keys.len())
            .finish()
    }
}

impl Jwks {
    /// Checks the URL and the limits; fetches nothing yet.
    pub(super) fn from_config(
        url: &str,
        cfg: &AuthConfig,
        allowed: &[Algorithm],
    ) -> Result<Jwks, JwtConfigError> {
        let url = reqwest::Url::parse(url)
            .map_err(|e| config_error("jwks_url", format!("not a URL: {e}")))?;
        match url.scheme() {
            // https: rustls with the Mozilla roots built in (webpki-roots), so a static
            // binary in a bare container verifies the provider's certificate too.
            "http" | "https" => {}
            other => {
                return Err(config_error(
                    "jwks_url",
                    format!("scheme {other:?}: use https (or http to a trusted host)"),
                ))
            }
        }
        if !url.username().is_empty() || url.password().is_some() {
            // A key set is public: credentials in its URL would only end up in logs.
            return Err(config_error(
                "jwks_url",
                "must not carry a user name or password",
            ));
        }
        if !allowed.iter().any(|a| *a != Algorithm::HS256) {
            return Err(config_error(
                "jwt_algorithms",
                "auth.jwks_url is set but no public-key algorithm (RS256, ES256, EdDSA) is allowed",
            ));
        }
        if cfg.jwks_cache_secs == 0 {
            return Err(config_error("jwks_cache_secs", "must be at least 1"));
        }
        if cfg.jwks_refetch_min_secs == 0 {
            return Err(config_error("jwks_refetch_min_secs", "must be at least 1"));
        }
        let host = url.host_str().unwrap_or_default();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !loopback && url.scheme() == "http" {
            tracing::warn!(url = %url, "auth.jwks_url is plain http: anyone on the path to it can substitute keys; use a trusted network");
        }
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| config_error("jwks_url", format!("HTTP client: {e}")))?;
        Ok(Jwks {
            inner: Arc::new(Inner {
                url,
                client,
                allowed: allowed.to_vec(),
                ttl: Duration::from_secs(cfg.jwks_cache_secs),
                refetch_min: Duration::from_secs(cfg.jwks_refetch_min_secs),
                cached: RwLock::new(Cached::default()),
                last_attempt: Mutex::new(None),
                fetching: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// The keys in hand. Fetches first (and waits) when none was ever fetched or when
    /// `unknown_kid` names a key the set lacks, rate limit permitting; refreshes a stale set in
    /// the background.
    pub(super) async fn keys(&self, unknown_kid: Option<&str>) -> Arc<[Key]> {
        let cached = self.inner.cached();
        let lacks = unknown_kid.is_some_and(|kid| !cached.keys.iter().any(|k| k.has_kid(kid)));
        if cached.fetched_at.is_none() || lacks {
            self.inner.fetch_unless_done(unknown_kid).await;
            return self.inner.cached().keys;
        }
        if cached
            .fetched_at
            .is_some_and(|at| at.elapsed() >= self.inner.ttl)
        {
            let inner = self.inner.clone();
            tokio::spawn(async move { inner.fetch_unless_done(None).await });
        }
        cached.keys
    }
}

impl Inner {
    fn cached(&self) -> Cached {
        self.cached
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Whether what the caller wanted is there: the key `kid`, or (without one) a fresh set.
    fn satisfied(&self, kid: Option<&str>) -> bool {
        let cached = self.cached();
        match kid {
            Some(kid) => cached.keys.iter().any(|k| k.has_kid(kid)),
            None => cached.fetched_at.is_some_and(|at| at.elapsed() < self.ttl),
        }
    }

    /// Takes the rate limit's slot: true when no fetch started within `refetch_min`.
    fn claim_slot(&self) -> bool {
        let mut last = self
            .last_attempt
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let free = last.is_none_or(|at| at.elapsed() >= self.refetch_min);
        if free {
            *last = Some(Instant::now());
        }
        free
    }

    /// Fetches unless another request's fetch already brought what `kid` wants or the rate
    /// limit forbids one now; a request arriving during a fetch waits for its result.
    async fn fetch_unless_done(&self, kid: Option<&str>) {
        let _fetching = self.fetching.lock().await;
        if self.satisfied(kid) || !self.claim_slot() {
            return;
        }
        match self.fetch().await {
            Ok(keys) => {
                tracing::info!(url = %self.url, keys = keys.len(), "auth: JWKS fetched");
                metrics::counter!("authtrail_jwks_fetches_total", "outcome" => "ok").increment(1);
                *self
                    .cached
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = Cached {
                    keys: keys.into(),
                    fetched_at: Some(Instant::now()),
                };
            }
            Err(reason) => {
                tracing::warn!(url = %self.url, %reason, "auth: JWKS fetch failed; keeping the keys in hand");
                metrics::counter!("authtrail_jwks_fetches_total", "outcome" => "error")
                    .increment(1);
            }
        }
    }

    async fn fetch(&self) -> Result<Vec<Key>, String> {
        let mut response = self
            .client
            .get(self.url.clone())
            .header(
                reqwest::header::ACCEPT,
                "application/jwk-set+json, application/json",
            )
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        if !response.status().is_success() {
            return Err(format!("HTTP status {}", response.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| e.without_url().to_string())?
        {
            if body.len() + chunk.len() > MAX_BYTES {
                return Err(format!("larger than {MAX_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        #[derive(serde::Deserialize)]
        struct Set {
            keys: Vec<serde_json::Value>,
        }
        let set: Set = serde_json::from_slice(&body).map_err(|e| format!("not a JWK set: {e}"))?;
        let mut keys = Vec::new();
        for (index, jwk) in set.keys.into_iter().enumerate() {
            if keys.len() == MAX_KEYS {
                tracing::warn!(url = %self.url, "auth: JWKS has more than {MAX_KEYS} usable keys; the rest are ignored");
                break;
            }
            match usable_key(jwk, &self.allowed) {
                Ok(key) => keys.push(key),
                Err(reason) => {
                    tracing::info!(url = %self.url, index, reason, "auth: JWKS key skipped")
                }
            }
        }
        Ok(keys)
    }
}

/// The key of one JWK, if authtrail may verify with it (see the module docs).
fn usable_key(value: serde_json::Value, allowed: &[Algorithm]) -> Result<Key, &'static str> {
    let jwk: Jwk = serde_json::from_value(value).map_err(|_| "not a JWK")?;
    if jwk
        .common
        .public_key_use
        .as_ref()
        .is_some_and(|u| *u != PublicKeyUse::Signature)
    {
        return Err("not a signature key (use)");
    }
    let by_type = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => Algorithm::ES256,
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            Algorithm::EdDSA
        }
        AlgorithmParameters::OctetKey(_) => {
            return Err("symmetric keys are never taken from a key set")
        }
        _ => return Err("unsupported key type or curve"),
    };
    let alg = match jwk.common.key_algorithm {
        None => by_type,
        Some(KeyAlgorithm::RS256) => Algorithm::RS256,
        Some(KeyAlgorithm::ES256) => Algorithm::ES256,
        Some(KeyAlgorithm::EdDSA) => Algorithm::EdDSA,
        Some(_) => return Err("alg not supported"),
    };
    if alg != by_type {
        return Err("alg does not fit the key type");
    }
    if !allowed.contains(&alg) {
        return Err("alg not in auth.jwt_algorithms");
    }
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| "unusable key parameters")?;
    Ok(Key {
        kid: jwk.common.key_id,
        alg,
        key,
    })
}
