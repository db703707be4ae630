//! DEV/TEST ONLY: HS256 tokens signed with the configured `auth.jwt_hs256_secret`, for
//! `authtrail token` and the dashboard's demo sign-in. Production tokens come from the auth
//! service.

use super::{Claims, Role};
use crate::config::AuthConfig;

/// What a minted token says.
#[derive(Debug, Clone)]
pub(crate) struct DevToken {
    /// `sub`: the user (or service) id.
    pub(crate) sub: String,
    /// `role`: user, admin, super_admin or service.
    pub(crate) role: String,
    /// `sid`: the caller's current session id.
    pub(crate) sid: Option<String>,
    /// Lifetime in seconds (`exp` = now + ttl).
    pub(crate) ttl: u64,
}

/// Mints an HS256 JWT with `sub`, `role`, optional `sid`, `iat`, `nbf`, `exp`, and the
/// configured `iss`/`aud`. Refuses roles the verifier would not accept and a missing secret.
pub(crate) fn mint(auth: &AuthConfig, token: &DevToken) -> anyhow::Result<String> {
    if auth.jwt_hs256_secret.len() < 32 {
        anyhow::bail!("auth.jwt_hs256_secret is not set (at least 32 bytes): nothing to sign with");
    }
    if !auth.jwt_algorithms.iter().any(|a| a == "HS256") {
        anyhow::bail!("HS256 is not in auth.jwt_algorithms: the server would refuse the token");
    }
    let role: Role = serde_json::from_value(serde_json::Value::String(token.role.clone()))
        .map_err(|_| anyhow::anyhow!("--role: use user, admin, super_admin or service"))?;
    let now = jsonwebtoken::get_current_timestamp();
    let claims = Claims {
        sub: token.sub.clone(),
        sid: token.sid.clone(),
        role,
        exp: now + token.ttl,
        nbf: Some(now),
        iat: Some(now),
        iss: auth.jwt_issuer.clone(),
        aud: auth.jwt_audience.clone().map(serde_json::Value::String),
    };
    Ok(jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(auth.jwt_hs256_secret.as_bytes()),
    )?)
}
