//! What a service credential may do: publish which event types under which sources, append
//! events older than the intake's age limit (backfill), introspect sessions.
//!
//! Rules that hold whatever is configured:
//! - `admin.action` and `security_event.reviewed` are appended only by authtrail's own API:
//!   no grant includes them, and configuring them is a start-up error.
//! - Sources under [`RESERVED_SOURCE_PREFIX`] belong to authtrail; no grant may claim them.
//! - Persons (user, admin, super_admin tokens) hold [`Grant::none`].

pub use crate::config::Scope;
use authtrail_events::EventType;
use std::collections::BTreeSet;

/// Sources authtrail uses for the events it appends itself (`/authtrail/api`, ...).
pub const RESERVED_SOURCE_PREFIX: &str = "/authtrail/";

/// Types appended only by authtrail's own API.
pub(crate) const RESERVED_TYPES: &[EventType] =
    &[EventType::AdminAction, EventType::SecurityEventReviewed];

impl Scope {
    /// The spelling in a JWT `scope` claim.
    fn claim(self) -> &'static str {
        match self {
            Scope::Publish => "authtrail:publish",
            Scope::Backfill => "authtrail:backfill",
            Scope::Introspect => "authtrail:introspect",
        }
    }
}

/// What one credential may do. Cheap to compare; built once per credential at start-up (API
/// keys) or per token (service JWTs).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Grant {
    publish: BTreeSet<EventType>,
    /// Exact sources, or prefixes written with a trailing `*`; empty: any source outside
    /// [`RESERVED_SOURCE_PREFIX`].
    sources: Vec<String>,
    backfill: bool,
    introspect: bool,
}

/// Why a grant could not be built from configuration.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GrantError {
    #[error("{0} is appended only by authtrail's own API and cannot be granted")]
    ReservedType(EventType),
    #[error("source {0:?} is under {RESERVED_SOURCE_PREFIX}, which only authtrail may use")]
    ReservedSource(String),
    #[error("source pattern {0:?} is empty or has a `*` anywhere but at the end")]
    BadSource(String),
    #[error("types are listed but the publish scope is not granted")]
    TypesWithoutPublish,
}

/// Why an event may not be appended under a grant: the field and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub field: &'static str,
    pub reason: String,
}

impl Grant {
    /// Nothing at all: persons, and credentials before they are configured.
    pub fn none() -> Grant {
        Grant::default()
    }

    /// The types an auth service publishes: every type but the [`RESERVED_TYPES`].
    pub fn auth_service_types() -> BTreeSet<EventType> {
        EventType::ALL
            .iter()
            .copied()
            .filter(|t| !RESERVED_TYPES.contains(t))
            .collect()
    }

    /// A grant from configured scopes; `types` `None` means [`Grant::auth_service_types`].
    pub fn new(
        scopes: &[Scope],
        types: Option<&[EventType]>,
        sources: &[String],
    ) -> Result<Grant, GrantError> {
        let publish = scopes.contains(&Scope::Publish);
        let types: BTreeSet<EventType> = match types {
            Some(t) if !publish && !t.is_empty() => return Err(GrantError::TypesWithoutPublish),
            Some(t) => t.iter().copied().collect(),
            None if publish => Grant::auth_service_types(),
            None => BTreeSet::new(),
        };
        if let Some(t) = types.iter().find(|t| RESERVED_TYPES.contains(t)) {
            return Err(GrantError::ReservedType(*t));
        }
        for s in sources {
            let stem = s.strip_suffix('*').unwrap_or(s);
            if stem.is_empty() || stem.contains('*') {
                return Err(GrantError::BadSource(s.clone()));
            }
            if reserved_source(stem) || RESERVED_SOURCE_PREFIX.starts_with(stem) {
                return Err(GrantError::ReservedSource(s.clone()));
            }
        }
        Ok(Grant {
            publish: types,
            sources: sources.to_vec(),
            backfill: scopes.contains(&Scope::Backfill),
            introspect: scopes.contains(&Scope::Introspect),
        })
    }

    /// A service JWT's grant from its `scope` claim (space-separated, RFC 8693): the
    /// `authtrail:<scope>` values it holds. Without the claim: publish (the auth-service types).
    pub fn from_scope_claim(claim: Option<&str>) -> Grant {
        let scopes: Vec<Scope> = match claim {
            None => vec![Scope::Publish],
            Some(c) => [Scope::Publish, Scope::Backfill, Scope::Introspect]
                .into_iter()
                .filter(|s| c.split_ascii_whitespace().any(|w| w == s.claim()))
                .collect(),
        };
        Grant::new(&scopes, None, &[]).expect("the default types and no sources are valid")
    }

    /// Whether this credential may introspect sessions.
    pub fn may_introspect(&self) -> bool {
        self.introspect
    }

    /// Whether this credential may append events older than the intake's age limit.
    pub fn may_backfill(&self) -> bool {
        self.backfill
    }

    /// Whether an event of `event_type` from `source` may be appended under this grant; the
    /// refusal names the field.
    pub fn check(&self, event_type: EventType, source: &str) -> Result<(), Refusal> {
        if RESERVED_TYPES.contains(&event_type) {
            return Err(Refusal {
                field: "type",
                reason: format!("{event_type} is appended only by authtrail's own API"),
            });
        }
        if !self.publish.contains(&event_type) {
            return Err(Refusal {
                field: "type",
                reason: format!("this credential may not publish {event_type}"),
            });
        }
        if reserved_source(source) {
            return Err(Refusal {
                field: "source",
                reason: format!("sources under {RESERVED_SOURCE_PREFIX} are authtrail's own"),
            });
        }
        let allowed = self.sources.is_empty()
            || self.sources.iter().any(|p| match p.strip_suffix('*') {
                Some(prefix) => source.starts_with(prefix),
                None => source == p,
            });
        if !allowed {
            return Err(Refusal {
                field: "source",
                reason: format!(
                    "this credential may publish only as {}",
                    self.sources.join(", ")
                ),
            });
        }
        Ok(())
    }
}

/// Whether `source` is authtrail's own (compared without case, so `/AuthTrail/api` is too).
fn reserved_source(source: &str) -> bool {
    let s = source.trim_start().to_ascii_lowercase();
    s.starts_with(RESERVED_SOURCE_PREFIX) || s == RESERVED_SOURCE_PREFIX.trim_end_matches('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publisher() -> Grant {
        Grant::new(&[Scope::Publish], None, &[]).unwrap()
    }

    #[test]
    fn an_auth_service_key_cannot_append_the_apis_own_types_or_source() {
        let g = publisher();
        assert!(g.check(EventType::LoginSucceeded, "/services/auth").is_ok());
        for t in RESERVED_TYPES {
            assert_eq!(g.check(*t, "/services/auth").unwrap_err().field, "type");
        }
        for s in [
            "/authtrail/api",
            "/AuthTrail/api",
            "/authtrail",
            " /authtrail/x",
        ] {
            let r = g.check(EventType::LoginSucceeded, s).unwrap_err();
            assert_eq!(r.field, "source", "{s}");
        }
    }

    #[test]
    fn reserved_types_and_sources_cannot_be_configured() {
        assert_eq!(
            Grant::new(&[Scope::Publish], Some(&[EventType::AdminAction]), &[]),
            Err(GrantError::ReservedType(EventType::AdminAction))
        );
        for s in ["/authtrail/*", "/auth*", "/authtrail/api", "*", "/a*b"] {
            assert!(
                Grant::new(&[Scope::Publish], None, &[s.to_owned()]).is_err(),
                "{s}"
            );
        }
    }

    #[test]
    fn sources_and_types_limit_what_a_key_publishes() {
        let g = Grant::new(
            &[Scope::Publish],
            Some(&[EventType::LoginFailed]),
            &["/services/django*".into(), "auth-service".into()],
        )
        .unwrap();
        assert!(g
            .check(EventType::LoginFailed, "/services/django-auth")
            .is_ok());
        assert!(g.check(EventType::LoginFailed, "auth-service").is_ok());
        assert_eq!(
            g.check(EventType::LoginFailed, "auth-service-2")
                .unwrap_err()
                .field,
            "source"
        );
        assert_eq!(
            g.check(EventType::LoginSucceeded, "auth-service")
                .unwrap_err()
                .field,
            "type"
        );
    }

    #[test]
    fn a_service_token_holds_the_scopes_its_claim_names() {
        let none = Grant::from_scope_claim(Some("openid profile"));
        assert!(none.check(EventType::LoginSucceeded, "x").is_err());
        assert!(!none.may_introspect());
        let all = Grant::from_scope_claim(Some(
            "authtrail:publish authtrail:introspect authtrail:backfill",
        ));
        assert!(all.may_introspect() && all.may_backfill());
        assert!(all.check(EventType::LoginSucceeded, "x").is_ok());
        let default = Grant::from_scope_claim(None);
        assert!(default.check(EventType::LoginSucceeded, "x").is_ok());
        assert!(!default.may_introspect() && !default.may_backfill());
    }
}
