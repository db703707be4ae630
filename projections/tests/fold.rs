//! Unit tests of the pure fold: every event type and every session rule, through the in-memory
//! tables (the same load → fold → write cycle as the SQL sink).

use authtrail_events::{parse_value, Event};
use authtrail_projections::fold::security_event_id;
use authtrail_projections::memory::Tables;
use authtrail_projections::rows::{SessionStatus, Severity};
use authtrail_projections::Rules;
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{json, Value};
use uuid::Uuid;

const U: &str = "user-1";

fn at(min: i64) -> DateTime<Utc> {
    "2026-11-24T09:00:00Z".parse::<DateTime<Utc>>().unwrap() + TimeDelta::minutes(min)
}

fn ev(n: u128, ty: &str, subject: Option<&str>, minute: i64, data: Value) -> Event {
    let mut v = json!({
        "specversion": "1.0", "id": Uuid::from_u128(n), "source": "/t", "type": ty,
        "time": at(minute).to_rfc3339(), "schemaversion": 1, "data": data,
    });
    if let Some(s) = subject {
        v["subject"] = json!(s);
    }
    parse_value(v).unwrap_or_else(|e| panic!("{ty}: {e}"))
}

fn login(n: u128, sid: &str, minute: i64, country: Option<(&str, &str)>) -> Event {
    let mut data = json!({
        "session_id": sid, "login_method": "password", "expires_at": at(minute + 15).to_rfc3339(),
        "identifier": "john@example.com", "refresh_token_id": format!("rt-{sid}-0"),
        "ip": "81.2.69.142", "device_id": format!("dev-{sid}"),
        "device": { "type": "mobile", "name": "Safari on iOS", "browser": "Mobile Safari", "os": "iOS" },
    });
    if let Some((cc, name)) = country {
        data["geo"] = json!({ "country_code": cc, "country": name, "city": "Somewhere" });
    }
    ev(n, "login.succeeded", Some(U), minute, data)
}

fn failed(n: u128, subject: Option<&str>, identifier: &str, minute: i64) -> Event {
    let reason = if subject.is_some() {
        "bad_password"
    } else {
        "unknown_user"
    };
    ev(
        n,
        "login.failed",
        subject,
        minute,
        json!({ "identifier": identifier, "failure_reason": reason, "ip": "203.0.113.7" }),
    )
}

fn project(events: &[Event]) -> Tables {
    let mut t = Tables::default();
    t.apply_batch(&Rules::default(), events);
    t
}

fn kinds(t: &Tables) -> Vec<(String, String)> {
    let mut v: Vec<_> = t
        .security_events
        .values()
        .map(|e| (e.event_type.clone(), e.severity.as_str().to_owned()))
        .collect();
    v.sort();
    v
}

#[test]
fn login_creates_session_history_profile_stats_and_security_event() {
    let t = project(&[login(1, "s1", 0, Some(("GB", "United Kingdom")))]);
    let s = &t.sessions["s1"];
    assert_eq!(s.user_id, U);
    assert_eq!(s.client.device_type.as_deref(), Some("mobile"));
    assert_eq!(s.client.device_name.as_deref(), Some("Safari on iOS"));
    assert_eq!(s.client.country_code.as_deref(), Some("GB"));
    assert_eq!(s.absolute_expires_at, at(12 * 60));
    assert_eq!(s.idle_expires_at, at(30));
    assert_eq!(s.expires_at, at(15));
    assert_eq!(s.status_at(at(1)), SessionStatus::Active);
    assert_eq!(s.status_at(at(16)), SessionStatus::Expired);
    assert!(!s.suspicious, "first login ever is not suspicious");
    let h = t.login_history.values().next().unwrap();
    assert!(h.success && h.session_id.as_deref() == Some("s1"));
    assert_eq!(t.profiles[U].successful_logins, 1);
    assert_eq!(t.stats.values().map(|c| c.successes).sum::<i64>(), 1);
    assert_eq!(kinds(&t), vec![("login_success".into(), "info".into())]);
}

#[test]
fn failed_logins_count_and_the_fourth_attempt_within_15_minutes_is_suspicious() {
    let mut evs: Vec<Event> = (0..3)
        .map(|i| failed(10 + i, Some(U), "john@example.com", i as i64))
        .collect();
    evs.push(login(20, "s1", 5, None));
    let t = project(&evs);
    let ok = &t.login_history[&Uuid::from_u128(20)];
    assert!(ok.suspicious);
    assert_eq!(
        ok.suspicious_reason.as_deref(),
        Some("Multiple failed login attempts (3)")
    );
    assert!(t.sessions["s1"].suspicious);
    assert_eq!(t.profiles[U].failed_logins, 3);
    assert!(
        !t.login_history[&Uuid::from_u128(12)].suspicious,
        "third failure had only 2 before it"
    );
    // One suspicious-login event (the success after the failures); the failures themselves make
    // no security event each: the brute-force alert counts them.
    let suspicious: Vec<_> = t
        .security_events
        .values()
        .filter(|e| e.event_type == "suspicious_activity")
        .collect();
    assert_eq!(suspicious.len(), 1);
    assert_eq!(suspicious[0].source_event_id, Uuid::from_u128(20));
    // Outside the window the failures no longer count.
    let mut late = (0..3)
        .map(|i| failed(30 + i, Some(U), "john@example.com", i as i64))
        .collect::<Vec<_>>();
    late.push(login(40, "s2", 16, None));
    assert!(!project(&late).login_history[&Uuid::from_u128(40)].suspicious);
}

#[test]
fn failures_of_unknown_users_count_per_identifier() {
    let evs: Vec<Event> = (0..4)
        .map(|i| failed(50 + i, None, "Mallory@Example.com", i as i64))
        .collect();
    let t = project(&evs);
    let last = &t.login_history[&Uuid::from_u128(53)];
    assert_eq!(last.user_id, None);
    assert_eq!(last.subject_key, "mallory@example.com");
    assert!(last.suspicious);
}

#[test]
fn a_login_from_a_country_not_seen_in_30_days_is_suspicious() {
    let t = project(&[
        login(1, "s1", 0, Some(("GB", "United Kingdom"))),
        login(2, "s2", 60, Some(("GB", "United Kingdom"))),
        login(3, "s3", 120, Some(("RU", "Russia"))),
        login(4, "s4", 180, Some(("RU", "Russia"))),
        login(5, "s5", 60 * 24 * 31, Some(("GB", "United Kingdom"))),
    ]);
    let sus = |n| t.login_history[&Uuid::from_u128(n)].suspicious;
    assert!(!sus(1) && !sus(2) && sus(3) && !sus(4));
    assert!(sus(5), "GB last seen more than 30 days before");
    assert!(t
        .security_events
        .values()
        .any(|e| e.description == "Suspicious login — john@example.com from Russia"));
    // No country, no verdict.
    let t = project(&[
        login(1, "s1", 0, Some(("GB", "United Kingdom"))),
        login(2, "s2", 5, None),
    ]);
    assert!(!t.login_history[&Uuid::from_u128(2)].suspicious);
}

fn refresh(n: u128, sid: &str, prev: &str, new: &str, minute: i64) -> Event {
    ev(
        n,
        "token.refreshed",
        Some(U),
        minute,
        json!({
            "session_id": sid, "refresh_token_id": new, "previous_refresh_token_id": prev,
            "expires_at": at(minute + 15).to_rfc3339(),
        }),
    )
}

#[test]
fn refresh_rotates_and_extends_and_reuse_revokes_with_a_critical_event() {
    let t = project(&[
        login(1, "s1", 0, None),
        refresh(2, "s1", "rt-s1-0", "rt-s1-1", 10),
        refresh(3, "s1", "rt-s1-1", "rt-s1-2", 20),
    ]);
    let s = &t.sessions["s1"];
    assert_eq!(s.refresh_count, 2);
    assert_eq!(s.refresh_token_id.as_deref(), Some("rt-s1-2"));
    assert_eq!(s.rotated_refresh_token_ids, vec!["rt-s1-0", "rt-s1-1"]);
    assert_eq!(s.expires_at, at(35));
    assert_eq!(s.idle_expires_at, at(50));
    assert_eq!(s.status_at(at(30)), SessionStatus::Active);

    let t = project(&[
        login(1, "s1", 0, None),
        refresh(2, "s1", "rt-s1-0", "rt-s1-1", 10),
        refresh(3, "s1", "rt-s1-0", "rt-s1-x", 11),
    ]);
    let s = &t.sessions["s1"];
    assert_eq!(s.revoked_reason.as_deref(), Some("refresh_token_reuse"));
    assert_eq!(s.revoked_at, Some(at(11)));
    assert_eq!(
        s.refresh_token_id.as_deref(),
        Some("rt-s1-1"),
        "reuse does not rotate"
    );
    assert!(s.suspicious);
    assert!(t
        .security_events
        .values()
        .any(|e| e.severity == Severity::Critical && e.event_type == "suspicious_activity"));
}

#[test]
fn refresh_never_extends_past_the_absolute_timeout() {
    let t = project(&[
        login(1, "s1", 0, None),
        refresh(2, "s1", "rt-s1-0", "rt-s1-1", 12 * 60 - 5),
    ]);
    // The session expired long before: the late refresh rotates but does not revive it.
    let s = &t.sessions["s1"];
    assert_eq!(s.refresh_token_id.as_deref(), Some("rt-s1-1"));
    assert_eq!(s.status_at(at(12 * 60 - 4)), SessionStatus::Expired);
    assert_eq!(s.expires_at, at(15));
    let mut evs = vec![login(1, "s1", 0, None)];
    let mut prev = "rt-s1-0".to_owned();
    for i in 1..=60u128 {
        let new = format!("rt-s1-{i}");
        evs.push(refresh(1 + i, "s1", &prev, &new, i as i64 * 14));
        prev = new;
    }
    let t = project(&evs);
    let s = &t.sessions["s1"];
    assert_eq!(s.expires_at, at(12 * 60), "capped at the absolute expiry");
    assert_eq!(s.status_at(at(12 * 60)), SessionStatus::Expired);
}

#[test]
fn activity_moves_idle_expiry_and_late_activity_does_not_revive() {
    let t = project(&[
        login(1, "s1", 0, None),
        ev(
            2,
            "session.activity",
            Some(U),
            10,
            json!({ "session_id": "s1" }),
        ),
        ev(
            3,
            "session.activity",
            Some(U),
            50,
            json!({ "session_id": "s1" }),
        ),
    ]);
    let s = &t.sessions["s1"];
    assert_eq!(s.last_activity_at, at(10));
    assert_eq!(s.idle_expires_at, at(40));
    assert_eq!(
        s.status_at(at(45)),
        SessionStatus::Expired,
        "expires_at (15 min) came first"
    );
}

#[test]
fn logout_ends_the_session() {
    let t = project(&[
        login(1, "s1", 0, None),
        ev(
            2,
            "session.logged_out",
            Some(U),
            5,
            json!({ "session_id": "s1" }),
        ),
    ]);
    let s = &t.sessions["s1"];
    assert_eq!(s.logged_out_at, Some(at(5)));
    assert_eq!(s.status_at(at(6)), SessionStatus::LoggedOut);
    assert_eq!(s.status_at(at(4)), SessionStatus::Active);
}

fn revoke(n: u128, scope: &str, sid: Option<&str>, minute: i64) -> Event {
    let mut data = json!({ "scope": scope, "reason": "user_request", "revoked_by": U });
    if let Some(s) = sid {
        data["session_id"] = json!(s);
    }
    ev(n, "session.revoked", Some(U), minute, data)
}

#[test]
fn revoke_one_all_and_all_except_apply_to_sessions_active_at_that_time() {
    let base = || {
        vec![
            login(1, "a", 0, None),
            login(2, "b", 1, None),
            login(3, "c", 2, None),
        ]
    };
    let mut e = base();
    e.push(revoke(10, "one", Some("b"), 3));
    let t = project(&e);
    assert_eq!(t.sessions["b"].status_at(at(4)), SessionStatus::Revoked);
    assert_eq!(t.sessions["a"].status_at(at(4)), SessionStatus::Active);

    let mut e = base();
    e.push(revoke(10, "all_except", Some("c"), 3));
    let t = project(&e);
    assert!(t.sessions["a"].revoked_at.is_some() && t.sessions["b"].revoked_at.is_some());
    assert!(t.sessions["c"].revoked_at.is_none());

    let mut e = base();
    e.push(ev(
        9,
        "session.logged_out",
        Some(U),
        2,
        json!({ "session_id": "a" }),
    ));
    e.push(revoke(10, "all", None, 3));
    let t = project(&e);
    assert_eq!(t.sessions["a"].revoked_at, None, "already ended");
    assert_eq!(t.sessions["b"].revoked_by.as_deref(), Some(U));
    assert_eq!(t.sessions["c"].status_at(at(4)), SessionStatus::Revoked);
    let ev = t
        .security_events
        .values()
        .find(|e| e.event_type == "session_revoked")
        .unwrap();
    assert_eq!(ev.metadata["sessions"], json!(["b", "c"]));
}

#[test]
fn the_sixth_login_revokes_the_least_recently_active_session() {
    let mut e: Vec<Event> = (0..5)
        .map(|i| login(1 + i, &format!("s{i}"), i as i64, None))
        .collect();
    // s0 was active most recently; s1 is now the least recently active.
    e.push(ev(
        10,
        "session.activity",
        Some(U),
        6,
        json!({ "session_id": "s0" }),
    ));
    e.push(login(11, "s5", 7, None));
    let t = project(&e);
    assert_eq!(
        t.sessions["s1"].revoked_reason.as_deref(),
        Some("concurrent_limit")
    );
    assert_eq!(t.sessions["s1"].revoked_by.as_deref(), Some("system"));
    let active = t
        .sessions
        .values()
        .filter(|s| s.is_active_at(at(8)))
        .count();
    assert_eq!(active, 5);
}

#[test]
fn account_lock_revokes_all_sessions_and_unlock_clears() {
    let t = project(&[
        login(1, "a", 0, None),
        login(2, "b", 1, None),
        ev(
            3,
            "account.locked",
            Some(U),
            2,
            json!({ "reason": "too_many_failed_logins", "actor": "system" }),
        ),
        ev(
            4,
            "account.unlocked",
            Some(U),
            3,
            json!({ "reason": "manual", "actor": "admin-1" }),
        ),
    ]);
    assert!(t
        .sessions
        .values()
        .all(|s| s.revoked_reason.as_deref() == Some("account_locked")));
    assert!(!t.profiles[U].locked);
    let k = kinds(&t);
    assert!(k.contains(&("account_locked".into(), "warning".into())));
    assert!(k.contains(&("account_unlocked".into(), "info".into())));
}

#[test]
fn device_trust_marks_sessions_and_records_the_device() {
    let t = project(&[
        login(1, "a", 0, None),
        ev(
            2,
            "device.trusted",
            Some(U),
            1,
            json!({ "device_id": "dev-a", "device_name": "iPhone" }),
        ),
        login(3, "b", 2, None),
    ]);
    assert!(t.sessions["a"].trusted_device);
    assert!(!t.sessions["b"].trusted_device, "another device");
    assert!(t.devices[&(U.to_owned(), "dev-a".to_owned())].trusted);
    assert!(t
        .security_events
        .values()
        .any(|e| e.description == "New device trusted — iPhone"));
    let t2 = project(&[
        login(1, "a", 0, None),
        ev(
            2,
            "device.trusted",
            Some(U),
            1,
            json!({ "device_id": "dev-a" }),
        ),
        ev(
            3,
            "device.untrusted",
            Some(U),
            2,
            json!({ "device_id": "dev-a" }),
        ),
    ]);
    assert!(!t2.sessions["a"].trusted_device);
    assert!(kinds(&t2).contains(&("device_revoked".into(), "info".into())));
    // Unnamed by the event: named as its active session names it, not by its id.
    assert!(t2
        .security_events
        .values()
        .any(|e| e.description == "Device trust revoked — Safari on iOS"));
}

#[test]
fn a_renamed_device_names_its_active_sessions_and_keeps_its_trust() {
    let on_dev_a = |n, sid: &str, minute| {
        let mut e = login(n, sid, minute, None);
        if let authtrail_events::EventData::LoginSucceeded(d) = &mut e.data {
            d.device_id = Some("dev-a".to_owned().try_into().unwrap());
        }
        e
    };
    let t = project(&[
        on_dev_a(1, "a", 0),
        ev(
            2,
            "device.trusted",
            Some(U),
            1,
            json!({ "device_id": "dev-a" }),
        ),
        login(3, "b", 2, None),
        ev(
            4,
            "device.renamed",
            Some(U),
            3,
            json!({ "device_id": "dev-a", "device_name": "Work phone" }),
        ),
    ]);
    assert_eq!(
        t.sessions["a"].client.device_name.as_deref(),
        Some("Work phone")
    );
    assert_eq!(
        t.sessions["b"].client.device_name.as_deref(),
        Some("Safari on iOS")
    );
    let d = &t.devices[&(U.to_owned(), "dev-a".to_owned())];
    assert_eq!(d.device_name.as_deref(), Some("Work phone"));
    assert!(d.trusted, "naming a device keeps its trust");
    assert!(t.sessions["a"].trusted_device);
    // A device first seen through its rename is not trusted unless its session is.
    let t2 = project(&[
        login(1, "c", 0, None),
        ev(
            2,
            "device.renamed",
            Some(U),
            1,
            json!({ "device_id": "dev-c", "device_name": "Laptop" }),
        ),
    ]);
    let d2 = &t2.devices[&(U.to_owned(), "dev-c".to_owned())];
    assert!(!d2.trusted);
    assert_eq!(
        t2.sessions["c"].client.device_name.as_deref(),
        Some("Laptop")
    );
}

#[test]
fn otp_password_and_admin_events_become_security_events() {
    let t = project(&[
        login(1, "s1", 0, None),
        ev(
            2,
            "otp.sent",
            Some(U),
            1,
            json!({ "channel": "sms", "session_id": "s1" }),
        ),
        ev(
            3,
            "otp.failed",
            Some(U),
            2,
            json!({ "channel": "sms", "reason": "mismatch" }),
        ),
        ev(
            4,
            "otp.verified",
            Some(U),
            3,
            json!({ "channel": "sms", "session_id": "s1" }),
        ),
        ev(
            5,
            "password.changed",
            Some(U),
            4,
            json!({ "changed_by": "admin-9" }),
        ),
        ev(
            6,
            "admin.action",
            Some(U),
            5,
            json!({ "action": "sessions.list", "actor": "admin-9", "target_user": U }),
        ),
    ]);
    assert!(t.sessions["s1"].otp_verified);
    let k = kinds(&t);
    for expected in [
        ("otp_sent", "info"),
        ("otp_failed", "warning"),
        ("otp_verified", "info"),
        ("password_changed", "warning"),
        ("admin_action", "info"),
    ] {
        assert!(
            k.contains(&(expected.0.into(), expected.1.into())),
            "{expected:?} in {k:?}"
        );
    }
    assert!(t.profiles[U].password_changed_at.is_some());
}

#[test]
fn super_admin_login_reads_like_the_seed() {
    let mut e = login(1, "s1", 0, None);
    if let authtrail_events::EventData::LoginSucceeded(d) = &mut e.data {
        d.roles = Some(vec!["super_admin".to_owned().try_into().unwrap()]);
        d.otp_verified = Some(true);
    }
    let t = project(&[e]);
    assert!(t
        .security_events
        .values()
        .any(|e| e.description == "Super-admin login — john@example.com (OTP verified)"));
}

#[test]
fn the_first_review_in_the_log_stands_whatever_its_time() {
    let login_ev = login(1, "s1", 0, None);
    let target = security_event_id(login_ev.id, "login_success");
    let r1 = ev(
        2,
        "security_event.reviewed",
        Some("admin-1"),
        5,
        json!({ "security_event_id": target, "reviewer": "alice" }),
    );
    // Later in the log, but dated earlier: a backdated review changes nothing.
    let r2 = ev(
        3,
        "security_event.reviewed",
        Some("admin-2"),
        -100_000,
        json!({ "security_event_id": target, "reviewer": "mallory" }),
    );
    // Both reviews key to the security event, so they share a partition and keep log order.
    assert_eq!(r1.partition_key(), r2.partition_key());
    assert_eq!(r1.partition_key(), target.to_string());
    let a = project(&[login_ev.clone(), r1.clone(), r2.clone()]);
    // The same log in other batches, the security event last: the same review stands.
    let mut b = Tables::default();
    b.apply_batch(&Rules::default(), &[r1]);
    b.apply_batch(&Rules::default(), &[r2]);
    b.apply_batch(&Rules::default(), &[login_ev]);
    assert_eq!(a.reviews, b.reviews);
    assert_eq!(a.reviews[&target].reviewer, "alice");
    assert!(a.security_events.contains_key(&target));
}

#[test]
fn events_for_unknown_sessions_create_a_first_seen_row() {
    let t = project(&[ev(
        1,
        "session.activity",
        Some(U),
        0,
        json!({ "session_id": "old" }),
    )]);
    let s = &t.sessions["old"];
    assert_eq!(s.metadata["first_seen"], "session.activity");
    assert_eq!(s.login_method, None);
}

#[test]
fn duplicate_ids_are_one_fact() {
    let e = login(1, "s1", 0, None);
    let t = project(&[e.clone(), e.clone()]);
    assert_eq!(t.login_history.len(), 1);
    assert_eq!(t.profiles[U].successful_logins, 1);
    let mut again = t.clone();
    again.apply_batch(&Rules::default(), &[e]);
    assert_eq!(again, t);
}

#[test]
fn a_login_arriving_after_its_sessions_revocation_does_not_revive_it() {
    let t = project(&[
        revoke(1, "one", Some("s1"), 5),
        login(2, "s1", 0, None),
        refresh(3, "s1", "rt-s1-0", "rt-s1-1", 6),
    ]);
    let s = &t.sessions["s1"];
    assert_eq!(s.revoked_at, Some(at(5)));
    assert_eq!(s.status_at(at(7)), SessionStatus::Revoked);
    assert_eq!(
        s.login_method.as_deref(),
        Some("password"),
        "the login still describes it"
    );
    assert_eq!(s.first_event_id, Uuid::from_u128(1));
}
