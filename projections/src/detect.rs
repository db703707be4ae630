//! Detection: the rules, their signals, and how signals become alerts.
//!
//! Detection has two stages, so that every result depends only on the log:
//!
//! 1. **Signals.** The fold ([`crate::Fold`]) judges each event against the state of its user
//!    (one partition, log order) and emits [`Signal`]s: "this failed login counts towards brute
//!    force on this account, towards password spraying from this network, towards credential
//!    stuffing", "this login came from a device not seen in 30 days", "this refresh came from
//!    another user agent than its session's". A signal names its rule and its *subject*: an
//!    account, a network (`/24` or `/64`) or the whole deployment (`*`).
//! 2. **Alerts.** A rule × subject's signals are cut into *episodes* wherever two consecutive
//!    signals (by time, then event id) are further apart than the rule's window; an episode that
//!    reaches the rule's thresholds is one [`Alert`], whose count, first and last seen and
//!    evidence grow as signals arrive ([`episodes`]). An episode is a function of the *set* of
//!    signals, so the alert does not depend on the order in which partitions delivered them or
//!    on batch boundaries: the sink recomputes the episodes a batch's signals touch from all
//!    signals stored for their subjects (under a lock per cross-partition subject), and the
//!    in-memory model computes the same from its table.
//!
//! Adding a signal can only grow an episode or join two, never split one: an alert, once raised,
//! stays raised. Its id comes from the rule, the subject and the episode's first signal, so it
//! is stable while an episode grows forward in time (a late signal *before* the first one gives
//! the episode a new first signal, and the alert a new id).

use crate::rows::Severity;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use uuid::Uuid;

/// Namespace of alert ids: `UUIDv5(NAMESPACE, "<rule>/<subject>/<first signal's event id>")`.
const ALERT_NAMESPACE: Uuid = Uuid::from_u128(0x0b3e_91c4_27d5_4a86_b1f0_5c9d_8e2a_7f31);

/// The subject of rules that look at the whole deployment (credential stuffing, storms).
pub const EVERYONE: &str = "*";

/// A detection rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    BruteForce,
    PasswordSpraying,
    CredentialStuffing,
    ImpossibleTravel,
    NewDevice,
    NewCountry,
    UnusualHour,
    OtpBruteForce,
    SessionHijack,
    PrivilegedLogin,
    RefreshTokenReuse,
    AccountLockStorm,
    PasswordChangeStorm,
}

impl Rule {
    pub const ALL: [Rule; 13] = [
        Rule::BruteForce,
        Rule::PasswordSpraying,
        Rule::CredentialStuffing,
        Rule::ImpossibleTravel,
        Rule::NewDevice,
        Rule::NewCountry,
        Rule::UnusualHour,
        Rule::OtpBruteForce,
        Rule::SessionHijack,
        Rule::PrivilegedLogin,
        Rule::RefreshTokenReuse,
        Rule::AccountLockStorm,
        Rule::PasswordChangeStorm,
    ];

    /// The stored (and configured) name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Rule::BruteForce => "brute_force",
            Rule::PasswordSpraying => "password_spraying",
            Rule::CredentialStuffing => "credential_stuffing",
            Rule::ImpossibleTravel => "impossible_travel",
            Rule::NewDevice => "new_device",
            Rule::NewCountry => "new_country",
            Rule::UnusualHour => "unusual_hour",
            Rule::OtpBruteForce => "otp_brute_force",
            Rule::SessionHijack => "session_hijack",
            Rule::PrivilegedLogin => "privileged_login",
            Rule::RefreshTokenReuse => "refresh_token_reuse",
            Rule::AccountLockStorm => "account_lock_storm",
            Rule::PasswordChangeStorm => "password_change_storm",
        }
    }

    pub fn parse(s: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// How an alert of this rule is titled.
    pub const fn title(self) -> &'static str {
        match self {
            Rule::BruteForce => "Brute force on one account",
            Rule::PasswordSpraying => "Password spraying",
            Rule::CredentialStuffing => "Credential stuffing",
            Rule::ImpossibleTravel => "Impossible travel",
            Rule::NewDevice => "Sign-in from a new device",
            Rule::NewCountry => "Sign-in from a new country",
            Rule::UnusualHour => "Sign-in at an unusual hour",
            Rule::OtpBruteForce => "One-time code brute force",
            Rule::SessionHijack => "Session used from another device",
            Rule::PrivilegedLogin => "Risky privileged sign-in",
            Rule::RefreshTokenReuse => "Refresh token reused",
            Rule::AccountLockStorm => "Account lock storm",
            Rule::PasswordChangeStorm => "Password change storm",
        }
    }

    /// Whether the rule's subjects span partitions (networks, everyone): their alerts are
    /// recomputed under a lock, since several workers may add signals at once.
    pub const fn shared_subject(self) -> bool {
        matches!(
            self,
            Rule::PasswordSpraying
                | Rule::CredentialStuffing
                | Rule::AccountLockStorm
                | Rule::PasswordChangeStorm
        )
    }

    /// Whether the alert is a notice for the account's owner too (shown on their page).
    pub const fn notifies_user(self) -> bool {
        matches!(
            self,
            Rule::NewDevice | Rule::NewCountry | Rule::ImpossibleTravel | Rule::SessionHijack
        )
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One rule's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RuleSettings {
    pub enabled: bool,
    /// The alert's severity (a signal may raise it: a new device in a new country is a
    /// warning, a new device alone a notice).
    pub severity: Severity,
    /// Signals further apart than this start a new episode (a new alert).
    pub window: TimeDelta,
    /// An episode is an alert once it holds this many signals ...
    pub threshold: usize,
    /// ... for at least this many distinct keys (accounts) ...
    pub distinct: usize,
    /// ... from at least this many distinct IP addresses.
    pub distinct_ips: usize,
}

impl RuleSettings {
    const fn new(severity: Severity, minutes: i64, threshold: usize) -> Self {
        RuleSettings {
            enabled: true,
            severity,
            window: TimeDelta::minutes(minutes),
            threshold,
            distinct: 0,
            distinct_ips: 0,
        }
    }
}

/// Every rule's settings, and the parameters of the per-login judgements.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub rules: BTreeMap<Rule, RuleSettings>,
    /// Consecutive geo-located logins faster apart than this (km/h) are impossible travel ...
    pub travel_speed_kmh: f64,
    /// ... after taking this much off each location (city-level GeoIP is this far off).
    pub location_accuracy_km: f64,
    /// The hour-of-day profile judges logins once it holds this many (in the history window).
    pub hour_profile_min_logins: usize,
    /// An alert keeps at most this many evidence ids (its count goes on).
    pub evidence_max: usize,
}

impl Default for Detection {
    fn default() -> Self {
        use Severity::*;
        let mut rules = BTreeMap::new();
        let mut put = |r: Rule, s: RuleSettings| {
            rules.insert(r, s);
        };
        put(Rule::BruteForce, RuleSettings::new(Warning, 15, 5));
        put(
            Rule::PasswordSpraying,
            RuleSettings {
                distinct: 10,
                ..RuleSettings::new(Warning, 30, 10)
            },
        );
        put(
            Rule::CredentialStuffing,
            RuleSettings {
                distinct: 10,
                distinct_ips: 10,
                ..RuleSettings::new(Warning, 2, 10)
            },
        );
        put(Rule::ImpossibleTravel, RuleSettings::new(Warning, 60, 1));
        put(Rule::NewDevice, RuleSettings::new(Info, 60, 1));
        put(Rule::NewCountry, RuleSettings::new(Info, 60, 1));
        put(Rule::UnusualHour, RuleSettings::new(Info, 60, 1));
        put(Rule::OtpBruteForce, RuleSettings::new(Warning, 15, 5));
        put(Rule::SessionHijack, RuleSettings::new(Critical, 60, 1));
        put(Rule::PrivilegedLogin, RuleSettings::new(Critical, 60, 1));
        put(Rule::RefreshTokenReuse, RuleSettings::new(Critical, 60, 1));
        put(
            Rule::AccountLockStorm,
            RuleSettings {
                distinct: 5,
                ..RuleSettings::new(Warning, 10, 5)
            },
        );
        put(
            Rule::PasswordChangeStorm,
            RuleSettings {
                distinct: 5,
                ..RuleSettings::new(Warning, 10, 5)
            },
        );
        Detection {
            rules,
            travel_speed_kmh: 1000.0,
            location_accuracy_km: 100.0,
            hour_profile_min_logins: 50,
            evidence_max: 1000,
        }
    }
}

impl Detection {
    /// The rule's settings when it is on.
    pub fn on(&self, rule: Rule) -> Option<&RuleSettings> {
        self.rules.get(&rule).filter(|s| s.enabled)
    }

    /// The longest window of any rule: how far apart two signals of one episode can be.
    pub fn max_window(&self) -> TimeDelta {
        self.rules
            .values()
            .map(|s| s.window)
            .max()
            .unwrap_or(TimeDelta::zero())
    }
}

/// One piece of evidence for a rule about a subject: what the fold saw in one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signal {
    pub rule: String,
    pub subject: String,
    pub at: DateTime<Utc>,
    /// The event it was seen in.
    pub event_id: Uuid,
    /// What distinct counts count (the account, for rules about networks or everyone).
    pub key: Option<String>,
    pub user_id: Option<String>,
    pub ip: Option<String>,
    pub session_id: Option<String>,
    pub severity: Severity,
    /// What the judgement found (speeds, countries, user agents; `compromise` for a success
    /// inside a credential-stuffing campaign).
    pub detail: Value,
}

impl Signal {
    /// The ordering of signals within a subject: time, then event id.
    fn order(&self) -> (DateTime<Utc>, Uuid) {
        (self.at, self.event_id)
    }
}

/// An alert: one rule × subject × episode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "api", derive(utoipa::ToSchema))]
pub struct Alert {
    pub id: Uuid,
    pub rule: String,
    pub severity: Severity,
    pub subject: String,
    /// The account, when the alert is about one (the only one in its evidence).
    pub user_id: Option<String>,
    /// The address, when the evidence came from one.
    pub ip: Option<String>,
    /// The session, when the evidence names one.
    pub session_id: Option<String>,
    pub title: String,
    pub description: String,
    /// Signals in the episode.
    pub count: i64,
    /// Distinct keys (accounts) and addresses in it.
    pub accounts: i64,
    pub ips: i64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// Ids of the events behind it, in time order (the first [`Detection::evidence_max`]).
    pub evidence: Vec<Uuid>,
    pub metadata: Value,
}

/// The id of the alert whose episode starts with `first` (see the module docs).
pub fn alert_id(rule: &str, subject: &str, first: Uuid) -> Uuid {
    Uuid::new_v5(
        &ALERT_NAMESPACE,
        format!("{rule}/{subject}/{first}").as_bytes(),
    )
}

/// The network a rule about addresses counts by: the `/24` of an IPv4 address, the `/64` of
/// an IPv6 one.
pub fn network(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.0/24", o[0], o[1], o[2])
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// Great-circle distance in km (haversine, mean Earth radius).
pub fn distance_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (la1, lo1) = (a.0.to_radians(), a.1.to_radians());
    let (la2, lo2) = (b.0.to_radians(), b.1.to_radians());
    let h = ((la2 - la1) / 2.0).sin().powi(2)
        + la1.cos() * la2.cos() * ((lo2 - lo1) / 2.0).sin().powi(2);
    2.0 * 6371.0 * h.sqrt().min(1.0).asin()
}

/// The day (UTC) an episode lies in: episodes end at midnight UTC too, so that a subject under
/// attack without pause (a busy network, the whole deployment) makes one alert a day, and
/// recomputing an episode never reaches further back than its day.
pub fn episode_day(t: DateTime<Utc>) -> i64 {
    t.timestamp().div_euclid(86_400)
}

/// The first instant of `t`'s episode day, and the last.
pub fn episode_day_bounds(t: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = DateTime::<Utc>::from_timestamp(episode_day(t) * 86_400, 0).expect("in range");
    (
        start,
        start + TimeDelta::days(1) - TimeDelta::nanoseconds(1),
    )
}

/// The episodes of one rule × subject among `signals` (any order; all of the subject's
/// signals within reach), as alerts where they reach the rule's thresholds. Consecutive
/// signals further apart than the window, or on two days ([`episode_day`]), are two episodes.
pub fn episodes(
    rule: Rule,
    settings: &RuleSettings,
    max_evidence: usize,
    signals: &[Signal],
) -> Vec<Alert> {
    let mut sorted: Vec<&Signal> = signals.iter().collect();
    sorted.sort_by_key(|s| s.order());
    sorted.dedup_by_key(|s| s.order());
    let mut out = vec![];
    let mut start = 0;
    for i in 1..=sorted.len() {
        let cut = i == sorted.len()
            || sorted[i].at - sorted[i - 1].at > settings.window
            || episode_day(sorted[i].at) != episode_day(sorted[i - 1].at);
        if cut {
            if let Some(a) = alert_of(rule, settings, max_evidence, &sorted[start..i]) {
                out.push(a);
            }
            start = i;
        }
    }
    out
}

/// The alert of one episode, if it reaches the thresholds.
fn alert_of(
    rule: Rule,
    settings: &RuleSettings,
    max_evidence: usize,
    ep: &[&Signal],
) -> Option<Alert> {
    let first = ep.first()?;
    let last = ep.last()?;
    // A success inside a campaign is not an attempt of it: it marks a likely compromise.
    let compromise = |s: &&&Signal| s.detail.get("compromise") == Some(&Value::Bool(true));
    let attempts: Vec<&&Signal> = ep.iter().filter(|s| !compromise(s)).collect();
    let accounts: BTreeSet<&str> = attempts.iter().filter_map(|s| s.key.as_deref()).collect();
    let ips: BTreeSet<&str> = attempts.iter().filter_map(|s| s.ip.as_deref()).collect();
    if attempts.len() < settings.threshold
        || accounts.len() < settings.distinct
        || ips.len() < settings.distinct_ips
    {
        return None;
    }
    let users: BTreeSet<&str> = ep.iter().filter_map(|s| s.user_id.as_deref()).collect();
    let sessions: BTreeSet<&str> = ep.iter().filter_map(|s| s.session_id.as_deref()).collect();
    let compromised: Vec<Value> = ep
        .iter()
        .filter(compromise)
        .map(|s| json!({ "user_id": s.user_id, "session_id": s.session_id, "event_id": s.event_id, "ip": s.ip }))
        .collect();
    let mut severity = ep
        .iter()
        .map(|s| s.severity)
        .fold(settings.severity, max_severity);
    if !compromised.is_empty() {
        severity = Severity::Critical;
    }
    let only = |set: &BTreeSet<&str>| {
        (set.len() == 1)
            .then(|| set.iter().next().map(|s| s.to_string()))
            .flatten()
    };
    let count = attempts.len() as i64;
    let description = describe(
        rule,
        &first.subject,
        count,
        accounts.len(),
        ips.len(),
        last,
        compromised.len(),
    );
    let mut metadata = json!({
        "latest": last.detail,
        "accounts": accounts.iter().take(50).collect::<Vec<_>>(),
        "addresses": ips.iter().take(50).collect::<Vec<_>>(),
    });
    if !compromised.is_empty() {
        metadata["compromised"] = Value::Array(compromised);
    }
    if sessions.len() > 1 {
        metadata["sessions"] = json!(sessions.iter().take(50).collect::<Vec<_>>());
    }
    Some(Alert {
        id: alert_id(rule.as_str(), &first.subject, first.event_id),
        rule: rule.as_str().to_owned(),
        severity,
        subject: first.subject.clone(),
        user_id: only(&users),
        ip: only(
            &ips.iter()
                .copied()
                .chain(ep.iter().filter_map(|s| s.ip.as_deref()))
                .collect(),
        ),
        session_id: only(&sessions),
        title: rule.title().to_owned(),
        description,
        count,
        accounts: accounts.len() as i64,
        ips: ips.len() as i64,
        first_seen: first.at,
        last_seen: last.at,
        evidence: evidence(ep, max_evidence),
        metadata,
    })
}

/// The events behind an episode: each signal's event, preceded by the earlier event it was
/// judged against when there is one (`detail.previous_event`: the other end of a journey).
fn evidence(ep: &[&Signal], max: usize) -> Vec<Uuid> {
    let mut seen = BTreeSet::new();
    ep.iter()
        .flat_map(|s| {
            let previous = s
                .detail
                .get("previous_event")
                .and_then(Value::as_str)
                .and_then(|v| Uuid::parse_str(v).ok());
            previous.into_iter().chain([s.event_id])
        })
        .filter(|id| seen.insert(*id))
        .take(max)
        .collect()
}

fn max_severity(a: Severity, b: Severity) -> Severity {
    let rank = |s: Severity| match s {
        Severity::Info => 0,
        Severity::Warning => 1,
        Severity::Error => 2,
        Severity::Critical => 3,
    };
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

/// One line saying what the alert is about.
fn describe(
    rule: Rule,
    subject: &str,
    count: i64,
    accounts: usize,
    ips: usize,
    last: &Signal,
    compromised: usize,
) -> String {
    let d = &last.detail;
    let s = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or("?").to_owned();
    match rule {
        Rule::BruteForce => format!("{count} failed sign-ins on {subject}"),
        Rule::PasswordSpraying => format!("{count} failed sign-ins on {accounts} accounts from {subject}"),
        Rule::CredentialStuffing if compromised > 0 => format!(
            "{count} failed sign-ins on {accounts} accounts from {ips} addresses; {compromised} sign-in(s) succeeded (likely compromise)"
        ),
        Rule::CredentialStuffing => format!("{count} failed sign-ins on {accounts} accounts from {ips} addresses"),
        Rule::ImpossibleTravel => format!(
            "{} → {}: {} km in {} min ({} km/h)",
            s("from"),
            s("to"),
            d.get("km").and_then(Value::as_i64).unwrap_or(0),
            d.get("minutes").and_then(Value::as_i64).unwrap_or(0),
            d.get("kmh").and_then(Value::as_i64).unwrap_or(0)
        ),
        Rule::NewDevice if d.get("country").is_some() => {
            format!("New device ({}) in a new country ({})", s("device"), s("country"))
        }
        Rule::NewDevice => format!("New device ({})", s("device")),
        Rule::NewCountry => format!("First sign-in from {} in 30 days", s("country")),
        Rule::UnusualHour => format!("Sign-in at {}:00 UTC, outside the usual hours", s("hour")),
        Rule::OtpBruteForce => format!("{count} wrong one-time codes"),
        Rule::SessionHijack => format!("Session {} used from another user agent ({count}×)", s("session_id")),
        Rule::PrivilegedLogin => format!("{} sign-in: {}", s("role"), s("reason")),
        Rule::RefreshTokenReuse => format!("Rotated refresh token presented again; session {} revoked", s("session_id")),
        Rule::AccountLockStorm => format!("{accounts} accounts locked"),
        Rule::PasswordChangeStorm => format!("{accounts} passwords changed"),
    }
}

/// Every alert of `signals` (any subjects, any order): the whole-table computation the
/// in-memory model and tests use; the sink computes the same per touched subject.
pub fn all_alerts(detection: &Detection, signals: &[Signal]) -> Vec<Alert> {
    let mut by: BTreeMap<(&str, &str), Vec<Signal>> = BTreeMap::new();
    for s in signals {
        by.entry((&s.rule, &s.subject)).or_default().push(s.clone());
    }
    let mut out = vec![];
    for ((rule, _), v) in by {
        let Some(r) = Rule::parse(rule) else { continue };
        let Some(settings) = detection.on(r) else {
            continue;
        };
        out.extend(episodes(r, settings, detection.evidence_max, &v));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(min: i64, n: u128, key: &str, ip: &str) -> Signal {
        Signal {
            rule: "password_spraying".into(),
            subject: "203.0.113.0/24".into(),
            at: DateTime::from_timestamp(1_800_000_000 + min * 60, 0).unwrap(),
            event_id: Uuid::from_u128(n),
            key: Some(key.into()),
            user_id: None,
            ip: Some(ip.into()),
            session_id: None,
            severity: Severity::Warning,
            detail: json!({}),
        }
    }

    #[test]
    fn an_episode_is_a_function_of_the_set_of_signals() {
        let s = RuleSettings {
            distinct: 3,
            ..RuleSettings::new(Severity::Warning, 10, 3)
        };
        let mut v: Vec<Signal> = (0..6)
            .map(|i| sig(i * 4, i as u128 + 1, &format!("u{i}"), "203.0.113.9"))
            .collect();
        let a = episodes(Rule::PasswordSpraying, &s, 100, &v);
        v.reverse();
        assert_eq!(episodes(Rule::PasswordSpraying, &s, 100, &v), a);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].count, 6);
        assert_eq!(a[0].accounts, 6);
    }

    #[test]
    fn a_gap_longer_than_the_window_starts_a_new_episode_and_a_signal_in_it_joins_them() {
        let s = RuleSettings::new(Severity::Warning, 10, 2);
        let mut v = vec![
            sig(0, 1, "a", "x"),
            sig(5, 2, "a", "x"),
            sig(30, 3, "a", "x"),
            sig(35, 4, "a", "x"),
        ];
        assert_eq!(episodes(Rule::BruteForce, &s, 100, &v).len(), 2);
        v.extend([sig(14, 5, "a", "x"), sig(22, 6, "a", "x")]);
        let one = episodes(Rule::BruteForce, &s, 100, &v);
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].count, 6);
        assert_eq!(
            one[0].id,
            alert_id("brute_force", "203.0.113.0/24", Uuid::from_u128(1))
        );
    }

    #[test]
    fn episodes_end_at_midnight_utc_even_without_a_gap() {
        // Minute 960 after the base instant is midnight UTC.
        let s = RuleSettings::new(Severity::Warning, 10, 2);
        let v: Vec<Signal> = [952, 955, 958, 961, 964, 967]
            .iter()
            .enumerate()
            .map(|(i, m)| sig(*m, i as u128 + 1, "a", "x"))
            .collect();
        let a = episodes(Rule::BruteForce, &s, 100, &v);
        assert_eq!(a.len(), 2);
        assert_eq!((a[0].count, a[1].count), (3, 3));
        assert_ne!(episode_day(a[0].last_seen), episode_day(a[1].first_seen));
    }

    #[test]
    fn below_the_distinct_threshold_there_is_no_alert() {
        let s = RuleSettings {
            distinct: 3,
            ..RuleSettings::new(Severity::Warning, 10, 1)
        };
        let v = vec![
            sig(0, 1, "a", "x"),
            sig(1, 2, "b", "x"),
            sig(2, 3, "a", "x"),
        ];
        assert!(episodes(Rule::PasswordSpraying, &s, 100, &v).is_empty());
    }

    #[test]
    fn networks_and_distances() {
        assert_eq!(network("198.51.100.7".parse().unwrap()), "198.51.100.0/24");
        assert_eq!(
            network("2001:db8:1:2:3::9".parse().unwrap()),
            "2001:db8:1:2::/64"
        );
        let paris = (48.8566, 2.3522);
        let tokyo = (35.6762, 139.6503);
        let d = distance_km(paris, tokyo);
        assert!((9_600.0..9_800.0).contains(&d), "{d}");
    }
}
