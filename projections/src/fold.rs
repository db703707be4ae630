//! The audit rules, applied deterministically, event by event, in log order.
//!
//! Every decision uses the event's own time (`t`): "active at `t`", "failures in the window
//! before `t`". Nothing reads a clock, and nothing depends on what else happens to be loaded.

use crate::detect::{self, Rule, Signal, EVERYONE};
use crate::rows::{
    Client, LoginAttempt, Review, SecurityEvent, Session, Severity, StatCounts, StatKey,
    TrustedDevice, UserProfile,
};
use crate::state::{Changes, PastLogin, State};
use crate::Rules;
use authtrail_events::data::{
    AccountLock, AdminAction, ClientRef, DeviceRenamed, DeviceTrust, EventData, LoginFailed,
    LoginSucceeded, PasswordChanged, SecurityEventReviewed, SessionActivity, SessionLoggedOut,
    SessionRevoked, TokenRefreshed,
};
use authtrail_events::kind::RevokeScope;
use authtrail_events::Event;
use chrono::{DateTime, Utc};
use serde_json::json;
use std::collections::BTreeSet;
use uuid::Uuid;

/// Namespace of security event ids: `UUIDv5(NAMESPACE, "<event id>/<kind>")`.
pub(crate) const SECURITY_EVENT_NAMESPACE: Uuid =
    Uuid::from_u128(0x6a1f_2d3c_8b4e_4f50_9a61_7c2e_3d4f_5a6b);

/// The security event id the fold gives to what `event` caused under `kind`.
pub fn security_event_id(event: Uuid, kind: &str) -> Uuid {
    Uuid::new_v5(
        &SECURITY_EVENT_NAMESPACE,
        format!("{event}/{kind}").as_bytes(),
    )
}

/// A login for a session already known (its other events came first in the log, or the login
/// was published twice under two ids) describes the session; it does not undo what happened to
/// it: revocation, logout, refreshes, OTP, activity.
fn keep_history(session: &mut Session, prev: &Session) {
    session.first_event_id = prev.first_event_id;
    session.revoked_at = prev.revoked_at;
    session.revoked_reason = prev.revoked_reason.clone();
    session.revoked_by = prev.revoked_by.clone();
    session.logged_out_at = prev.logged_out_at;
    session.ended_at = prev.ended_at;
    session.refresh_count = prev.refresh_count;
    session.rotated_refresh_token_ids = prev.rotated_refresh_token_ids.clone();
    if let Some(current) = &prev.refresh_token_id {
        if let Some(mine) = session.refresh_token_id.take() {
            if &mine != current && !session.rotated_refresh_token_ids.contains(&mine) {
                session.rotated_refresh_token_ids.push(mine);
            }
        }
        session.refresh_token_id = Some(current.clone());
    }
    session.otp_verified |= prev.otp_verified;
    session.last_activity_at = session.last_activity_at.max(prev.last_activity_at);
    session.idle_expires_at = session.idle_expires_at.max(prev.idle_expires_at);
    if prev.suspicious && !session.suspicious {
        session.suspicious = true;
        session.suspicious_reason = prev.suspicious_reason.clone();
    }
}

/// Folds a batch: holds the loaded [`State`], applies events, and collects [`Changes`].
pub struct Fold<'r> {
    rules: &'r Rules,
    pub state: State,
    changes: Changes,
    dirty_sessions: BTreeSet<String>,
    dirty_profiles: BTreeSet<String>,
}

/// What an OTP event says happened to a one-time password.
#[derive(Debug, Clone, Copy)]
enum OtpOutcome {
    Sent,
    Verified,
    Failed,
}

impl OtpOutcome {
    /// The kind of security event it makes (also the kind in its id).
    const fn as_str(self) -> &'static str {
        match self {
            OtpOutcome::Sent => "otp_sent",
            OtpOutcome::Verified => "otp_verified",
            OtpOutcome::Failed => "otp_failed",
        }
    }

    /// How its security event describes it.
    const fn verb(self) -> &'static str {
        match self {
            OtpOutcome::Sent => "OTP sent",
            OtpOutcome::Verified => "OTP verified",
            OtpOutcome::Failed => "OTP verification failed",
        }
    }

    const fn severity(self) -> Severity {
        match self {
            OtpOutcome::Sent | OtpOutcome::Verified => Severity::Info,
            OtpOutcome::Failed => Severity::Warning,
        }
    }
}

/// A successful login as its phases see it: the event, its data, the user, the client and why
/// it is suspicious (judged before the login changed anything).
struct Login<'a> {
    event: &'a Event,
    d: &'a LoginSucceeded,
    user: &'a str,
    ctx: &'a Context<'a>,
    reason: Option<String>,
    /// Whether the login raised a detection signal (`PastLogin::flagged`).
    flagged: bool,
}

/// Where and on what an event happened, as far as it says.
#[derive(Default, Clone, Copy)]
struct Context<'a>(ClientRef<'a>);

/// A successful login and the user's logins before it (30 days): what the per-login rules
/// judge.
#[derive(Clone, Copy)]
struct Judged<'a> {
    event: &'a Event,
    d: &'a LoginSucceeded,
    user: &'a str,
    ctx: &'a Context<'a>,
    past: &'a [PastLogin],
}

impl<'a> Context<'a> {
    fn of(event: &'a Event) -> Self {
        Context(event.data.client().unwrap_or_default())
    }
    fn location(&self) -> Option<String> {
        let g = self.0.geo?;
        match (&g.city, &g.country) {
            (Some(city), Some(country)) => Some(format!("{city}, {country}")),
            (None, Some(country)) => Some(country.clone()),
            (Some(city), None) => Some(city.clone()),
            (None, None) => g.country_code.clone(),
        }
    }
    fn country_code(&self) -> Option<String> {
        self.0.geo.and_then(|g| g.country_code.clone())
    }
    fn country_label(&self) -> Option<String> {
        self.0
            .geo
            .and_then(|g| g.country.clone().or_else(|| g.country_code.clone()))
    }
    fn device_type(&self) -> Option<String> {
        self.0.device.map(|d| d.device_type.as_str().to_owned())
    }
    fn ip(&self) -> Option<String> {
        self.0.ip.map(|ip| ip.to_string())
    }
    fn device_name(&self) -> Option<String> {
        self.0.device_name.map(str::to_owned)
    }
    fn point(&self) -> Option<(f64, f64)> {
        let g = self.0.geo?;
        Some((g.latitude?, g.longitude?))
    }

    /// The row columns of where and on what.
    fn client(&self) -> Client {
        let c = &self.0;
        Client {
            device_id: c.device_id.map(|x| x.as_str().to_owned()),
            device_name: self.device_name(),
            device_type: self.device_type(),
            browser: c.device.and_then(|x| x.browser.clone()),
            os: c.device.and_then(|x| x.os.clone()),
            ip: self.ip(),
            user_agent: c.user_agent.map(str::to_owned),
            country_code: self.country_code(),
            country: c.geo.and_then(|g| g.country.clone()),
            city: c.geo.and_then(|g| g.city.clone()),
            latitude: c.geo.and_then(|g| g.latitude),
            longitude: c.geo.and_then(|g| g.longitude),
        }
    }

    /// A login-history row with what the context knows; the caller sets the outcome.
    fn attempt(&self, event: &Event, subject_key: String) -> LoginAttempt {
        LoginAttempt {
            id: event.id,
            user_id: event.subject.clone(),
            subject_key,
            identifier: None,
            success: false,
            login_method: None,
            failure_reason: None,
            client: self.client(),
            otp_required: false,
            otp_verified: false,
            suspicious: false,
            suspicious_reason: None,
            session_id: None,
            attempted_at: event.time,
        }
    }
}

impl<'r> Fold<'r> {
    pub fn new(rules: &'r Rules, state: State) -> Self {
        Fold {
            rules,
            state,
            changes: Changes::default(),
            dirty_sessions: BTreeSet::new(),
            dirty_profiles: BTreeSet::new(),
        }
    }

    /// The row changes of everything applied so far.
    pub fn finish(mut self) -> (Changes, State) {
        for id in &self.dirty_sessions {
            self.changes
                .sessions
                .insert(id.clone(), self.state.sessions[id].clone());
        }
        for id in &self.dirty_profiles {
            self.changes
                .profiles
                .insert(id.clone(), self.state.profiles[id].clone());
        }
        (self.changes, self.state)
    }

    /// Applies one event (already deduplicated by id).
    pub fn apply(&mut self, event: &Event) {
        match &event.data {
            EventData::LoginSucceeded(d) => self.login_succeeded(event, d),
            EventData::LoginFailed(d) => self.login_failed(event, d),
            EventData::TokenRefreshed(d) => self.token_refreshed(event, d),
            EventData::SessionActivity(d) => self.session_activity(event, d),
            EventData::SessionLoggedOut(d) => self.session_logged_out(event, d),
            EventData::SessionRevoked(d) => self.session_revoked(event, d),
            EventData::OtpSent(d) => self.otp(
                event,
                OtpOutcome::Sent,
                d.session_id.as_ref(),
                &d.channel.to_string(),
                None,
            ),
            EventData::OtpVerified(d) => {
                if let Some(sid) = &d.session_id {
                    if let Some(s) = self.existing_session(sid.as_str(), event) {
                        s.otp_verified = true;
                        s.last_event_id = event.id;
                        self.dirty_sessions.insert(sid.as_str().to_owned());
                    }
                }
                self.otp(
                    event,
                    OtpOutcome::Verified,
                    d.session_id.as_ref(),
                    &d.channel.to_string(),
                    None,
                )
            }
            EventData::OtpFailed(d) => {
                if let Some(user) = &event.subject {
                    let sid = d.session_id.as_ref().map(|s| s.as_str());
                    self.signal(
                        event,
                        Rule::OtpBruteForce,
                        user,
                        Some(user),
                        sid,
                        None,
                        json!({ "channel": d.channel }),
                    );
                }
                self.otp(
                    event,
                    OtpOutcome::Failed,
                    d.session_id.as_ref(),
                    &d.channel.to_string(),
                    d.reason.as_deref(),
                )
            }
            EventData::DeviceTrusted(d) => self.device_trust(event, d, true),
            EventData::DeviceUntrusted(d) => self.device_trust(event, d, false),
            EventData::DeviceRenamed(d) => self.device_renamed(event, d),
            EventData::PasswordChanged(d) => self.password_changed(event, d),
            EventData::AccountLocked(d) => self.account_locked(event, d),
            EventData::AccountUnlocked(d) => self.account_unlocked(event, d),
            EventData::AdminAction(d) => self.admin_action(event, d),
            EventData::SecurityEventReviewed(d) => self.reviewed(event, d),
        }
    }

    // ---- logins -------------------------------------------------------------------------

    fn login_succeeded(&mut self, event: &Event, d: &LoginSucceeded) {
        let user = event
            .subject
            .clone()
            .expect("login.succeeded has a subject");
        let ctx = Context::of(event);
        let reason = self.login_suspicion(event, &user, &ctx);
        // The signals an event raises are pushed while it is folded: the ones after `before`.
        let before = self.changes.signals.len();
        self.login_signals(event, d, &user, &ctx);
        let flagged = self.changes.signals.len() > before;
        self.make_room(event, &user, d.session_id.as_str(), &ctx);
        let login = Login {
            event,
            d,
            user: &user,
            ctx: &ctx,
            reason,
            flagged,
        };
        self.open_session(&login);
        self.record_login(&login);
        self.login_security_events(login);
    }

    /// Why a successful login is suspicious, if it is (the reasons joined by `; `), judged on
    /// the state before it.
    fn login_suspicion(&self, event: &Event, user: &str, ctx: &Context) -> Option<String> {
        let t = event.time;
        // Rule 1: recent failures of this key.
        let failures = self.recent_failures(&event.partition_key(), t);
        let mut reasons = vec![];
        if failures >= self.rules.failed_attempts_threshold {
            reasons.push(format!("Multiple failed login attempts ({failures})"));
        }
        // Rule 2: a country not seen in the user's successful logins of the window (first login
        // ever excepted).
        let had_login = self
            .state
            .profiles
            .get(user)
            .is_some_and(|p| p.first_login_at.is_some());
        let country = ctx.country_code();
        if let (true, Some(cc)) = (had_login, &country) {
            let from = t - self.rules.new_country_window;
            let seen = self.state.logins.get(user).is_some_and(|v| {
                v.iter()
                    .any(|l| l.country_code.as_ref() == Some(cc) && l.at >= from && l.at < t)
            });
            if !seen {
                let label = ctx.country_label().unwrap_or_else(|| cc.clone());
                reasons.push(format!("Login from unusual location: {label}"));
            }
        }
        (!reasons.is_empty()).then(|| reasons.join("; "))
    }

    /// Concurrent-session limit: revokes the user's least recently active sessions (other than
    /// `sid`) so that the new session `sid` fits.
    fn make_room(&mut self, event: &Event, user: &str, sid: &str, ctx: &Context) {
        let mut active = self.active_sessions(user, event.time);
        active.retain(|s| s != sid);
        if active.len() < self.rules.max_sessions {
            return;
        }
        let mut by_activity: Vec<(DateTime<Utc>, String)> = active
            .iter()
            .map(|s| (self.state.sessions[s].last_activity_at, s.clone()))
            .collect();
        by_activity.sort();
        let excess = active.len() + 1 - self.rules.max_sessions;
        for (_, victim) in by_activity.into_iter().take(excess) {
            self.revoke(&victim, event, "concurrent_limit", "system");
            let detail = format!(
                "Session revoked — concurrent session limit ({})",
                self.rules.max_sessions
            );
            self.security_event(
                event,
                &format!("session_revoked/{victim}"),
                "session_revoked",
                Severity::Info,
                detail,
                Some(user),
                ctx,
                json!({ "session_id": victim, "reason": "concurrent_limit" }),
            );
        }
    }

    /// Opens the login's session in the state; a session known from earlier events keeps what
    /// happened to it ([`keep_history`]).
    fn open_session(&mut self, login: &Login<'_>) {
        let (event, d, user, ctx) = (login.event, login.d, login.user, login.ctx);
        let reason = login.reason.clone();
        let t = event.time;
        let sid = d.session_id.as_str().to_owned();
        let trusted = d.device_id.as_ref().is_some_and(|dev| {
            self.state
                .devices
                .get(&(user.to_owned(), dev.as_str().to_owned()))
                .is_some_and(|x| x.trusted)
        });
        let mut metadata = json!({});
        if let Some(enrichment) = &d.enrichment {
            metadata["enrichment"] = serde_json::to_value(enrichment).unwrap_or_default();
        }
        let mut session = Session {
            session_id: sid.clone(),
            user_id: user.to_owned(),
            login_method: Some(d.login_method.to_string()),
            identifier: d.identifier.clone(),
            client: ctx.client(),
            created_at: t,
            last_activity_at: t,
            expires_at: d.expires_at.min(t + self.rules.absolute_timeout),
            absolute_expires_at: t + self.rules.absolute_timeout,
            idle_expires_at: t + self.rules.idle_timeout,
            refresh_count: 0,
            refresh_token_id: d.refresh_token_id.as_ref().map(|x| x.as_str().to_owned()),
            rotated_refresh_token_ids: vec![],
            revoked_at: None,
            revoked_reason: None,
            revoked_by: None,
            logged_out_at: None,
            ended_at: None,
            trusted_device: trusted,
            otp_required: d.otp_required.unwrap_or(false),
            otp_verified: d.otp_verified.unwrap_or(false),
            roles: d
                .roles
                .iter()
                .flatten()
                .map(|r| r.as_str().to_owned())
                .collect(),
            suspicious: reason.is_some(),
            suspicious_reason: reason,
            metadata,
            first_event_id: event.id,
            last_event_id: event.id,
        };
        if let Some(prev) = self.state.sessions.get(&sid) {
            keep_history(&mut session, prev);
        }
        self.state.insert_session(session);
        self.dirty_sessions.insert(sid);
    }

    /// The login's history row, the user's profile and past logins, and the day's statistics.
    fn record_login(&mut self, login: &Login<'_>) {
        let (event, d, user, ctx) = (login.event, login.d, login.user, login.ctx);
        let reason = login.reason.clone();
        let t = event.time;
        let suspicious = reason.is_some();
        self.changes.login_history.push(LoginAttempt {
            identifier: d.identifier.clone(),
            success: true,
            login_method: Some(d.login_method.to_string()),
            otp_required: d.otp_required.unwrap_or(false),
            otp_verified: d.otp_verified.unwrap_or(false),
            suspicious,
            suspicious_reason: reason,
            session_id: Some(d.session_id.as_str().to_owned()),
            ..ctx.attempt(event, event.partition_key())
        });

        let profile = self.profile(user);
        profile.first_login_at = Some(profile.first_login_at.map_or(t, |f| f.min(t)));
        profile.last_login_at = Some(profile.last_login_at.map_or(t, |l| l.max(t)));
        profile.successful_logins += 1;
        let past = PastLogin {
            at: t,
            event_id: event.id,
            country_code: ctx.country_code(),
            device: fingerprint(d, ctx),
            ip: ctx.ip(),
            point: ctx.point(),
            place: ctx.location(),
            flagged: login.flagged,
        };
        self.state
            .logins
            .entry(user.to_owned())
            .or_default()
            .push(past);
        self.count(t, ctx, |c| {
            c.successes += 1;
            c.suspicious += i64::from(suspicious);
        });
    }

    /// The login's security event, and a second one when it is suspicious.
    fn login_security_events(&mut self, login: Login<'_>) {
        let Login {
            event,
            d,
            user,
            ctx,
            reason,
            ..
        } = login;
        let who = d.identifier.clone().unwrap_or_else(|| user.to_owned());
        let sid = d.session_id.as_str();
        let super_admin = d
            .roles
            .iter()
            .flatten()
            .any(|r| r.as_str() == "super_admin");
        let description = if super_admin {
            let otp = if d.otp_verified == Some(true) {
                " (OTP verified)"
            } else {
                ""
            };
            format!("Super-admin login — {who}{otp}")
        } else {
            format!("Login — {who} ({})", d.login_method)
        };
        let severity = if super_admin && d.otp_verified != Some(true) {
            Severity::Warning
        } else {
            Severity::Info
        };
        self.security_event(
            event,
            "login_success",
            "login_success",
            severity,
            description,
            Some(user),
            ctx,
            json!({ "session_id": sid, "login_method": d.login_method }),
        );
        if let Some(reason) = reason {
            let description = match ctx.country_label() {
                Some(c) if reason.contains("unusual location") => {
                    format!("Suspicious login — {who} from {c}")
                }
                _ => format!("Suspicious login — {who}: {reason}"),
            };
            self.security_event(
                event,
                "suspicious_activity",
                "suspicious_activity",
                Severity::Warning,
                description,
                Some(user),
                ctx,
                json!({ "session_id": sid, "reason": reason }),
            );
        }
    }

    fn login_failed(&mut self, event: &Event, d: &LoginFailed) {
        let t = event.time;
        let key = event.partition_key();
        let ctx = Context::of(event);
        let failures = self.recent_failures(&key, t);
        let suspicious = failures >= self.rules.failed_attempts_threshold;
        let reason = suspicious.then(|| format!("Multiple failed login attempts ({failures})"));
        let who = d.identifier.as_str().to_owned();
        self.changes.login_history.push(LoginAttempt {
            identifier: Some(who.clone()),
            login_method: d.login_method.map(|m| m.to_string()),
            failure_reason: Some(d.failure_reason.to_string()),
            suspicious,
            suspicious_reason: reason.clone(),
            ..ctx.attempt(event, key.clone())
        });
        self.failure_signals(event, &key, &ctx);
        self.state.failures.entry(key).or_default().push(t);
        if let Some(user) = &event.subject {
            self.profile(user).failed_logins += 1;
        }
        self.count(t, &ctx, |c| {
            c.failures += 1;
            c.suspicious += i64::from(suspicious);
        });
        let user = event.subject.as_deref();
        let description = format!("Failed login — {who} ({})", d.failure_reason);
        self.security_event(
            event,
            "login_failure",
            "login_failure",
            Severity::Warning,
            description,
            user,
            &ctx,
            json!({ "failure_reason": d.failure_reason, "identifier": who }),
        );
        // Repeated failures are one brute-force alert that grows (detect.rs), not a security
        // event per failure.
    }

    /// Failed attempts of `key` in `[t - window, t)`.
    fn recent_failures(&self, key: &str, t: DateTime<Utc>) -> usize {
        let from = t - self.rules.failed_attempts_window;
        self.state.failures.get(key).map_or(0, |v| {
            v.iter().filter(|at| **at >= from && **at < t).count()
        })
    }

    // ---- sessions -----------------------------------------------------------------------

    /// Ids of the user's sessions active at `t`, in id order.
    fn active_sessions(&self, user: &str, t: DateTime<Utc>) -> Vec<String> {
        self.state
            .user_sessions
            .get(user)
            .into_iter()
            .flatten()
            .filter(|id| self.state.sessions[*id].is_active_at(t))
            .cloned()
            .collect()
    }

    /// The named session; a session first seen through a later event (e.g. its login predates
    /// the log) is created from what that event says.
    fn session_mut(&mut self, sid: &str, event: &Event) -> &mut Session {
        if !self.state.sessions.contains_key(sid) {
            let t = event.time;
            let user = event.subject.clone().unwrap_or_default();
            self.state.insert_session(Session {
                session_id: sid.to_owned(),
                user_id: user,
                login_method: None,
                identifier: None,
                client: Client::default(),
                created_at: t,
                last_activity_at: t,
                expires_at: t + self.rules.absolute_timeout,
                absolute_expires_at: t + self.rules.absolute_timeout,
                idle_expires_at: t + self.rules.idle_timeout,
                refresh_count: 0,
                refresh_token_id: None,
                rotated_refresh_token_ids: vec![],
                revoked_at: None,
                revoked_reason: None,
                revoked_by: None,
                logged_out_at: None,
                ended_at: None,
                trusted_device: false,
                otp_required: false,
                otp_verified: false,
                roles: vec![],
                suspicious: false,
                suspicious_reason: None,
                metadata: json!({ "first_seen": event.event_type().as_str() }),
                first_event_id: event.id,
                last_event_id: event.id,
            });
        }
        self.dirty_sessions.insert(sid.to_owned());
        let s = self.state.sessions.get_mut(sid).expect("just ensured");
        s.last_event_id = event.id;
        s
    }

    /// The named session if the projection knows it (no row is created).
    fn existing_session(&mut self, sid: &str, _event: &Event) -> Option<&mut Session> {
        self.state.sessions.get_mut(sid)
    }

    fn token_refreshed(&mut self, event: &Event, d: &TokenRefreshed) {
        let t = event.time;
        let rules = self.rules.clone();
        let presented = d.previous_refresh_token_id.as_str().to_owned();
        let s = self.session_mut(d.session_id.as_str(), event);
        let reused = s.refresh_token_id.as_deref() != Some(presented.as_str())
            && s.rotated_refresh_token_ids.contains(&presented);
        if reused {
            let user = s.user_id.clone();
            let sid = s.session_id.clone();
            s.suspicious = true;
            s.suspicious_reason = Some("refresh_token_reuse".into());
            self.revoke(&sid, event, "refresh_token_reuse", "system");
            let ctx = Context::of(event);
            self.signal(
                event,
                Rule::RefreshTokenReuse,
                &user,
                None,
                Some(&sid),
                None,
                json!({ "session_id": sid }),
            );
            let description = format!("Refresh token reuse — session {sid} revoked");
            self.security_event(event, "suspicious_activity", "suspicious_activity", Severity::Critical, description, Some(&user), &ctx, json!({ "session_id": sid, "reason": "refresh_token_reuse", "presented_refresh_token_id": presented }));
            return;
        }
        let active = s.is_active_at(t);
        let expected = s.client.user_agent.clone();
        let (user, sid) = (s.user_id.clone(), s.session_id.clone());
        self.hijack_signal(event, &user, &sid, expected, d.user_agent.as_deref());
        let s = self.session_mut(d.session_id.as_str(), event);
        if let Some(old) = s.refresh_token_id.take() {
            if !s.rotated_refresh_token_ids.contains(&old) {
                s.rotated_refresh_token_ids.push(old);
            }
        }
        if s.refresh_token_id.as_deref() != Some(presented.as_str())
            && !s.rotated_refresh_token_ids.contains(&presented)
        {
            s.rotated_refresh_token_ids.push(presented);
        }
        s.refresh_token_id = Some(d.refresh_token_id.as_str().to_owned());
        s.refresh_count += 1;
        if active {
            s.expires_at = d.expires_at.min(s.absolute_expires_at);
            s.last_activity_at = s.last_activity_at.max(t);
            s.idle_expires_at = s.last_activity_at + rules.idle_timeout;
        }
    }

    fn session_activity(&mut self, event: &Event, d: &SessionActivity) {
        let t = event.time;
        let idle = self.rules.idle_timeout;
        let s = self.session_mut(d.session_id.as_str(), event);
        let expected = s.client.user_agent.clone();
        let (user, sid) = (s.user_id.clone(), s.session_id.clone());
        self.hijack_signal(event, &user, &sid, expected, d.user_agent.as_deref());
        let s = self.session_mut(d.session_id.as_str(), event);
        // An ended or expired session is not revived by late activity.
        if s.is_active_at(t) {
            s.last_activity_at = s.last_activity_at.max(t);
            s.idle_expires_at = s.last_activity_at + idle;
        }
    }

    fn session_logged_out(&mut self, event: &Event, d: &SessionLoggedOut) {
        let t = event.time;
        let s = self.session_mut(d.session_id.as_str(), event);
        if s.ended_at.is_none() {
            s.logged_out_at = Some(t);
            s.ended_at = Some(t);
        }
    }

    /// Ends a session as revoked (no-op when already ended).
    fn revoke(&mut self, sid: &str, event: &Event, reason: &str, by: &str) -> bool {
        let s = self.session_mut(sid, event);
        if s.ended_at.is_some() {
            return false;
        }
        s.revoked_at = Some(event.time);
        s.ended_at = Some(event.time);
        s.revoked_reason = Some(reason.to_owned());
        s.revoked_by = Some(by.to_owned());
        true
    }

    fn session_revoked(&mut self, event: &Event, d: &SessionRevoked) {
        let t = event.time;
        let user = event.subject.clone().unwrap_or_default();
        let named = d.session_id.as_ref().map(|s| s.as_str().to_owned());
        let targets: Vec<String> = match d.scope {
            RevokeScope::One => named.iter().cloned().collect(),
            RevokeScope::All => self.active_sessions(&user, t),
            RevokeScope::AllExcept => {
                let mut v = self.active_sessions(&user, t);
                v.retain(|s| Some(s) != named.as_ref());
                v
            }
        };
        let mut revoked = vec![];
        for sid in &targets {
            if self.revoke(sid, event, d.reason.as_str(), d.revoked_by.as_str()) {
                revoked.push(sid.clone());
            }
        }
        let description = match d.scope {
            RevokeScope::One => format!("Session revoked by {}", d.revoked_by.as_str()),
            RevokeScope::All => format!(
                "All sessions revoked by {} ({})",
                d.revoked_by.as_str(),
                revoked.len()
            ),
            RevokeScope::AllExcept => format!(
                "All other sessions revoked by {} ({})",
                d.revoked_by.as_str(),
                revoked.len()
            ),
        };
        self.security_event(event, "session_revoked", "session_revoked", Severity::Info, description, Some(&user), &Context::default(), json!({ "scope": d.scope, "reason": d.reason, "revoked_by": d.revoked_by, "sessions": revoked }));
    }

    // ---- other facts --------------------------------------------------------------------

    fn otp(
        &mut self,
        event: &Event,
        outcome: OtpOutcome,
        sid: Option<&authtrail_events::data::OpaqueId>,
        channel: &str,
        reason: Option<&str>,
    ) {
        let verb = outcome.verb();
        let description = match reason {
            Some(r) => format!("{verb} ({channel}): {r}"),
            None => format!("{verb} ({channel})"),
        };
        let user = event.subject.clone();
        self.security_event(
            event,
            outcome.as_str(),
            outcome.as_str(),
            outcome.severity(),
            description,
            user.as_deref(),
            &Context::default(),
            json!({ "channel": channel, "session_id": sid.map(|s| s.as_str()) }),
        );
    }

    fn device_trust(&mut self, event: &Event, d: &DeviceTrust, trusted: bool) {
        let t = event.time;
        let user = event.subject.clone().unwrap_or_default();
        let device = d.device_id.as_str().to_owned();
        let entry = self
            .state
            .devices
            .entry((user.clone(), device.clone()))
            .or_insert_with(|| TrustedDevice::first_seen(&user, &device, false, t));
        entry.trusted = trusted;
        if d.device_name.is_some() {
            entry.device_name = d.device_name.clone();
        }
        if trusted {
            entry.trusted_at = Some(t);
        } else {
            entry.untrusted_at = Some(t);
        }
        entry.updated_at = t;
        let row = entry.clone();
        self.changes
            .devices
            .insert((user.clone(), device.clone()), row);
        let mut session_name = None;
        for sid in self.active_sessions(&user, t) {
            if self.state.sessions[&sid].client.device_id.as_deref() == Some(device.as_str()) {
                let s = self.session_mut(&sid, event);
                s.trusted_device = trusted;
                session_name = session_name.or_else(|| s.client.device_name.clone());
            }
        }
        // Named by the event, else as one of its active sessions names it, else by its id.
        let name = d
            .device_name
            .clone()
            .or(session_name)
            .unwrap_or_else(|| device.clone());
        let (kind, description) = if trusted {
            ("device_trusted", format!("New device trusted — {name}"))
        } else {
            ("device_revoked", format!("Device trust revoked — {name}"))
        };
        let ctx = Context(ClientRef {
            device_name: Some(&name),
            ..ClientRef::default()
        });
        self.security_event(
            event,
            kind,
            kind,
            Severity::Info,
            description,
            Some(&user),
            &ctx,
            json!({ "device_id": device }),
        );
    }

    /// The user's name for a device: kept on the device's row and on its sessions active at `t`
    /// (ended sessions keep the name they had). A device first seen through its rename starts
    /// with the trust its active sessions have (the login's flag, or a later trust event), so
    /// that naming a device never changes whether it is trusted.
    fn device_renamed(&mut self, event: &Event, d: &DeviceRenamed) {
        let t = event.time;
        let user = event.subject.clone().unwrap_or_default();
        let device = d.device_id.as_str().to_owned();
        let on_device: Vec<String> = self
            .active_sessions(&user, t)
            .into_iter()
            .filter(|sid| {
                self.state.sessions[sid].client.device_id.as_deref() == Some(device.as_str())
            })
            .collect();
        let trusted_now = on_device
            .iter()
            .any(|sid| self.state.sessions[sid].trusted_device);
        let entry = self
            .state
            .devices
            .entry((user.clone(), device.clone()))
            .or_insert_with(|| TrustedDevice::first_seen(&user, &device, trusted_now, t));
        entry.device_name = Some(d.device_name.as_str().to_owned());
        entry.updated_at = t;
        let row = entry.clone();
        self.changes.devices.insert((user, device), row);
        for sid in on_device {
            self.session_mut(&sid, event).client.device_name =
                Some(d.device_name.as_str().to_owned());
        }
    }

    fn password_changed(&mut self, event: &Event, d: &PasswordChanged) {
        let user = event.subject.clone().unwrap_or_default();
        self.profile(&user).password_changed_at = Some(event.time);
        self.signal(
            event,
            Rule::PasswordChangeStorm,
            EVERYONE,
            Some(&user),
            None,
            None,
            json!({ "changed_by": d.changed_by }),
        );
        let by_other = d.changed_by.as_deref().is_some_and(|b| b != user);
        let description = match &d.changed_by {
            Some(by) if by_other => format!("Password changed by {by}"),
            _ => "Password changed".to_owned(),
        };
        let severity = if by_other {
            Severity::Warning
        } else {
            Severity::Info
        };
        self.security_event(
            event,
            "password_changed",
            "password_changed",
            severity,
            description,
            Some(&user),
            &Context::default(),
            json!({ "changed_by": d.changed_by }),
        );
    }

    fn account_locked(&mut self, event: &Event, d: &AccountLock) {
        let t = event.time;
        let user = event.subject.clone().unwrap_or_default();
        let p = self.profile(&user);
        p.locked = true;
        p.locked_reason = Some(d.reason.as_str().to_owned());
        p.locked_until = d.until;
        let by = d.actor.clone().unwrap_or_else(|| "system".into());
        self.signal(
            event,
            Rule::AccountLockStorm,
            EVERYONE,
            Some(&user),
            None,
            None,
            json!({ "reason": d.reason }),
        );
        let mut revoked = vec![];
        for sid in self.active_sessions(&user, t) {
            if self.revoke(&sid, event, "account_locked", &by) {
                revoked.push(sid);
            }
        }
        let description = format!("Account locked — {}", d.reason.as_str());
        self.security_event(event, "account_locked", "account_locked", Severity::Warning, description, Some(&user), &Context::default(), json!({ "reason": d.reason, "until": d.until, "actor": d.actor, "sessions_revoked": revoked }));
    }

    fn account_unlocked(&mut self, event: &Event, d: &AccountLock) {
        let user = event.subject.clone().unwrap_or_default();
        let p = self.profile(&user);
        p.locked = false;
        p.locked_reason = None;
        p.locked_until = None;
        let description = format!("Account unlocked — {}", d.reason.as_str());
        self.security_event(
            event,
            "account_unlocked",
            "account_unlocked",
            Severity::Info,
            description,
            Some(&user),
            &Context::default(),
            json!({ "reason": d.reason, "actor": d.actor }),
        );
    }

    fn admin_action(&mut self, event: &Event, d: &AdminAction) {
        let target = d.target_user.clone().or_else(|| event.subject.clone());
        let description = match &d.target_user {
            Some(u) => format!(
                "Admin action — {} by {} on {u}",
                d.action.as_str(),
                d.actor.as_str()
            ),
            None => format!(
                "Admin action — {} by {}",
                d.action.as_str(),
                d.actor.as_str()
            ),
        };
        self.security_event(event, "admin_action", "admin_action", Severity::Info, description, target.as_deref(), &Context::default(), json!({ "action": d.action, "actor": d.actor, "target_user": d.target_user, "details": d.details }));
    }

    fn reviewed(&mut self, event: &Event, d: &SecurityEventReviewed) {
        let review = Review {
            security_event_id: d.security_event_id,
            reviewer: d.reviewer.as_str().to_owned(),
            reviewed_at: event.time,
            review_event_id: event.id,
        };
        // The first review in the log stands (`Review`): a later one changes nothing.
        self.changes
            .reviews
            .entry(d.security_event_id)
            .or_insert(review);
    }

    // ---- detection signals (see `crate::detect`) -----------------------------------------

    /// Records a signal for `rule` about `subject` when the rule is on. `key` is what the
    /// rule's distinct count counts (the user when not given).
    #[allow(clippy::too_many_arguments)]
    fn signal(
        &mut self,
        event: &Event,
        rule: Rule,
        subject: &str,
        key: Option<&str>,
        sid: Option<&str>,
        severity: Option<Severity>,
        detail: serde_json::Value,
    ) {
        let Some(settings) = self.rules.detection.on(rule) else {
            return;
        };
        let user = event.subject.clone().filter(|u| !u.is_empty());
        self.changes.signals.push(Signal {
            rule: rule.as_str().to_owned(),
            subject: subject.to_owned(),
            at: event.time,
            event_id: event.id,
            key: key.map(str::to_owned).or_else(|| user.clone()),
            user_id: user,
            ip: event
                .data
                .client()
                .and_then(|c| c.ip)
                .map(|ip| ip.to_string()),
            session_id: sid.map(str::to_owned),
            severity: severity.unwrap_or(settings.severity),
            detail,
        });
    }

    /// A failed login counts towards brute force on its account, spraying from its network,
    /// and credential stuffing when its address is not one the account signed in from.
    fn failure_signals(&mut self, event: &Event, key: &str, ctx: &Context) {
        let reason = match &event.data {
            EventData::LoginFailed(d) => d.failure_reason.to_string(),
            _ => String::new(),
        };
        let detail = json!({ "identifier_key": key, "failure_reason": reason });
        self.signal(
            event,
            Rule::BruteForce,
            key,
            Some(key),
            None,
            None,
            detail.clone(),
        );
        let Some(ip) = ctx.0.ip else { return };
        self.signal(
            event,
            Rule::PasswordSpraying,
            &detect::network(ip),
            Some(key),
            None,
            None,
            detail.clone(),
        );
        let ip = ip.to_string();
        let window = self.rules.new_country_window;
        let known = event
            .subject
            .as_ref()
            .and_then(|u| self.state.logins.get(u))
            .is_some_and(|v| {
                v.iter().any(|l| {
                    l.ip.as_deref() == Some(ip.as_str())
                        && l.at < event.time
                        && l.at >= event.time - window
                })
            });
        if !known {
            self.signal(
                event,
                Rule::CredentialStuffing,
                EVERYONE,
                Some(key),
                None,
                None,
                detail,
            );
        }
    }

    /// A successful login judged against the user's history (before it): new device, new
    /// country, impossible travel, unusual hour, a risky privileged login, and a success from
    /// an unknown address and device (a likely compromise inside a stuffing campaign).
    fn login_signals(&mut self, event: &Event, d: &LoginSucceeded, user: &str, ctx: &Context) {
        let t = event.time;
        let from = t - self.rules.new_country_window;
        let past: Vec<PastLogin> = self
            .state
            .logins
            .get(user)
            .into_iter()
            .flatten()
            .filter(|l| l.at >= from && l.at < t)
            .cloned()
            .collect();
        let had_login = self
            .state
            .profiles
            .get(user)
            .is_some_and(|p| p.first_login_at.is_some());
        let new_country = had_login
            && ctx
                .country_code()
                .is_some_and(|cc| !past.iter().any(|l| l.country_code.as_ref() == Some(&cc)));
        let login = Judged {
            event,
            d,
            user,
            ctx,
            past: &past,
        };
        self.novelty_signals(&login, had_login, new_country);
        self.travel_signal(&login);
        let roles: Vec<&str> = d.roles.iter().flatten().map(|r| r.as_str()).collect();
        let privileged = roles.iter().any(|r| *r == "admin" || *r == "super_admin");
        self.hour_signal(&login, privileged);
        if privileged {
            let mut reasons = vec![];
            if d.otp_verified != Some(true) {
                reasons.push("without OTP");
            }
            if new_country {
                reasons.push("from a new country");
            }
            if !reasons.is_empty() {
                let role = if roles.contains(&"super_admin") {
                    "super_admin"
                } else {
                    "admin"
                };
                let sid = d.session_id.as_str();
                let detail =
                    json!({ "role": role, "reason": reasons.join(" and "), "session_id": sid });
                let rule = Rule::PrivilegedLogin;
                self.signal(event, rule, user, None, Some(sid), None, detail);
            }
        }
    }

    /// New device (a warning when the country is new too), new country, and a success from an
    /// unknown device and address (a likely compromise when it falls in a stuffing campaign).
    fn novelty_signals(&mut self, login: &Judged, had_login: bool, new_country: bool) {
        let Judged {
            event,
            d,
            user,
            ctx,
            past,
        } = *login;
        let sid = d.session_id.as_str();
        let trusted = d.device_id.as_ref().is_some_and(|dev| {
            self.state
                .devices
                .get(&(user.to_owned(), dev.as_str().to_owned()))
                .is_some_and(|x| x.trusted)
        });
        let new_device = had_login
            && !trusted
            && fingerprint(d, ctx)
                .is_some_and(|dv| !past.iter().any(|l| l.device.as_ref() == Some(&dv)));
        let new_ip = ctx
            .ip()
            .is_some_and(|ip| !past.iter().any(|l| l.ip.as_ref() == Some(&ip)));
        let label = ctx.country_label().or(ctx.country_code());
        if new_device {
            let device_label = ctx
                .device_name()
                .or_else(|| ctx.0.device.and_then(|x| x.browser.clone()))
                .or_else(|| ctx.0.user_agent.map(str::to_owned))
                .unwrap_or_else(|| "unknown".into());
            let (severity, detail) = if new_country {
                (
                    Some(Severity::Warning),
                    json!({ "device": device_label, "country": label, "session_id": sid }),
                )
            } else {
                (None, json!({ "device": device_label, "session_id": sid }))
            };
            self.signal(
                event,
                Rule::NewDevice,
                user,
                None,
                Some(sid),
                severity,
                detail,
            );
        } else if new_country {
            let detail = json!({ "country": label, "session_id": sid });
            self.signal(event, Rule::NewCountry, user, None, Some(sid), None, detail);
        }
        if had_login && new_device && new_ip {
            let detail = json!({ "compromise": true, "session_id": sid });
            let rule = Rule::CredentialStuffing;
            self.signal(event, rule, EVERYONE, Some(user), Some(sid), None, detail);
        }
    }

    /// Impossible travel: from the latest geo-located login before this one, faster than
    /// `travel_speed_kmh` once each end's location accuracy is allowed for.
    fn travel_signal(&mut self, login: &Judged) {
        let Judged {
            event,
            d,
            user,
            ctx,
            past,
        } = *login;
        let det = &self.rules.detection;
        let Some(here) = ctx.point() else { return };
        let Some(prev) = past
            .iter()
            .filter(|l| l.point.is_some())
            .max_by_key(|l| (l.at, l.event_id))
        else {
            return;
        };
        let there = prev.point.expect("filtered");
        let km = detect::distance_km(there, here);
        let minutes = (event.time - prev.at).num_seconds().max(60) as f64 / 60.0;
        let effective = (km - 2.0 * det.location_accuracy_km).max(0.0);
        let kmh = effective / (minutes / 60.0);
        if kmh > det.travel_speed_kmh {
            let sid = d.session_id.as_str();
            let detail = json!({
                "from": prev.place, "to": ctx.location(), "km": km.round() as i64,
                "previous_event": prev.event_id,
                "minutes": minutes.round() as i64, "kmh": kmh.round() as i64, "session_id": sid,
            });
            let rule = Rule::ImpossibleTravel;
            self.signal(event, rule, user, None, Some(sid), None, detail);
        }
    }

    /// Unusual hour: once the history holds `hour_profile_min_logins` logins, an hour of day
    /// is usual when at least two unflagged ones fall within two hours of it (one stray login
    /// does not make a night usual, nor do logins that raised signals, such as an earlier
    /// intruder's). A warning for privileged roles.
    fn hour_signal(&mut self, login: &Judged, privileged: bool) {
        let Judged {
            event,
            d,
            user,
            past,
            ..
        } = *login;
        use chrono::Timelike;
        if past.len() < self.rules.detection.hour_profile_min_logins {
            return;
        }
        let h = event.time.hour() as i64;
        let near = |l: &&PastLogin| {
            let d = (l.at.hour() as i64 - h).rem_euclid(24);
            d <= 2 || d >= 22
        };
        if past.iter().filter(|l| !l.flagged).filter(near).count() >= 2 {
            return;
        }
        let sid = d.session_id.as_str();
        let severity = privileged.then_some(Severity::Warning);
        let detail =
            json!({ "hour": format!("{h:02}"), "profile_logins": past.len(), "session_id": sid });
        self.signal(
            event,
            Rule::UnusualHour,
            user,
            None,
            Some(sid),
            severity,
            detail,
        );
    }

    /// A refresh or activity from another user agent than its session's.
    fn hijack_signal(
        &mut self,
        event: &Event,
        user: &str,
        sid: &str,
        expected: Option<String>,
        seen: Option<&str>,
    ) {
        if let (Some(expected), Some(seen)) = (expected, seen) {
            if expected != seen {
                let detail = json!({ "session_id": sid, "expected": expected, "seen": seen });
                self.signal(
                    event,
                    Rule::SessionHijack,
                    user,
                    None,
                    Some(sid),
                    None,
                    detail,
                );
            }
        }
    }

    // ---- helpers ------------------------------------------------------------------------

    fn profile(&mut self, user: &str) -> &mut UserProfile {
        self.dirty_profiles.insert(user.to_owned());
        self.state
            .profiles
            .entry(user.to_owned())
            .or_insert_with(|| UserProfile::new(user))
    }

    fn count(&mut self, t: DateTime<Utc>, ctx: &Context, f: impl FnOnce(&mut StatCounts)) {
        let key = StatKey {
            day: t.date_naive(),
            country_code: ctx.country_code().unwrap_or_default(),
            device_type: ctx.device_type().unwrap_or_default(),
        };
        f(self.changes.stats.entry(key).or_default());
    }

    #[allow(clippy::too_many_arguments)]
    fn security_event(
        &mut self,
        event: &Event,
        id_kind: &str,
        event_type: &str,
        severity: Severity,
        description: String,
        user: Option<&str>,
        ctx: &Context,
        mut metadata: serde_json::Value,
    ) {
        // Who appended the event it was derived from (the intake's stamp), beside its facts.
        if let (Some(publisher), Some(m)) = (&event.publisher, metadata.as_object_mut()) {
            m.insert("publisher".to_owned(), publisher.as_str().into());
        }
        self.changes.security_events.push(SecurityEvent {
            id: security_event_id(event.id, id_kind),
            user_id: user.filter(|u| !u.is_empty()).map(str::to_owned),
            event_type: event_type.to_owned(),
            severity,
            description,
            ip: ctx.ip(),
            user_agent: ctx.0.user_agent.map(str::to_owned),
            device_name: ctx.device_name(),
            location: ctx.location(),
            metadata,
            source_event_id: event.id,
            occurred_at: event.time,
        });
    }
}

/// What "the same device" means for a login: its device id, else its user agent.
fn fingerprint(d: &LoginSucceeded, ctx: &Context) -> Option<String> {
    d.device_id
        .as_ref()
        .map(|x| x.as_str().to_owned())
        .or_else(|| ctx.0.user_agent.map(str::to_owned))
}
