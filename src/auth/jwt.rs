//! JWT verification with `jsonwebtoken`: an algorithm allow-list, keys picked by `kid`, and the
//! claim rules every authtrail API shares.
//!
//! Rules: the header's `alg` must be in `auth.jwt_algorithms` (so `none` never verifies); the
//! key is one of that algorithm — a key named by the token's `kid` that belongs to another
//! algorithm refuses the token (HS256 "signed" with an RSA public key never verifies); symmetric
//! keys come only from `auth.jwt_hs256_secret`, never from a key set. `exp` is required; `nbf`
//! and `iat` are checked (neither may lie in the future beyond the leeway); `iss` and `aud` are
//! required, and configured whenever any key is; leeway is at most 30 s. Claims: `sub`,
//! optional `sid`, `role`.
//!
//! Keys: the HS256 secret, PEM files (one per algorithm, and `auth.jwt_keys` with an optional
//! `kid`), and the identity provider's key set (`auth.jwks_url`, see [`jwks`]). A token naming a
//! `kid` is verified with the key(s) of that `kid`; when no key has it, the key set is fetched
//! again (rate limited) and then the keys without a `kid` of its algorithm are tried. A token
//! without `kid` tries every key of its algorithm.

mod jwks;

use crate::config::{AuthConfig, JwtKeyConfig};
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use jwks::Jwks;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::path::Path;

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
    /// A service token's grant: space-separated scopes (OAuth 2.0 `scope`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) scope: Option<String>,
}

/// Why a JWT was refused. For logs and tests only: callers get a generic 401.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwtError {
    #[error("malformed token")]
    Malformed,
    #[error("algorithm {0} not allowed")]
    AlgorithmNotAllowed(String),
    /// The key the token's `kid` names is for another algorithm (an algorithm confusion).
    #[error("the key named by kid is not a key of the token's algorithm")]
    KeyAlgorithmMismatch,
    /// No configured or fetched key can verify a token of this algorithm (and `kid`).
    #[error("no key for this token")]
    UnknownKey,
    #[error("invalid: {0}")]
    Invalid(String),
    #[error("issued in the future")]
    IssuedInFuture,
}

/// Why the JWT configuration is unusable; names the key.
#[derive(Debug, thiserror::Error)]
#[error("auth.{key}: {reason}")]
pub struct JwtConfigError {
    key: String,
    reason: String,
}

fn config_error(key: impl Into<String>, reason: impl Into<String>) -> JwtConfigError {
    JwtConfigError {
        key: key.into(),
        reason: reason.into(),
    }
}

/// A verification key: its algorithm is fixed, whatever a token's header says.
struct Key {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

/// Verifies JWTs under the configured rules. Cheap to share behind an `Arc`.
pub struct JwtVerifier {
    /// The allowed algorithms, each with its claim rules.
    validations: HashMap<Algorithm, Validation>,
    static_keys: Vec<Key>,
    jwks: Option<Jwks>,
    leeway: u64,
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut algs: Vec<_> = self.validations.keys().map(|a| format!("{a:?}")).collect();
        algs.sort();
        let kids: Vec<_> = self.static_keys.iter().map(|k| &k.kid).collect();
        f.debug_struct("JwtVerifier")
            .field("algorithms", &algs)
            .field("static_keys", &kids)
            .field("jwks", &self.jwks)
            .field("leeway", &self.leeway)
            .finish()
    }
}

/// The algorithms authtrail verifies, by their `auth.jwt_algorithms` names.
fn algorithm(name: &str) -> Option<Algorithm> {
    match name {
        "HS256" => Some(Algorithm::HS256),
        "RS256" => Some(Algorithm::RS256),
        "ES256" => Some(Algorithm::ES256),
        "EdDSA" => Some(Algorithm::EdDSA),
        _ => None,
    }
}

impl JwtVerifier {
    /// Builds the allow-list and the keys from configuration. An allowed asymmetric algorithm
    /// needs a key (a PEM file, `jwt_keys` or `jwks_url`); HS256 without a secret is off (the
    /// default: no JWTs accepted). Any key at all requires `jwt_issuer` and `jwt_audience`.
    pub(crate) fn from_config(cfg: &AuthConfig) -> Result<Self, JwtConfigError> {
        if cfg.jwt_leeway_secs > 30 {
            return Err(config_error("jwt_leeway_secs", "must be at most 30"));
        }
        let mut allowed = Vec::new();
        for name in &cfg.jwt_algorithms {
            let alg = algorithm(name).ok_or_else(|| {
                config_error(
                    "jwt_algorithms",
                    format!("{name:?} is not supported; use HS256, RS256, ES256 or EdDSA"),
                )
            })?;
            allowed.push(alg);
        }
        let static_keys = static_keys(cfg, &allowed)?;
        let jwks = match &cfg.jwks_url {
            Some(url) => Some(Jwks::from_config(url, cfg, &allowed)?),
            None => None,
        };
        for alg in &allowed {
            let has_key = static_keys.iter().any(|k| k.alg == *alg);
            if *alg != Algorithm::HS256 && !has_key && jwks.is_none() {
                let field = match alg {
                    Algorithm::RS256 => "jwt_rs256_public_key",
                    Algorithm::ES256 => "jwt_es256_public_key",
                    _ => "jwt_eddsa_public_key",
                };
                return Err(config_error(
                    field,
                    format!("{alg:?} is allowed but has no key (give a PEM file, auth.jwt_keys or auth.jwks_url)"),
                ));
            }
        }
        let enabled = !static_keys.is_empty() || jwks.is_some();
        let (issuer, audience) = if enabled {
            (
                required(&cfg.jwt_issuer, "jwt_issuer")?,
                required(&cfg.jwt_audience, "jwt_audience")?,
            )
        } else {
            (String::new(), String::new())
        };
        let validations = allowed
            .iter()
            .map(|alg| {
                let mut v = Validation::new(*alg);
                v.leeway = cfg.jwt_leeway_secs;
                v.validate_exp = true;
                v.validate_nbf = true;
                v.set_issuer(&[&issuer]);
                v.set_audience(&[&audience]);
                v.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
                (*alg, v)
            })
            .collect();
        Ok(JwtVerifier {
            validations,
            static_keys,
            jwks,
            leeway: cfg.jwt_leeway_secs,
        })
    }

    /// Whether any key can verify (false: every JWT is refused).
    pub(crate) fn enabled(&self) -> bool {
        !self.static_keys.is_empty() || self.jwks.is_some()
    }

    /// Verifies signature and claims; returns the claims of a valid token. Waits for a fetch of
    /// the key set only when the token names a `kid` no key has (and the rate limit allows one).
    pub(crate) async fn verify(&self, token: &str) -> Result<Claims, JwtError> {
        let header = decode_header(token).map_err(|_| JwtError::Malformed)?;
        let validation = self
            .validations
            .get(&header.alg)
            .ok_or_else(|| JwtError::AlgorithmNotAllowed(format!("{:?}", header.alg)))?;
        let kid = header.kid.as_deref();
        let fetched = match &self.jwks {
            Some(jwks) => {
                let unknown_kid =
                    kid.filter(|kid| !self.static_keys.iter().any(|k| k.has_kid(kid)));
                jwks.keys(unknown_kid).await
            }
            None => Default::default(),
        };
        let all = self.static_keys.iter().chain(fetched.iter());
        let candidates = select(all, header.alg, kid)?;
        let mut refused = JwtError::UnknownKey;
        for key in candidates {
            match decode::<Claims>(token, &key.key, validation) {
                Ok(data) => {
                    if let Some(iat) = data.claims.iat {
                        if iat > jsonwebtoken::get_current_timestamp() + self.leeway {
                            return Err(JwtError::IssuedInFuture);
                        }
                    }
                    return Ok(data.claims);
                }
                Err(e) => refused = JwtError::Invalid(format!("{:?}", e.kind())),
            }
        }
        Err(refused)
    }
}

impl Key {
    fn has_kid(&self, kid: &str) -> bool {
        self.kid.as_deref() == Some(kid)
    }
}

/// The keys to try for a token of `alg` naming `kid`: the keys of that `kid` (all of them of
/// `alg`, else the token is refused), or when none has it the keys without `kid` of `alg`; a
/// token without `kid`: every key of `alg`.
fn select<'a>(
    keys: impl Iterator<Item = &'a Key> + Clone,
    alg: Algorithm,
    kid: Option<&str>,
) -> Result<Vec<&'a Key>, JwtError> {
    let chosen: Vec<&Key> = match kid {
        Some(kid) => {
            let named: Vec<&Key> = keys.clone().filter(|k| k.has_kid(kid)).collect();
            if named.is_empty() {
                keys.filter(|k| k.kid.is_none() && k.alg == alg).collect()
            } else if named.iter().any(|k| k.alg != alg) {
                return Err(JwtError::KeyAlgorithmMismatch);
            } else {
                named
            }
        }
        None => keys.filter(|k| k.alg == alg).collect(),
    };
    if chosen.is_empty() {
        return Err(JwtError::UnknownKey);
    }
    Ok(chosen)
}

/// A configured, non-empty value, or an error naming the key.
fn required(value: &Option<String>, key: &'static str) -> Result<String, JwtConfigError> {
    match value.as_deref().map(str::trim) {
        Some(v) if !v.is_empty() => Ok(v.to_owned()),
        _ => Err(config_error(
            key,
            "is required whenever a JWT key is configured (tokens of other issuers or for other audiences must not verify)",
        )),
    }
}

/// The HS256 secret, the per-algorithm PEM files and `jwt_keys`, for the allowed algorithms.
fn static_keys(cfg: &AuthConfig, allowed: &[Algorithm]) -> Result<Vec<Key>, JwtConfigError> {
    let mut keys = Vec::new();
    let secret = cfg.jwt_hs256_secret.expose();
    if allowed.contains(&Algorithm::HS256) && !secret.is_empty() {
        if secret.len() < 32 {
            return Err(config_error(
                "jwt_hs256_secret",
                "must be at least 32 bytes",
            ));
        }
        keys.push(Key {
            kid: None,
            alg: Algorithm::HS256,
            key: DecodingKey::from_secret(secret.as_bytes()),
        });
    }
    let legacy = [
        (
            Algorithm::RS256,
            "jwt_rs256_public_key",
            &cfg.jwt_rs256_public_key,
        ),
        (
            Algorithm::ES256,
            "jwt_es256_public_key",
            &cfg.jwt_es256_public_key,
        ),
        (
            Algorithm::EdDSA,
            "jwt_eddsa_public_key",
            &cfg.jwt_eddsa_public_key,
        ),
    ];
    for (alg, field, path) in legacy {
        if let (true, Some(path)) = (allowed.contains(&alg), path) {
            keys.push(Key {
                kid: None,
                alg,
                key: pem_key(field, alg, path)?,
            });
        }
    }
    for (i, JwtKeyConfig { kid, alg, pem }) in cfg.jwt_keys.iter().enumerate() {
        let field = format!("jwt_keys[{i}]");
        let alg = match algorithm(alg) {
            Some(a) if a != Algorithm::HS256 => a,
            _ => {
                return Err(config_error(
                    field,
                    format!("alg {alg:?}: use RS256, ES256 or EdDSA (a public key)"),
                ))
            }
        };
        if !allowed.contains(&alg) {
            return Err(config_error(
                field,
                format!("alg {alg:?} is not in auth.jwt_algorithms"),
            ));
        }
        keys.push(Key {
            kid: kid.clone(),
            alg,
            key: pem_key(&field, alg, pem)?,
        });
    }
    Ok(keys)
}

fn pem_key(field: &str, alg: Algorithm, path: &Path) -> Result<DecodingKey, JwtConfigError> {
    let pem = std::fs::read(path)
        .map_err(|e| config_error(field, format!("reading {}: {e}", path.display())))?;
    let parsed = match alg {
        Algorithm::RS256 => DecodingKey::from_rsa_pem(&pem),
        Algorithm::ES256 => DecodingKey::from_ec_pem(&pem),
        _ => DecodingKey::from_ed_pem(&pem),
    };
    parsed.map_err(|e| {
        config_error(
            field,
            format!(
                "{}: not a usable {alg:?} PEM public key: {e}",
                path.display()
            ),
        )
    })
}
