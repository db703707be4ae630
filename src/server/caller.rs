//! Who may call, as extractor types: a handler's signature says it ([`ServiceCaller`],
//! [`AuthUser`], [`Person`], [`AdminUser`]).
//!
//! A missing or invalid credential is 401 with a generic problem body that never echoes what was
//! sent; a valid credential with the wrong role is 403. The route layer ([`super::routes`])
//! authenticates once and leaves the [`Caller`] in the request's extensions; the extractors take
//! it from there, or authenticate themselves on a route without that layer. Both go through
//! [`authenticate`], the one place where a person's token is also checked against the session
//! state authtrail holds ([`Authenticator`]).

use super::ApiError;
use crate::auth::{Caller, CredentialKind, Role, Verifier};
use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;

/// Who a route admits (the route layer's half of the extractors below).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admits {
    /// Role `service` (a service JWT or an intake API key).
    Service,
    /// A JWT of a person: `user`, `admin` or `super_admin`.
    Person,
    /// A JWT of `admin` or `super_admin`.
    Admin,
    /// Role `service` with the `introspect` scope (see [`crate::auth::Scope`]).
    Introspect,
    /// A JWT of `super_admin` (erasure).
    SuperAdmin,
}

impl Admits {
    /// The caller, or 403 naming the roles this route requires.
    pub(crate) fn check(self, caller: &Caller) -> Result<(), ApiError> {
        let (ok, required) = match self {
            Admits::Service => (caller.role == Role::Service, "service"),
            Admits::Person => (
                caller.via == CredentialKind::Jwt && caller.role != Role::Service,
                "user, admin or super_admin",
            ),
            Admits::Admin => (
                caller.via == CredentialKind::Jwt && caller.role.is_admin(),
                "admin or super_admin",
            ),
            Admits::Introspect => (
                caller.role == Role::Service && caller.grant.may_introspect(),
                "service with the introspect scope",
            ),
            Admits::SuperAdmin => (
                caller.via == CredentialKind::Jwt && caller.role == Role::SuperAdmin,
                "super_admin",
            ),
        };
        let service_route = matches!(self, Admits::Service | Admits::Introspect);
        if caller.via == CredentialKind::ApiKey && !service_route {
            // An API key is not a person: as if no credential were sent.
            return Err(ApiError::Unauthorized);
        }
        if !ok {
            tracing::info!(subject = ?caller.subject, role = %caller.role, required, "route refused: wrong role");
            return Err(ApiError::Forbidden(required));
        }
        Ok(())
    }
}

/// How long a session's state is taken from the cache: "sign out everywhere" holds across the
/// API within this time of its projection.
const SESSION_CACHE_TTL: Duration = Duration::from_secs(1);
/// Most sessions whose state is cached at once.
const SESSION_CACHE_ENTRIES: u64 = 100_000;
/// Longest a session lookup may take before the request is answered 503.
const SESSION_LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

/// Who may call: the credential verifier, and the session state a person's token is checked
/// against. Cheap to clone.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Gate>,
}

struct Gate {
    verifier: Arc<Verifier>,
    /// Refuse a person's token without `sid` (`auth.require_sid`).
    require_sid: bool,
    /// The projected sessions; `None` on a server without read tables (intake only), where no
    /// route admits a person.
    sessions: Option<Sessions>,
}

struct Sessions {
    pool: PgPool,
    /// `sid` → what the projection held about it, for at most [`SESSION_CACHE_TTL`].
    cache: moka::sync::Cache<String, Known>,
}

/// A session as the projection knows it.
#[derive(Debug, Clone)]
enum Known {
    /// Not (yet) projected: a login the projector has not reached is accepted.
    Unknown,
    /// Its user, and its status now (`active`, `revoked`, `logged_out`, `expired`, ...).
    Session { user: String, status: String },
}

impl Authenticator {
    /// Checks credentials and, when `pool` holds the read tables, persons' sessions.
    pub(crate) fn new(verifier: Arc<Verifier>, require_sid: bool, pool: Option<PgPool>) -> Self {
        let sessions = pool.map(|pool| Sessions {
            pool,
            cache: moka::sync::Cache::builder()
                .max_capacity(SESSION_CACHE_ENTRIES)
                .time_to_live(SESSION_CACHE_TTL)
                .build(),
        });
        Authenticator {
            inner: Arc::new(Gate {
                verifier,
                require_sid,
                sessions,
            }),
        }
    }

    /// Credentials only, `sid` required, no session state: for a router without read tables
    /// (the extractors' own tests).
    pub fn without_session_state(verifier: Arc<Verifier>) -> Self {
        Authenticator::new(verifier, true, None)
    }

    /// Refuses a person's token whose session ended (revoked, logged out, expired) or belongs
    /// to another user, and one without `sid` where `sid` is required. Service tokens and API
    /// keys have no session and pass. A session the projection does not know yet passes.
    pub(crate) async fn check_session(&self, caller: &Caller) -> Result<(), ApiError> {
        if caller.via != CredentialKind::Jwt || caller.role == Role::Service {
            return Ok(());
        }
        let Some(sid) = caller.session_id.as_deref() else {
            if self.inner.require_sid {
                return Err(refused("missing_sid", &"a person's token without sid"));
            }
            return Ok(());
        };
        let Some(sessions) = &self.inner.sessions else {
            return Ok(());
        };
        match sessions.known(sid).await? {
            Known::Unknown => Ok(()),
            Known::Session { user, .. } if user != caller.subject => Err(refused(
                "session_mismatch",
                &"the token's sid names another user's session",
            )),
            Known::Session { status, .. } if status != "active" => {
                Err(refused("session_ended", &format!("session {status}")))
            }
            Known::Session { .. } => Ok(()),
        }
    }
}

impl Sessions {
    /// What the projection holds about `sid` (cached for at most a second).
    async fn known(&self, sid: &str) -> Result<Known, ApiError> {
        if let Some(hit) = self.cache.get(sid) {
            return Ok(hit);
        }
        let lookup = sqlx::query_as::<_, (String, String)>(
            "SELECT user_id, session_status(s, now()) FROM sessions s WHERE session_id = $1",
        )
        .bind(sid)
        .fetch_optional(&self.pool);
        let row = match tokio::time::timeout(SESSION_LOOKUP_TIMEOUT, lookup).await {
            Ok(Ok(row)) => row,
            Ok(Err(e)) => {
                tracing::warn!(error = %crate::telemetry::escaped(&e), "the token's session could not be looked up");
                return Err(SESSION_UNREADABLE);
            }
            Err(_) => {
                tracing::warn!("the token's session lookup timed out");
                return Err(SESSION_UNREADABLE);
            }
        };
        let known = match row {
            Some((user, status)) => Known::Session { user, status },
            None => Known::Unknown,
        };
        self.cache.insert(sid.to_owned(), known.clone());
        Ok(known)
    }
}

/// The answer when a person's session cannot be checked: refused, not waved through.
const SESSION_UNREADABLE: ApiError = ApiError::Busy {
    detail: "the token's session could not be checked",
    retry_after: 1,
};

/// The generic 401, with the reason in the log and the metrics only.
fn refused(reason: &'static str, error: &dyn std::fmt::Display) -> ApiError {
    tracing::info!(reason, error = %crate::telemetry::escaped(&error), "request not authenticated");
    metrics::counter!("authtrail_auth_failures_total", "reason" => reason).increment(1);
    ApiError::Unauthorized
}

/// Authenticates the request's headers and checks a person's session (or takes the caller the
/// route layer found).
pub(crate) async fn authenticate(parts: &Parts, auth: &Authenticator) -> Result<Caller, ApiError> {
    if let Some(caller) = parts.extensions.get::<Caller>() {
        return Ok(caller.clone());
    }
    let caller = auth
        .inner
        .verifier
        .authenticate(&parts.headers)
        .await
        .map_err(|e| refused(e.label(), &e))?;
    auth.check_session(&caller).await?;
    Ok(caller)
}

/// An extractor type per [`Admits`] value: the caller, once authenticated and admitted.
macro_rules! admitted {
    ($(#[$doc:meta])* $vis:vis struct $name:ident($field_vis:vis Caller) = $admits:expr;) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        $vis struct $name($field_vis Caller);

        impl<S: Send + Sync> FromRequestParts<S> for $name
        where
            Authenticator: FromRef<S>,
        {
            type Rejection = ApiError;

            async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
                let caller = authenticate(parts, &Authenticator::from_ref(state)).await?;
                $admits.check(&caller)?;
                Ok($name(caller))
            }
        }
    };
}

admitted! {
    /// A caller with role `service` (a service JWT or an intake API key).
    pub struct ServiceCaller(pub Caller) = Admits::Service;
}

admitted! {
    /// A caller with a valid JWT of a person (`user`, `admin` or `super_admin`): the routes
    /// about "my" sessions and history. A service token has no sessions of its own and gets 403.
    pub(crate) struct Person(pub(crate) Caller) = Admits::Person;
}

admitted! {
    /// A service credential holding the `introspect` scope: the auth service asking whether a
    /// session is still active.
    pub(crate) struct Introspector(pub(crate) Caller) = Admits::Introspect;
}

admitted! {
    /// A caller with a valid JWT of role `admin` or `super_admin`.
    pub struct AdminUser(pub Caller) = Admits::Admin;
}

admitted! {
    /// A caller with a valid JWT of role `super_admin`: erasing a person.
    pub struct SuperAdminUser(pub Caller) = Admits::SuperAdmin;
}

/// Any caller with a valid JWT (users, admins, services); API keys are not users.
#[derive(Debug, Clone)]
pub struct AuthUser(pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for AuthUser
where
    Authenticator: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let caller = authenticate(parts, &Authenticator::from_ref(state)).await?;
        if caller.via != CredentialKind::Jwt {
            return Err(ApiError::Unauthorized);
        }
        Ok(AuthUser(caller))
    }
}
