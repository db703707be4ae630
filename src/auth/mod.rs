//! Who is calling: one [`Verifier`] for every HTTP API (the extractors per audience belong to
//! the HTTP server layer).
//!
//! Credentials, in the order they are looked at:
//! - `X-API-Key: <key>` — an intake API key. Only SHA-256 hashes are held; a presented key is
//!   hashed and compared with every configured hash in constant time.
//! - `Authorization: Bearer <token>` — a JWT (see [`jwt`] for the rules). A bearer value that is
//!   not shaped like a JWT is tried as an API key, for clients that can only send bearer tokens.
//!
//! `dev_token` mints HS256 tokens for demos and tests.

pub(crate) mod dev_token;
mod grant;
pub mod jwt;

pub use grant::{Grant, GrantError, Refusal, Scope, RESERVED_SOURCE_PREFIX};

pub(crate) use jwt::Claims;
pub use jwt::{JwtError, JwtVerifier, Role};

use crate::config::AuthConfig;
use axum::http::header;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// How the caller proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    Jwt,
    ApiKey,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// JWT `sub`; for an API key `api-key:<name>` (named keys, `auth.keys.<name>`) or
    /// `api-key:<first 12 hex of the key's SHA-256>` (safe to log).
    pub subject: String,
    /// JWT `sid`, the caller's current session.
    pub session_id: Option<String>,
    /// API keys act as [`Role::Service`].
    pub role: Role,
    pub via: CredentialKind,
    /// When the credential stops being valid (JWT `exp`, Unix seconds); `None` for API keys.
    /// An open event stream ends then.
    pub expires_at: Option<u64>,
    /// What a service credential may publish or ask; [`Grant::none`] for persons.
    pub grant: Grant,
}

impl Caller {
    /// The `publisher` stamped on the events this caller appends: `api-key:<name or hash>`
    /// for an API key, `service:<sub>` for a service JWT.
    pub fn publisher(&self) -> String {
        match self.via {
            CredentialKind::ApiKey => self.subject.clone(),
            CredentialKind::Jwt => format!("service:{}", self.subject),
        }
    }
}

/// Why a request was not authenticated (for logs and metrics; the response stays generic).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("no credentials")]
    Missing,
    #[error("unknown API key")]
    UnknownApiKey,
    #[error("jwt: {0}")]
    Jwt(#[from] JwtError),
    #[error("malformed Authorization header")]
    MalformedHeader,
}

impl AuthError {
    /// A short label for metrics.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing_credentials",
            AuthError::UnknownApiKey => "unknown_api_key",
            AuthError::Jwt(JwtError::Malformed) | AuthError::MalformedHeader => "malformed_token",
            AuthError::Jwt(JwtError::AlgorithmNotAllowed(_))
            | AuthError::Jwt(JwtError::KeyAlgorithmMismatch) => "algorithm_not_allowed",
            AuthError::Jwt(JwtError::UnknownKey) => "unknown_key",
            AuthError::Jwt(JwtError::Invalid(_)) | AuthError::Jwt(JwtError::IssuedInFuture) => {
                "invalid_token"
            }
        }
    }
}

/// Verifies JWTs and API keys. Build once from [`AuthConfig`], share as `Arc<Verifier>`.
#[derive(Debug)]
pub struct Verifier {
    jwt: JwtVerifier,
    api_keys: Vec<ApiKey>,
}

/// One accepted API key: its hash, the name it is logged and stamped under, and its grant.
#[derive(Debug)]
struct ApiKey {
    sha256: [u8; 32],
    subject: String,
    grant: Grant,
}

/// Shortest raw API key accepted at start-up: 32 bytes (256 bits, when random) cannot be
/// guessed, and a key hashed with unsalted SHA-256 must not be brute-forceable.
pub const MIN_API_KEY_BYTES: usize = 32;

/// Why the auth configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    #[error(transparent)]
    Jwt(#[from] jwt::JwtConfigError),
    #[error("auth.api_key_sha256[{0}]: not 64 hex digits")]
    BadHash(usize),
    #[error("{0}: shorter than {MIN_API_KEY_BYTES} bytes; generate one with `authtrail keygen`")]
    ShortKey(String),
    #[error("auth.keys.{0}: give exactly one of `sha256` and `key`")]
    KeyOrHash(String),
    #[error("auth.keys.{0}: {1}")]
    Grant(String, GrantError),
    #[error("auth.keys: name {0:?} must be 1 to 64 of [A-Za-z0-9._-]")]
    BadName(String),
}

/// SHA-256 of an API key, as configured in `auth.api_key_sha256` (lower-case hex).
pub fn api_key_sha256(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

impl Verifier {
    pub fn from_config(cfg: &AuthConfig) -> Result<Self, AuthConfigError> {
        Ok(Verifier {
            jwt: JwtVerifier::from_config(cfg)?,
            api_keys: api_keys(cfg)?,
        })
    }

    /// Accepts nothing: the state before authentication is configured.
    pub fn disabled() -> Self {
        Verifier {
            jwt: JwtVerifier::from_config(&AuthConfig {
                jwt_algorithms: vec![],
                ..AuthConfig::default()
            })
            .expect("an empty allow-list is valid"),
            api_keys: Vec::new(),
        }
    }

    /// Whether any credential at all can succeed.
    pub fn enabled(&self) -> bool {
        self.jwt.enabled() || !self.api_keys.is_empty()
    }

    /// Checks an API key against every configured hash, without early exit.
    fn verify_api_key(&self, key: &str) -> Result<Caller, AuthError> {
        let presented: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let mut found = None;
        for k in &self.api_keys {
            if bool::from(k.sha256.ct_eq(&presented)) && found.is_none() {
                found = Some(k);
            }
        }
        let k = found.ok_or(AuthError::UnknownApiKey)?;
        Ok(Caller {
            subject: k.subject.clone(),
            session_id: None,
            role: Role::Service,
            via: CredentialKind::ApiKey,
            expires_at: None,
            grant: k.grant.clone(),
        })
    }

    /// Verifies a JWT (async: a token naming a new `kid` may wait for the key set's refetch).
    pub async fn verify_jwt(&self, token: &str) -> Result<Caller, AuthError> {
        let claims = self.jwt.verify(token).await?;
        let grant = match claims.role {
            Role::Service => Grant::from_scope_claim(claims.scope.as_deref()),
            _ => Grant::none(),
        };
        Ok(Caller {
            subject: claims.sub,
            session_id: claims.sid,
            role: claims.role,
            via: CredentialKind::Jwt,
            expires_at: Some(claims.exp),
            grant,
        })
    }

    /// Authenticates request headers (see the module docs for the order).
    pub async fn authenticate(&self, headers: &axum::http::HeaderMap) -> Result<Caller, AuthError> {
        if let Some(key) = headers.get("x-api-key") {
            let key = key.to_str().map_err(|_| AuthError::UnknownApiKey)?;
            return self.verify_api_key(key.trim());
        }
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(AuthError::Missing);
        };
        let value = value.to_str().map_err(|_| AuthError::MalformedHeader)?;
        let (scheme, token) = value.split_once(' ').ok_or(AuthError::MalformedHeader)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(AuthError::MalformedHeader);
        }
        let token = token.trim();
        if token.is_empty() {
            return Err(AuthError::MalformedHeader);
        }
        if token.contains('.') {
            self.verify_jwt(token).await
        } else {
            self.verify_api_key(token)
        }
    }
}

/// Every configured API key with its name and grant: the unnamed lists get the default grant
/// (publish the auth-service types), named keys their own. Raw keys shorter than
/// [`MIN_API_KEY_BYTES`] are refused.
fn api_keys(cfg: &AuthConfig) -> Result<Vec<ApiKey>, AuthConfigError> {
    let default = Grant::new(&[Scope::Publish], None, &[]).expect("the default grant is valid");
    let unnamed = |sha256: [u8; 32]| ApiKey {
        sha256,
        subject: format!("api-key:{}", &hex::encode(sha256)[..12]),
        grant: default.clone(),
    };
    let mut keys = Vec::new();
    for (i, h) in cfg.api_key_sha256.iter().enumerate() {
        keys.push(unnamed(parse_hash(h).ok_or(AuthConfigError::BadHash(i))?));
    }
    for (i, key) in cfg.api_keys.iter().enumerate() {
        if key.expose().len() < MIN_API_KEY_BYTES {
            return Err(AuthConfigError::ShortKey(format!("auth.api_keys[{i}]")));
        }
        keys.push(unnamed(Sha256::digest(key.expose().as_bytes()).into()));
    }
    for (name, k) in &cfg.keys {
        let name_ok = (1..=64).contains(&name.len())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if !name_ok {
            return Err(AuthConfigError::BadName(name.clone()));
        }
        let sha256 = match (&k.sha256, k.key.is_empty()) {
            (Some(h), true) => {
                parse_hash(h).ok_or_else(|| AuthConfigError::KeyOrHash(name.clone()))?
            }
            (None, false) if k.key.expose().len() < MIN_API_KEY_BYTES => {
                return Err(AuthConfigError::ShortKey(format!("auth.keys.{name}.key")))
            }
            (None, false) => Sha256::digest(k.key.expose().as_bytes()).into(),
            _ => return Err(AuthConfigError::KeyOrHash(name.clone())),
        };
        let grant = Grant::new(&k.scopes, k.types.as_deref(), &k.sources)
            .map_err(|e| AuthConfigError::Grant(name.clone(), e))?;
        keys.push(ApiKey {
            sha256,
            subject: format!("api-key:{name}"),
            grant,
        });
    }
    Ok(keys)
}

fn parse_hash(h: &str) -> Option<[u8; 32]> {
    hex::decode(h.trim()).ok()?.try_into().ok()
}
