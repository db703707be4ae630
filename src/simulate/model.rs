//! The deterministic traffic model: a seeded RNG and a simulated clock produce the same stream of
//! events for the same [`Settings`], ids and all.
//!
//! People: each user has a home country (an address or two there), 1–3 devices, an activity
//! weight, a preferred login method and a typo rate; about 1 in 15 is an admin, whose logins
//! require OTP. Normal traffic: logins (password, SSO, Microsoft; failed attempts with typos
//! first, now and then an unknown-user typo of the email), refreshes rotating the refresh token
//! id, activity, logouts, abandoned sessions that simply expire, trusted devices, password
//! changes. Attacks, injected at a configurable rate and mix, see [`Attack`].

use super::catalog::{self, Country, DeviceModel};
use authtrail_events::{parse_value, Event};
use chrono::{DateTime, Duration, Utc};
use rand::seq::IndexedRandom;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Map, Value};
use std::collections::VecDeque;
use std::str::FromStr;
use uuid::Uuid;

/// The injected attack scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Attack {
    /// 15–30 failed passwords on one account from one address, then a lock.
    BruteForce,
    /// One address, one or two passwords, 20–40 accounts.
    PasswordSpray,
    /// A successful login from a country the user never used.
    NewCountry,
    /// A login at home, then minutes later one from the other side of the world.
    ImpossibleTravel,
    /// A refresh token presented a second time after it was rotated, from another address.
    RefreshTokenReuse,
    /// Many wrong one-time codes in a row on an admin account.
    OtpBruteForce,
}

impl Attack {
    pub const ALL: &'static [Attack] = &[
        Attack::BruteForce,
        Attack::PasswordSpray,
        Attack::NewCountry,
        Attack::ImpossibleTravel,
        Attack::RefreshTokenReuse,
        Attack::OtpBruteForce,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Attack::BruteForce => "brute-force",
            Attack::PasswordSpray => "password-spray",
            Attack::NewCountry => "new-country",
            Attack::ImpossibleTravel => "impossible-travel",
            Attack::RefreshTokenReuse => "token-reuse",
            Attack::OtpBruteForce => "otp-brute-force",
        }
    }
}

impl FromStr for Attack {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Attack::ALL
            .iter()
            .copied()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown attack {s:?}; expected one of: {}",
                    Attack::ALL
                        .iter()
                        .map(|a| a.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
    }
}

/// Everything the stream depends on.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub seed: u64,
    pub users: usize,
    /// Time of the first event.
    pub start: DateTime<Utc>,
    /// Mean simulated time between two events.
    pub mean_gap: std::time::Duration,
    /// Attack kinds with weights; empty = no attacks.
    pub attacks: Vec<(Attack, u32)>,
    /// Mean number of normal events between two attacks.
    pub attack_every: u32,
    /// CloudEvents `source` of every event.
    pub source: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            seed: 1,
            users: 50,
            start: DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
                .expect("constant")
                .with_timezone(&Utc),
            mean_gap: std::time::Duration::from_millis(500),
            attacks: Attack::ALL.iter().map(|a| (*a, 1)).collect(),
            attack_every: 200,
            source: "/services/simulated-auth".into(),
        }
    }
}

#[derive(Debug, Clone)]
struct Device {
    model: DeviceModel,
    /// Some apps send their own device id; for the others ingest derives one.
    device_id: Option<String>,
    trusted: bool,
}

#[derive(Debug, Clone)]
struct Session {
    id: String,
    refresh_token_id: String,
    device: usize,
    ip: &'static str,
}

#[derive(Debug, Clone)]
struct User {
    id: String,
    email: String,
    home: &'static Country,
    home_ips: Vec<&'static str>,
    devices: Vec<Device>,
    admin: bool,
    weight: u32,
    method: &'static str,
    typo_rate: f64,
    session: Option<Session>,
}

/// The generator: an endless iterator of events.
pub struct Generator {
    settings: Settings,
    rng: ChaCha8Rng,
    clock: DateTime<Utc>,
    users: Vec<User>,
    total_weight: u32,
    pending: VecDeque<Event>,
    /// Attack scenarios started, by kind (for the summary).
    pub attacks_started: std::collections::BTreeMap<Attack, usize>,
}

impl Generator {
    /// `settings.users` must be at least 1 (checked by the command line).
    pub fn new(settings: Settings) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(settings.seed);
        let users = (0..settings.users.max(1))
            .map(|i| make_user(&mut rng, i))
            .collect::<Vec<_>>();
        let total_weight = users.iter().map(|u| u.weight).sum();
        Generator {
            clock: settings.start,
            settings,
            rng,
            users,
            total_weight,
            pending: VecDeque::new(),
            attacks_started: Default::default(),
        }
    }

    fn uuid(&mut self) -> Uuid {
        let mut b = [0u8; 16];
        self.rng.fill_bytes(&mut b);
        uuid::Builder::from_random_bytes(b).into_uuid()
    }

    fn token(&mut self, prefix: &str) -> String {
        format!("{prefix}_{:016x}", self.rng.next_u64())
    }

    /// Advances the clock by an exponential gap with the configured mean (at least 1 ms).
    fn tick(&mut self) -> DateTime<Utc> {
        let mean = self.settings.mean_gap.as_secs_f64().max(0.001);
        let u: f64 = self.rng.random_range(f64::EPSILON..1.0);
        let gap_ms = (-u.ln() * mean * 1000.0).clamp(1.0, mean * 20_000.0);
        self.clock += Duration::milliseconds(gap_ms as i64);
        self.clock
    }

    /// Advances the clock by a random step in `lo..hi` ms.
    fn step_between(&mut self, lo: i64, hi: i64) -> DateTime<Utc> {
        let ms = self.rng.random_range(lo..hi);
        self.step(ms)
    }

    /// Advances the clock by a fixed step (steps inside one scenario).
    fn step(&mut self, ms: i64) -> DateTime<Utc> {
        self.clock += Duration::milliseconds(ms.max(1));
        self.clock
    }

    fn emit(&mut self, time: DateTime<Utc>, subject: Option<&str>, kind: &str, data: Value) {
        let mut v = Map::new();
        v.insert("specversion".into(), json!("1.0"));
        v.insert("id".into(), json!(self.uuid()));
        v.insert("source".into(), json!(self.settings.source));
        v.insert("type".into(), json!(kind));
        v.insert(
            "time".into(),
            json!(time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        );
        if let Some(s) = subject {
            v.insert("subject".into(), json!(s));
        }
        v.insert("schemaversion".into(), json!(1));
        v.insert("data".into(), strip_nulls(data));
        let event = parse_value(Value::Object(v)).unwrap_or_else(|e| {
            // A bug in the model, never caused by input: the tests parse every event.
            panic!("simulator built an invalid {kind} event: {e}")
        });
        self.pending.push_back(event);
    }

    fn pick_user(&mut self) -> usize {
        let mut x = self.rng.random_range(0..self.total_weight.max(1));
        for (i, u) in self.users.iter().enumerate() {
            if x < u.weight {
                return i;
            }
            x -= u.weight;
        }
        0
    }

    fn pick_attack(&mut self) -> Option<Attack> {
        let total: u32 = self.settings.attacks.iter().map(|(_, w)| *w).sum();
        if total == 0 {
            return None;
        }
        let mut x = self.rng.random_range(0..total);
        for (a, w) in &self.settings.attacks {
            if x < *w {
                return Some(*a);
            }
            x -= w;
        }
        None
    }

    fn refill(&mut self) {
        let attack_roll = self.settings.attack_every > 0
            && self.rng.random_ratio(1, self.settings.attack_every.max(1));
        if attack_roll {
            if let Some(a) = self.pick_attack() {
                *self.attacks_started.entry(a).or_default() += 1;
                self.attack(a);
                return;
            }
        }
        let u = self.pick_user();
        if self.users[u].session.is_some() {
            self.use_session(u);
        } else {
            self.login(u);
        }
    }

    fn login_data(
        &self,
        u: usize,
        session: &Session,
        method: &str,
        time: DateTime<Utc>,
        expires_in: Duration,
    ) -> Value {
        let user = &self.users[u];
        let device = &user.devices[session.device];
        json!({
            "session_id": session.id,
            "login_method": method,
            "expires_at": ts(time + expires_in),
            "identifier": user.email,
            "refresh_token_id": session.refresh_token_id,
            "ip": session.ip,
            "user_agent": device.model.user_agent,
            "device_id": device.device_id,
            "device_name": device.model.label,
            "otp_required": user.admin,
            "otp_verified": if user.admin { Some(true) } else { None },
            "roles": if user.admin { vec!["user", "admin"] } else { vec!["user"] },
        })
    }

    /// A normal login: maybe typos first, OTP for admins, then success on one of the devices.
    fn login(&mut self, u: usize) {
        let device = self.rng.random_range(0..self.users[u].devices.len());
        let ip = *self.users[u]
            .home_ips
            .choose(&mut self.rng)
            .expect("1+ ips");
        let method = if self.rng.random_bool(0.85) {
            self.users[u].method
        } else {
            "password"
        };
        self.login_at(u, device, ip, method);
    }

    fn login_at(&mut self, u: usize, device: usize, ip: &'static str, method: &'static str) {
        let (id, email, admin, typo_rate) = {
            let user = &self.users[u];
            (
                user.id.clone(),
                user.email.clone(),
                user.admin,
                user.typo_rate,
            )
        };
        let ua = self.users[u].devices[device].model.user_agent;
        if method == "password" && self.rng.random_bool(typo_rate) {
            let t = self.tick();
            if self.rng.random_bool(0.2) {
                // A typo in the email: nobody has that identifier.
                let typo = typo_email(&mut self.rng, &email);
                self.emit(
                    t,
                    None,
                    "login.failed",
                    json!({"identifier": typo, "failure_reason": "unknown_user", "login_method": "password", "ip": ip, "user_agent": ua}),
                );
            } else {
                self.emit(
                    t,
                    Some(&id),
                    "login.failed",
                    json!({"identifier": email, "failure_reason": "bad_password", "login_method": "password", "ip": ip, "user_agent": ua}),
                );
            }
        }
        let session = Session {
            id: self.token("sess"),
            refresh_token_id: self.token("rt"),
            device,
            ip,
        };
        let mut t = self.tick();
        if admin {
            let channel = *["totp", "email", "sms"].choose(&mut self.rng).expect("3");
            self.emit(
                t,
                Some(&id),
                "otp.sent",
                json!({"channel": channel, "session_id": session.id}),
            );
            t = self.step_between(4_000, 25_000);
            self.emit(
                t,
                Some(&id),
                "otp.verified",
                json!({"channel": channel, "session_id": session.id}),
            );
            t = self.step(300);
        }
        let expires_in = *[
            Duration::minutes(15),
            Duration::hours(1),
            Duration::hours(12),
        ]
        .choose(&mut self.rng)
        .expect("3");
        let data = self.login_data(u, &session, method, t, expires_in);
        self.emit(t, Some(&id), "login.succeeded", data);
        let trust = {
            let d = &self.users[u].devices[device];
            !d.trusted && d.device_id.is_some()
        } && self.rng.random_bool(0.3);
        if trust {
            let t = self.step_between(2_000, 10_000);
            let d = &self.users[u].devices[device];
            let data = json!({"device_id": d.device_id, "device_name": d.model.label});
            self.users[u].devices[device].trusted = true;
            self.emit(t, Some(&id), "device.trusted", data);
        }
        self.users[u].session = Some(session);
    }

    fn use_session(&mut self, u: usize) {
        let Some(session) = self.users[u].session.clone() else {
            return;
        };
        let id = self.users[u].id.clone();
        let ua = self.users[u].devices[session.device].model.user_agent;
        let roll: f64 = self.rng.random();
        let t = self.tick();
        if roll < 0.55 {
            self.emit(
                t,
                Some(&id),
                "session.activity",
                json!({"session_id": session.id, "ip": session.ip, "user_agent": ua}),
            );
        } else if roll < 0.80 {
            let next = self.token("rt");
            self.emit(
                t,
                Some(&id),
                "token.refreshed",
                json!({
                    "session_id": session.id,
                    "refresh_token_id": next,
                    "previous_refresh_token_id": session.refresh_token_id,
                    "expires_at": ts(t + Duration::hours(1)),
                    "ip": session.ip,
                    "user_agent": ua,
                }),
            );
            if let Some(s) = self.users[u].session.as_mut() {
                s.refresh_token_id = next;
            }
        } else if roll < 0.92 {
            self.emit(
                t,
                Some(&id),
                "session.logged_out",
                json!({"session_id": session.id}),
            );
            self.users[u].session = None;
        } else if roll < 0.97 {
            // Walks away: the session expires by itself, no event.
            self.users[u].session = None;
        } else if roll < 0.99 {
            self.emit(
                t,
                Some(&id),
                "session.revoked",
                json!({"scope": "all_except", "session_id": session.id, "reason": "user signed out other devices", "revoked_by": id}),
            );
        } else {
            self.emit(t, Some(&id), "password.changed", json!({"changed_by": id}));
        }
    }

    fn attacker(&mut self) -> (&'static str, &'static str) {
        let country = catalog::country(
            catalog::ATTACKER_COUNTRIES
                .choose(&mut self.rng)
                .expect("attackers"),
        );
        let ip = *country.ips.choose(&mut self.rng).expect("ips");
        let ua = *catalog::ATTACK_USER_AGENTS
            .choose(&mut self.rng)
            .expect("uas");
        (ip, ua)
    }

    fn attack(&mut self, attack: Attack) {
        match attack {
            Attack::BruteForce => self.brute_force(),
            Attack::PasswordSpray => self.password_spray(),
            Attack::NewCountry => self.new_country(),
            Attack::ImpossibleTravel => self.impossible_travel(),
            Attack::RefreshTokenReuse => self.refresh_token_reuse(),
            Attack::OtpBruteForce => self.otp_brute_force(),
        }
    }

    /// 15–30 failed passwords on one account from one address, then a lock.
    fn brute_force(&mut self) {
        let u = self.rng.random_range(0..self.users.len());
        let (ip, ua) = self.attacker();
        let (id, email) = (self.users[u].id.clone(), self.users[u].email.clone());
        let n = self.rng.random_range(15..=30);
        let mut t = self.tick();
        for _ in 0..n {
            self.emit(
                t,
                Some(&id),
                "login.failed",
                json!({"identifier": email, "failure_reason": "bad_password", "login_method": "password", "ip": ip, "user_agent": ua}),
            );
            t = self.step_between(300, 2_500);
        }
        self.emit(
            t,
            Some(&id),
            "account.locked",
            json!({"reason": format!("{n} failed logins"), "until": ts(t + Duration::minutes(30)), "actor": "system"}),
        );
        self.users[u].session = None;
    }

    /// One address, one or two passwords, 20–40 accounts.
    fn password_spray(&mut self) {
        let (ip, ua) = self.attacker();
        let n = self.rng.random_range(20..=40).min(self.users.len() + 5);
        let mut t = self.tick();
        for i in 0..n {
            if i < self.users.len() && !self.rng.random_bool(0.1) {
                let u = (i * 7 + 3) % self.users.len();
                let (id, email) = (self.users[u].id.clone(), self.users[u].email.clone());
                self.emit(
                    t,
                    Some(&id),
                    "login.failed",
                    json!({"identifier": email, "failure_reason": "bad_password", "login_method": "password", "ip": ip, "user_agent": ua}),
                );
            } else {
                let guess = format!(
                    "{}@example.com",
                    ["admin", "root", "test", "info", "support"]
                        .choose(&mut self.rng)
                        .expect("5")
                );
                self.emit(
                    t,
                    None,
                    "login.failed",
                    json!({"identifier": guess, "failure_reason": "unknown_user", "login_method": "password", "ip": ip, "user_agent": ua}),
                );
            }
            t = self.step_between(200, 1_500);
        }
    }

    /// A successful login from a country the user never used.
    fn new_country(&mut self) {
        let u = self.rng.random_range(0..self.users.len());
        let home = self.users[u].home.code;
        let away = self.far_country(home, false);
        let ip = *away.ips.choose(&mut self.rng).expect("ips");
        let device = self.rng.random_range(0..self.users[u].devices.len());
        self.login_at(u, device, ip, "password");
    }

    /// A login at home, then minutes later one from the other side of the world.
    fn impossible_travel(&mut self) {
        let u = self.rng.random_range(0..self.users.len());
        let home_ip = *self.users[u].home_ips.choose(&mut self.rng).expect("ips");
        let device = self.rng.random_range(0..self.users[u].devices.len());
        self.login_at(u, device, home_ip, self.users[u].method);
        let home = self.users[u].home.code;
        let far = self.far_country(home, true);
        let ip = *far.ips.choose(&mut self.rng).expect("ips");
        self.step_between(120_000, 900_000);
        let other = self.rng.random_range(0..self.users[u].devices.len());
        self.login_at(u, other, ip, "password");
    }

    /// A refresh token presented a second time after it was rotated, from another address.
    fn refresh_token_reuse(&mut self) {
        let u = self.rng.random_range(0..self.users.len());
        if self.users[u].session.is_none() {
            self.login(u);
        }
        let Some(session) = self.users[u].session.clone() else {
            return;
        };
        let id = self.users[u].id.clone();
        let ua = self.users[u].devices[session.device].model.user_agent;
        // The legitimate client rotates rt1 → rt2 ...
        let stolen = session.refresh_token_id.clone();
        let next = self.token("rt");
        let t = self.tick();
        self.emit(
            t,
            Some(&id),
            "token.refreshed",
            json!({"session_id": session.id, "refresh_token_id": next, "previous_refresh_token_id": stolen, "expires_at": ts(t + Duration::hours(1)), "ip": session.ip, "user_agent": ua}),
        );
        // ... then a thief presents rt1 again from elsewhere.
        let (ip, attack_ua) = self.attacker();
        let t = self.step_between(30_000, 600_000);
        let forged = self.token("rt");
        self.emit(
            t,
            Some(&id),
            "token.refreshed",
            json!({"session_id": session.id, "refresh_token_id": forged, "previous_refresh_token_id": stolen, "expires_at": ts(t + Duration::hours(1)), "ip": ip, "user_agent": attack_ua}),
        );
        let t = self.step(200);
        self.emit(
            t,
            Some(&id),
            "session.revoked",
            json!({"scope": "one", "session_id": session.id, "reason": "refresh token reuse detected", "revoked_by": "system"}),
        );
        self.users[u].session = None;
    }

    /// Many wrong one-time codes in a row on an admin account.
    fn otp_brute_force(&mut self) {
        let admins: Vec<usize> = (0..self.users.len())
            .filter(|i| self.users[*i].admin)
            .collect();
        let u = admins
            .choose(&mut self.rng)
            .copied()
            .unwrap_or_else(|| self.rng.random_range(0..self.users.len()));
        let id = self.users[u].id.clone();
        let sid = self.token("sess");
        let t = self.tick();
        self.emit(
            t,
            Some(&id),
            "otp.sent",
            json!({"channel": "sms", "session_id": sid}),
        );
        let n = self.rng.random_range(8..=15);
        for _ in 0..n {
            let t = self.step_between(500, 3_000);
            self.emit(
                t,
                Some(&id),
                "otp.failed",
                json!({"channel": "sms", "session_id": sid, "reason": "wrong code"}),
            );
        }
        let t = self.step(100);
        self.emit(
            t,
            Some(&id),
            "account.locked",
            json!({"reason": format!("{n} wrong one-time codes"), "until": ts(t + Duration::hours(1)), "actor": "system"}),
        );
        self.users[u].session = None;
    }
    /// A country other than `home`; `far` wants one at least 60 degrees of longitude away.
    fn far_country(&mut self, home: &str, far: bool) -> &'static Country {
        let home_lon = catalog::country(home).longitude;
        let options: Vec<&'static Country> = catalog::COUNTRIES
            .iter()
            .filter(|c| c.code != home)
            .filter(|c| !far || (c.longitude - home_lon).abs() >= 60.0)
            .collect();
        options
            .choose(&mut self.rng)
            .copied()
            .unwrap_or(&catalog::COUNTRIES[0])
    }
}

impl Iterator for Generator {
    type Item = Event;
    fn next(&mut self) -> Option<Event> {
        while self.pending.is_empty() {
            self.refill();
        }
        self.pending.pop_front()
    }
}

fn make_user(rng: &mut ChaCha8Rng, i: usize) -> User {
    let mut b = [0u8; 16];
    rng.fill_bytes(&mut b);
    let id = uuid::Builder::from_random_bytes(b).into_uuid().to_string();
    let first = catalog::FIRST_NAMES.choose(rng).expect("names");
    let last = catalog::LAST_NAMES.choose(rng).expect("names");
    let email = format!("{first}.{last}{i}@example.com");
    let total: u32 = catalog::HOME_WEIGHTS.iter().map(|(_, w)| w).sum();
    let mut x = rng.random_range(0..total);
    let mut home = catalog::country("GB");
    for (code, w) in catalog::HOME_WEIGHTS {
        if x < *w {
            home = catalog::country(code);
            break;
        }
        x -= w;
    }
    let n_ips = rng.random_range(1..=2.min(home.ips.len()));
    let home_ips: Vec<&'static str> = home.ips.choose_multiple(rng, n_ips).copied().collect();
    let n_devices = rng.random_range(1..=3);
    let devices = catalog::DEVICES
        .choose_multiple(rng, n_devices)
        .map(|m| Device {
            model: *m,
            device_id: rng
                .random_bool(0.5)
                .then(|| format!("dev_{:012x}", rng.next_u64() >> 16)),
            trusted: false,
        })
        .collect();
    let admin = rng.random_ratio(1, 15);
    let method = match rng.random_range(0..10) {
        0..=6 => "password",
        7 | 8 => "sso",
        _ => "microsoft",
    };
    User {
        id,
        email,
        home,
        home_ips,
        devices,
        admin,
        weight: rng.random_range(1..=5),
        method,
        typo_rate: rng.random_range(0.02..0.15),
        session: None,
    }
}

/// A one-letter typo in the local part of an email.
fn typo_email(rng: &mut ChaCha8Rng, email: &str) -> String {
    let (local, domain) = email.split_once('@').unwrap_or((email, "example.com"));
    let mut chars: Vec<char> = local.chars().collect();
    if chars.len() > 1 {
        let i = rng.random_range(0..chars.len() - 1);
        chars.swap(i, i + 1);
    }
    let mut s: String = chars.into_iter().collect();
    if s == local {
        s.push('x');
    }
    format!("{s}@{domain}")
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Drops `null` members (the contract's optional fields are absent, not null).
fn strip_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        other => other,
    }
}
