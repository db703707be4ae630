//! Who may call, as extractor types: a handler's signature says it ([`ServiceCaller`],
//! [`AuthUser`], [`Person`], [`AdminUser`]).
//!
//! A missing or invalid credential is 401 with a generic problem body that never echoes what was
//! sent; a valid credential with the wrong role is 403. The route layer ([`super::routes`])
//! authenticates once and leaves the [`Caller`] in the request's extensions; the extractors take
//! it from there, or authenticate themselves on a route without that layer.

use super::ApiError;
use crate::auth::{Caller, CredentialKind, Role, Verifier};
use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use std::sync::Arc;

/// Who a route admits (the route layer's half of the extractors below).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admits {
    /// Role `service` (a service JWT or an intake API key).
    Service,
    /// A JWT of a person: `user`, `admin` or `super_admin`.
    Person,
    /// A JWT of `admin` or `super_admin`.
    Admin,
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
        };
        if caller.via == CredentialKind::ApiKey && self != Admits::Service {
            // An API key is not a person: as if no credential were sent.
            return Err(ApiError::Unauthorized);
        }
        if !ok {
            tracing::info!(subject = %caller.subject, role = %caller.role, required, "route refused: wrong role");
            return Err(ApiError::Forbidden(required));
        }
        Ok(())
    }
}

/// Authenticates the request's headers (or takes the caller the route layer found).
pub(crate) fn authenticate(parts: &Parts, verifier: &Verifier) -> Result<Caller, ApiError> {
    if let Some(caller) = parts.extensions.get::<Caller>() {
        return Ok(caller.clone());
    }
    verifier.authenticate(&parts.headers).map_err(|e| {
        tracing::info!(reason = e.label(), error = %e, "request not authenticated");
        metrics::counter!("authtrail_auth_failures_total", "reason" => e.label()).increment(1);
        ApiError::Unauthorized
    })
}

/// An extractor type per [`Admits`] value: the caller, once authenticated and admitted.
macro_rules! admitted {
    ($(#[$doc:meta])* $vis:vis struct $name:ident($field_vis:vis Caller) = $admits:expr;) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        $vis struct $name($field_vis Caller);

        impl<S: Send + Sync> FromRequestParts<S> for $name
        where
            Arc<Verifier>: FromRef<S>,
        {
            type Rejection = ApiError;

            async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
                let caller = authenticate(parts, &Arc::<Verifier>::from_ref(state))?;
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
    /// A caller with a valid JWT of role `admin` or `super_admin`.
    pub struct AdminUser(pub Caller) = Admits::Admin;
}

/// Any caller with a valid JWT (users, admins, services); API keys are not users.
#[derive(Debug, Clone)]
pub struct AuthUser(pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for AuthUser
where
    Arc<Verifier>: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let caller = authenticate(parts, &Arc::<Verifier>::from_ref(state))?;
        if caller.via != CredentialKind::Jwt {
            return Err(ApiError::Unauthorized);
        }
        Ok(AuthUser(caller))
    }
}
