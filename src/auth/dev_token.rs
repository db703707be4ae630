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
    /// `sid`: the caller's current session id. A person's token without one gets a fresh
    /// `dev-<uuid>` (the server requires a `sid` and accepts one it has not seen projected).
    pub(crate) sid: Option<String>,
    /// Lifetime in seconds (`exp` = now + ttl).
    pub(crate) ttl: u64,
    /// `scope`: a service token's grant, e.g. `authtrail:publish authtrail:introspect`.
    pub(crate) scope: Option<String>,
}

/// Mints an HS256 JWT with `sub`, `role`, optional `sid`, `iat`, `nbf`, `exp`, and the
/// configured `iss`/`aud`. Refuses roles the verifier would not accept, a missing secret and a
/// missing issuer or audience (the server requires both).
pub(crate) fn mint(auth: &AuthConfig, token: &DevToken) -> anyhow::Result<String> {
    let secret = auth.jwt_hs256_secret.expose();
    if secret.len() < 32 {
        anyhow::bail!("auth.jwt_hs256_secret is not set (at least 32 bytes): nothing to sign with");
    }
    if !auth.jwt_algorithms.iter().any(|a| a == "HS256") {
        anyhow::bail!("HS256 is not in auth.jwt_algorithms: the server would refuse the token");
    }
    let (Some(iss), Some(aud)) = (
        auth.jwt_issuer.as_deref().filter(|s| !s.trim().is_empty()),
        auth.jwt_audience
            .as_deref()
            .filter(|s| !s.trim().is_empty()),
    ) else {
        anyhow::bail!(
            "auth.jwt_issuer and auth.jwt_audience must be set: the server refuses tokens without iss and aud"
        );
    };
    let role: Role = serde_json::from_value(serde_json::Value::String(token.role.clone()))
        .map_err(|_| anyhow::anyhow!("--role: use user, admin, super_admin or service"))?;
    let now = jsonwebtoken::get_current_timestamp();
    let claims = Claims {
        sub: token.sub.clone(),
        sid: token.sid.clone().or_else(|| {
            (role != Role::Service).then(|| format!("dev-{}", uuid::Uuid::new_v4().simple()))
        }),
        role,
        exp: now + token.ttl,
        nbf: Some(now),
        iat: Some(now),
        iss: Some(iss.trim().to_owned()),
        aud: Some(serde_json::Value::String(aud.trim().to_owned())),
        scope: token.scope.clone(),
    };
    Ok(jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )?)
}
