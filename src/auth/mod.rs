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
pub mod jwt;

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
    /// JWT `sub`, or `api-key:<first 12 hex of the key's SHA-256>` (safe to log).
    pub subject: String,
    /// JWT `sid`, the caller's current session.
    pub session_id: Option<String>,
    /// API keys act as [`Role::Service`].
    pub role: Role,
    pub via: CredentialKind,
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
            AuthError::Jwt(JwtError::AlgorithmNotAllowed(_)) => "algorithm_not_allowed",
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
    api_key_hashes: Vec<[u8; 32]>,
}

/// Why the auth configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    #[error(transparent)]
    Jwt(#[from] jwt::JwtConfigError),
    #[error("auth.api_key_sha256[{0}]: not 64 hex digits")]
    BadHash(usize),
}

/// SHA-256 of an API key, as configured in `auth.api_key_sha256` (lower-case hex).
pub fn api_key_sha256(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

impl Verifier {
    pub fn from_config(cfg: &AuthConfig) -> Result<Self, AuthConfigError> {
        let mut api_key_hashes = Vec::new();
        for (i, h) in cfg.api_key_sha256.iter().enumerate() {
            let bytes = hex::decode(h.trim()).map_err(|_| AuthConfigError::BadHash(i))?;
            let arr: [u8; 32] = bytes.try_into().map_err(|_| AuthConfigError::BadHash(i))?;
            api_key_hashes.push(arr);
        }
        for key in &cfg.api_keys {
            api_key_hashes.push(Sha256::digest(key.as_bytes()).into());
        }
        Ok(Verifier {
            jwt: JwtVerifier::from_config(cfg)?,
            api_key_hashes,
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
            api_key_hashes: Vec::new(),
        }
    }

    /// Whether any credential at all can succeed.
    pub fn enabled(&self) -> bool {
        self.jwt.enabled() || !self.api_key_hashes.is_empty()
    }

    /// Checks an API key against every configured hash, without early exit.
    fn verify_api_key(&self, key: &str) -> Result<Caller, AuthError> {
        let presented: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let mut found = subtle::Choice::from(0u8);
        for h in &self.api_key_hashes {
            found |= h.ct_eq(&presented);
        }
        if bool::from(found) {
            Ok(Caller {
                subject: format!("api-key:{}", &hex::encode(presented)[..12]),
                session_id: None,
                role: Role::Service,
                via: CredentialKind::ApiKey,
            })
        } else {
            Err(AuthError::UnknownApiKey)
        }
    }

    /// Verifies a JWT.
    pub fn verify_jwt(&self, token: &str) -> Result<Caller, AuthError> {
        let claims = self.jwt.verify(token)?;
        Ok(Caller {
            subject: claims.sub,
            session_id: claims.sid,
            role: claims.role,
            via: CredentialKind::Jwt,
        })
    }

    /// Authenticates request headers (see the module docs for the order).
    pub fn authenticate(&self, headers: &axum::http::HeaderMap) -> Result<Caller, AuthError> {
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
            self.verify_jwt(token)
        } else {
            self.verify_api_key(token)
        }
    }
}
