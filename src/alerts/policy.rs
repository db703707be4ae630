//! The response policy (`alerts.policy`): what the dispatcher appends to the events topic for an
//! alert of a rule with an action, once the alert is published.
//!
//! Each action is aimed at *targets*: sessions (of a user) for `revoke_session`, users for
//! `revoke_all` and `lock_account`. Every target gets the action's event and an `admin.action`
//! record (actor `system:policy`), so a policy's action is audited like an administrator's.
//! Event ids are UUIDv5 of (alert id, action, target): an action repeated after a crash or for a
//! grown alert is the same fact, which the projection deduplicates by id.

use crate::config::PolicyAction;
use authtrail_events::data::{AccountLock, AdminAction, NonEmpty, OpaqueId, SessionRevoked};
use authtrail_events::kind::RevokeScope;
use authtrail_events::{Event, EventData};
use authtrail_projections::detect::Alert;
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;
use uuid::Uuid;

/// The `source` of the policy's events (under `/authtrail/`, which no publisher may claim).
const SOURCE: &str = "/authtrail/policy";
/// The `publisher` stamped on them.
pub(crate) const PUBLISHER: &str = "authtrail:policy";
/// Who acted, in `revoked_by`, `actor` and the audit record.
pub(crate) const ACTOR: &str = "system:policy";
/// Namespace of the policy's event ids.
const NAMESPACE: Uuid = Uuid::from_u128(0x5f0c_2a71_9e3b_4d18_a6c4_71b2_0d9e_3f58);

/// What one action is aimed at.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Target {
    Session { user: String, session: String },
    User(String),
}

impl Target {
    /// How the target is named in ids and in `alert_deliveries.policy_targets`.
    pub(crate) fn key(&self) -> String {
        match self {
            Target::Session { user, session } => format!("session:{user}/{session}"),
            Target::User(user) => format!("user:{user}"),
        }
    }

    fn user(&self) -> &str {
        match self {
            Target::Session { user, .. } | Target::User(user) => user,
        }
    }
}

/// The compromised sessions an alert names: `metadata.compromised[]` (credential stuffing with
/// a success inside the campaign), as `(user, session)`.
fn compromised(alert: &Alert) -> Vec<(String, String)> {
    alert
        .metadata
        .get("compromised")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| {
            let user = c.get("user_id")?.as_str()?;
            let session = c.get("session_id")?.as_str()?;
            Some((user.to_owned(), session.to_owned()))
        })
        .collect()
}

/// The targets of `action` for `alert`: for `revoke_session`, the alert's own session (when it
/// names one account and one session) and every compromised session; for the others, the
/// alert's account and the accounts of its compromised sessions.
pub(crate) fn targets(action: PolicyAction, alert: &Alert) -> BTreeSet<Target> {
    let mut sessions: BTreeSet<(String, String)> = compromised(alert).into_iter().collect();
    if let (Some(user), Some(session)) = (&alert.user_id, &alert.session_id) {
        sessions.insert((user.clone(), session.clone()));
    }
    match action {
        PolicyAction::RevokeSession => sessions
            .into_iter()
            .map(|(user, session)| Target::Session { user, session })
            .collect(),
        PolicyAction::RevokeAll | PolicyAction::LockAccount => sessions
            .into_iter()
            .map(|(user, _)| user)
            .chain(alert.user_id.clone())
            .map(Target::User)
            .collect(),
    }
}

fn non_empty(s: &str) -> NonEmpty {
    NonEmpty::try_from(s.to_owned()).expect("callers pass non-empty text")
}

/// The events of `action` on `target` for `alert`: the action's event, then its audit record,
/// both about the target's user. `None` when the target cannot be named by the contract (an
/// over-long id): the projection would refuse the events, so they are not appended.
pub(crate) fn events(
    action: PolicyAction,
    alert: &Alert,
    target: &Target,
    now: DateTime<Utc>,
) -> Option<Vec<Event>> {
    let user = target.user();
    let reason = format!("policy: {} alert {}", alert.rule, alert.id);
    let data = match (action, target) {
        (PolicyAction::RevokeSession, Target::Session { session, .. }) => {
            EventData::SessionRevoked(SessionRevoked {
                scope: RevokeScope::One,
                session_id: Some(OpaqueId::try_from(session.clone()).ok()?),
                reason: non_empty(&reason),
                revoked_by: non_empty(ACTOR),
            })
        }
        (PolicyAction::RevokeAll, Target::User(_)) => EventData::SessionRevoked(SessionRevoked {
            scope: RevokeScope::All,
            session_id: None,
            reason: non_empty(&reason),
            revoked_by: non_empty(ACTOR),
        }),
        (PolicyAction::LockAccount, Target::User(_)) => EventData::AccountLocked(AccountLock {
            reason: non_empty(&reason),
            until: None,
            actor: Some(ACTOR.to_owned()),
        }),
        _ => return None,
    };
    let mut details = Map::new();
    details.insert("alert_id".into(), json!(alert.id));
    details.insert("rule".into(), json!(alert.rule));
    if let Target::Session { session, .. } = target {
        details.insert("session_id".into(), json!(session));
    }
    let audit = EventData::AdminAction(AdminAction {
        action: non_empty(&format!("policy.{}", action.as_str())),
        actor: non_empty(ACTOR),
        target_user: Some(user.to_owned()),
        details: Some(details),
    });
    let name = format!("{}/{}/{}", alert.id, action.as_str(), target.key());
    let make = |id: Uuid, data: EventData| Event {
        id,
        source: SOURCE.to_owned(),
        time: now,
        subject: Some(user.to_owned()),
        publisher: Some(PUBLISHER.to_owned()),
        personal: None,
        data,
    };
    let out = vec![
        make(Uuid::new_v5(&NAMESPACE, name.as_bytes()), data),
        make(
            Uuid::new_v5(&NAMESPACE, format!("{name}/audit").as_bytes()),
            audit,
        ),
    ];
    // The projection sets aside what the contract refuses: check before appending.
    out.iter()
        .all(|e| authtrail_events::parse(&e.to_json_bytes()).is_ok())
        .then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(user: Option<&str>, session: Option<&str>, metadata: Value) -> Alert {
        let t: DateTime<Utc> = "2026-12-01T10:00:00Z".parse().unwrap();
        Alert {
            id: Uuid::from_u128(7),
            rule: "credential_stuffing".into(),
            severity: authtrail_projections::rows::Severity::Critical,
            subject: "*".into(),
            user_id: user.map(str::to_owned),
            ip: None,
            session_id: session.map(str::to_owned),
            title: "t".into(),
            description: "d".into(),
            count: 12,
            accounts: 12,
            ips: 12,
            first_seen: t,
            last_seen: t,
            evidence: vec![],
            metadata,
        }
    }

    #[test]
    fn targets_are_the_compromised_sessions_and_their_accounts() {
        let a = alert(
            None,
            Some("s1"),
            json!({"compromised": [
                {"user_id": "u1", "session_id": "s1"},
                {"user_id": "u2", "session_id": "s2"},
            ]}),
        );
        let sessions: Vec<String> = targets(PolicyAction::RevokeSession, &a)
            .iter()
            .map(Target::key)
            .collect();
        assert_eq!(sessions, ["session:u1/s1", "session:u2/s2"]);
        let users: Vec<String> = targets(PolicyAction::LockAccount, &a)
            .iter()
            .map(Target::key)
            .collect();
        assert_eq!(users, ["user:u1", "user:u2"]);
        let own = alert(Some("u9"), Some("s9"), json!({}));
        assert_eq!(
            targets(PolicyAction::RevokeAll, &own)
                .iter()
                .map(Target::key)
                .collect::<Vec<_>>(),
            ["user:u9"]
        );
    }

    #[test]
    fn events_are_valid_deterministic_and_audited() {
        let a = alert(Some("u1"), Some("s1"), json!({}));
        let now = Utc::now();
        for action in [
            PolicyAction::RevokeSession,
            PolicyAction::RevokeAll,
            PolicyAction::LockAccount,
        ] {
            for target in targets(action, &a) {
                let first = events(action, &a, &target, now).expect("valid events");
                let again = events(action, &a, &target, now + chrono::TimeDelta::seconds(5))
                    .expect("valid events");
                assert_eq!(first.len(), 2);
                let ids: Vec<Uuid> = first.iter().map(|e| e.id).collect();
                assert_eq!(ids, again.iter().map(|e| e.id).collect::<Vec<_>>());
                assert_ne!(ids[0], ids[1]);
                assert_eq!(first[1].event_type().as_str(), "admin.action");
                assert!(first
                    .iter()
                    .all(|e| e.publisher.as_deref() == Some(PUBLISHER)));
            }
        }
    }
}
