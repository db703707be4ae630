//! JWT verification with `jsonwebtoken`: an algorithm allow-list, one key per algorithm, and the
//! claim rules every authtrail API shares.
//!
//! Rules: the header's `alg` must be in `auth.jwt_algorithms` and have a configured key (so `none`,
//! or HS256 "signed" with an RSA public key, never verify); `exp` is required; `nbf` and `iat` are
//! checked (neither may lie in the future beyond the leeway); `iss` and `aud` are required and
//! checked when configured; leeway is at most 30 s. Claims: `sub`, optional `sid`, `role`.

use crate::config::AuthConfig;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;

/// The roles a token can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    Admin,
    SuperAdmin,
    Service,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
            Role::SuperAdmin => "super_admin",
            Role::Service => "service",
        }
    }

    /// `admin` or `super_admin`.
    pub(crate) fn is_admin(self) -> bool {
        matches!(self, Role::Admin | Role::SuperAdmin)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The claims authtrail reads. Unknown claims are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Claims {
    /// The user (or service) id.
    pub(crate) sub: String,
    /// The caller's current session id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) sid: Option<String>,
    pub(crate) role: Role,
    pub(crate) exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) nbf: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) aud: Option<serde_json::Value>,
}

/// Why a JWT was refused. For logs and tests only: callers get a generic 401.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwtError {
    #[error("malformed token")]
    Malformed,
    #[error("algorithm {0} not allowed")]
    AlgorithmNotAllowed(String),
    #[error("invalid: {0}")]
    Invalid(String),
    #[error("issued in the future")]
    IssuedInFuture,
}

/// Why the JWT configuration is unusable; names the key.
#[derive(Debug, thiserror::Error)]
#[error("auth.{key}: {reason}")]
pub struct JwtConfigError {
    key: &'static str,
    reason: String,
}

fn config_error(key: &'static str, reason: impl Into<String>) -> JwtConfigError {
    JwtConfigError {
        key,
        reason: reason.into(),
    }
}

/// Verifies JWTs under the configured rules. Cheap to share behind an `Arc`.
pub struct JwtVerifier {
    keys: HashMap<Algorithm, (DecodingKey, Validation)>,
    leeway: u64,
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut algs: Vec<_> = self.keys.keys().map(|a| format!("{a:?}")).collect();
        algs.sort();
        f.debug_struct("JwtVerifier")
            .field("algorithms", &algs)
            .field("leeway", &self.leeway)
            .finish()
    }
}

impl JwtVerifier {
    /// Builds the allow-list from configuration. An allowed algorithm without its key is an error,
    /// except HS256 in the default configuration (no secret = no JWTs accepted).
    pub(crate) fn from_config(cfg: &AuthConfig) -> Result<Self, JwtConfigError> {
        if cfg.jwt_leeway_secs > 30 {
            return Err(config_error("jwt_leeway_secs", "must be at most 30"));
        }
        let mut keys = HashMap::new();
        for name in &cfg.jwt_algorithms {
            let (alg, key) = match name.as_str() {
                "HS256" => {
                    if cfg.jwt_hs256_secret.is_empty() {
                        continue;
                    }
                    if cfg.jwt_hs256_secret.len() < 32 {
                        return Err(config_error(
                            "jwt_hs256_secret",
                            "must be at least 32 bytes",
                        ));
                    }
                    (
                        Algorithm::HS256,
                        DecodingKey::from_secret(cfg.jwt_hs256_secret.as_bytes()),
                    )
                }
                "RS256" => (
                    Algorithm::RS256,
                    pem_key("jwt_rs256_public_key", &cfg.jwt_rs256_public_key, |b| {
                        DecodingKey::from_rsa_pem(b)
                    })?,
                ),
                "ES256" => (
                    Algorithm::ES256,
                    pem_key("jwt_es256_public_key", &cfg.jwt_es256_public_key, |b| {
                        DecodingKey::from_ec_pem(b)
                    })?,
                ),
                "EdDSA" => (
                    Algorithm::EdDSA,
                    pem_key("jwt_eddsa_public_key", &cfg.jwt_eddsa_public_key, |b| {
                        DecodingKey::from_ed_pem(b)
                    })?,
                ),
                other => {
                    return Err(config_error(
                        "jwt_algorithms",
                        format!("{other:?} is not supported; use HS256, RS256, ES256 or EdDSA"),
                    ))
                }
            };
            let mut v = Validation::new(alg);
            v.leeway = cfg.jwt_leeway_secs;
            v.validate_exp = true;
            v.validate_nbf = true;
            let mut required = vec!["exp", "sub"];
            if let Some(iss) = &cfg.jwt_issuer {
                v.set_issuer(&[iss]);
                required.push("iss");
            }
            match &cfg.jwt_audience {
                Some(aud) => {
                    v.set_audience(&[aud]);
                    required.push("aud");
                }
                None => v.validate_aud = false,
            }
            v.set_required_spec_claims(&required);
            keys.insert(alg, (key, v));
        }
        Ok(JwtVerifier {
            keys,
            leeway: cfg.jwt_leeway_secs,
        })
    }

    /// Whether any algorithm can verify (false: every JWT is refused).
    pub(crate) fn enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Verifies signature and claims; returns the claims of a valid token.
    pub(crate) fn verify(&self, token: &str) -> Result<Claims, JwtError> {
        let header = decode_header(token).map_err(|_| JwtError::Malformed)?;
        let (key, validation) = self
            .keys
            .get(&header.alg)
            .ok_or_else(|| JwtError::AlgorithmNotAllowed(format!("{:?}", header.alg)))?;
        let data = decode::<Claims>(token, key, validation)
            .map_err(|e| JwtError::Invalid(format!("{:?}", e.kind())))?;
        if let Some(iat) = data.claims.iat {
            if iat > jsonwebtoken::get_current_timestamp() + self.leeway {
                return Err(JwtError::IssuedInFuture);
            }
        }
        Ok(data.claims)
    }
}

fn pem_key(
    key: &'static str,
    path: &Option<std::path::PathBuf>,
    parse: impl Fn(&[u8]) -> jsonwebtoken::errors::Result<DecodingKey>,
) -> Result<DecodingKey, JwtConfigError> {
    let path = path
        .as_ref()
        .ok_or_else(|| config_error(key, "is required when its algorithm is allowed"))?;
    let pem = std::fs::read(path)
        .map_err(|e| config_error(key, format!("reading {}: {e}", path.display())))?;
    parse(&pem).map_err(|e| {
        config_error(
            key,
            format!("{}: not a usable PEM public key: {e}", path.display()),
        )
    })
}
