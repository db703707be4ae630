//! The deterministic traffic model: a seeded RNG and a simulated clock produce the same stream of
//! events for the same [`Settings`], ids and all.
//!
//! People: each user has a home country (an address or two there, a time zone from its
//! longitude, usual waking hours), 1–3 personal devices with stable user agents and device ids, an
//! activity weight, a preferred login method and a typo rate; about 1 in 15 is an admin and 1 in
//! 40 a super-admin, whose logins take OTP. Now and then a user travels for a few days.
//!
//! Normal traffic is whole sessions: a login on a free device during the user's waking hours
//! (typos first now and then), activity, a token refresh every [`REFRESH_EVERY`], then a logout,
//! or walking away (the session idle-expires, no event), sometimes signing out the other devices
//! or changing the password; first logins on a device sometimes trust it. A device carries one
//! session at a time, so a user never has more than three normal sessions.
//!
//! One timeline: a scenario (a session or an attack) starts at the simulated clock and schedules
//! its events at or after it; events wait in a queue ordered by time and leave it only once the
//! clock has passed them, so the stream is in time order although scenarios overlap. After each
//! scenario the clock moves on by an exponential gap whose mean is `mean_gap` per event the
//! scenario made, so the stream averages one event per `mean_gap` (after a warm-up: the first
//! `users` scenarios, and those after a change of pace, start one mean gap apart).
//!
//! Attacks ([`Attack`]) are injected at a configurable rate and mix; each has an id, and every
//! event it makes carries a [`Label`] outside the event.

use super::catalog::{self, Country, DeviceModel};
use authtrail_events::{parse_value, Event};
use chrono::{DateTime, Duration, Timelike, Utc};
use rand::seq::IndexedRandom;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Map, Value};
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::str::FromStr;
use uuid::Uuid;

/// How often a client refreshes its tokens (an access token's lifetime).
const REFRESH_EVERY: Duration = Duration::minutes(15);

/// The injected attack scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Attack {
    /// 15–30 failed passwords on one account from one address, then a lock.
    BruteForce,
    /// One address or /24, one to three passwords each on 20–40 accounts.
    PasswordSpray,
    /// Many addresses × many accounts from a leaked list; a few succeed, then one account is
    /// taken over from a new device in another country.
    CredentialStuffing,
    /// A successful login from a country the user never used.
    NewCountry,
    /// A login at home, then minutes later one from the other side of the world.
    ImpossibleTravel,
    /// A refresh token presented a second time after it was rotated, from another address.
    RefreshTokenReuse,
    /// Many wrong one-time codes in a row on an admin account.
    OtpBruteForce,
    /// A session's refresh and activity from a device other than the session's.
    SessionHijack,
    /// An admin or super-admin login without OTP, or from a new country.
    PrivilegedLogin,
    /// An admin signs in and works in the middle of their night.
    OffHoursAdmin,
}

impl Attack {
    pub const ALL: &'static [Attack] = &[
        Attack::BruteForce,
        Attack::PasswordSpray,
        Attack::CredentialStuffing,
        Attack::NewCountry,
        Attack::ImpossibleTravel,
        Attack::RefreshTokenReuse,
        Attack::OtpBruteForce,
        Attack::SessionHijack,
        Attack::PrivilegedLogin,
        Attack::OffHoursAdmin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Attack::BruteForce => "brute-force",
            Attack::PasswordSpray => "password-spray",
            Attack::CredentialStuffing => "credential-stuffing",
            Attack::NewCountry => "new-country",
            Attack::ImpossibleTravel => "impossible-travel",
            Attack::RefreshTokenReuse => "token-reuse",
            Attack::OtpBruteForce => "otp-brute-force",
            Attack::SessionHijack => "session-hijack",
            Attack::PrivilegedLogin => "privileged-login",
            Attack::OffHoursAdmin => "off-hours-admin",
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

/// An event made by an injected attack (kept beside the stream, never in it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Label {
    pub event_id: Uuid,
    pub attack: Attack,
    /// One id per injected attack: all its events share it.
    pub attack_id: Uuid,
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
    /// Normal events before the first attack: history the per-user rules learn from.
    pub warmup: u32,
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
            warmup: 0,
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
    /// The device's current session has ended (logged out or idle-expired) by then.
    busy_until: DateTime<Utc>,
}

#[derive(Debug, Clone)]
struct Session {
    id: String,
    refresh_token_id: String,
    device: usize,
    ip: &'static str,
    /// Absolute expiry given at login.
    expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    User,
    Admin,
    SuperAdmin,
}

impl Role {
    fn roles(self) -> &'static [&'static str] {
        match self {
            Role::User => &["user"],
            Role::Admin => &["user", "admin"],
            Role::SuperAdmin => &["user", "admin", "super_admin"],
        }
    }
}

#[derive(Debug, Clone)]
struct User {
    id: String,
    email: String,
    home: &'static Country,
    home_ips: Vec<&'static str>,
    /// Offset of the home time zone from UTC.
    utc_offset: Duration,
    /// Usual hours, local: awake from `wake` to `sleep` (hours, `sleep` exclusive).
    wake: u32,
    sleep: u32,
    /// A trip abroad (see [`Trip`]).
    travel: Option<Trip>,
    /// Countries visited on trips (attacks pick countries the user has never been to).
    visited: Vec<&'static str>,
    devices: Vec<Device>,
    role: Role,
    weight: u32,
    method: &'static str,
    typo_rate: f64,
}

impl User {
    fn local_hour(&self, t: DateTime<Utc>) -> u32 {
        (t + self.utc_offset).hour()
    }
    fn awake(&self, t: DateTime<Utc>) -> bool {
        (self.wake..self.sleep).contains(&self.local_hour(t))
    }
    fn privileged(&self) -> bool {
        self.role != Role::User
    }
}

/// A trip: a day in transit (no logins), the days abroad, a day back. A person cannot sign in
/// on two continents an hour apart, so the transit days keep trips out of the travel rule.
#[derive(Debug, Clone, Copy)]
struct Trip {
    /// The hotel's address, all trip long.
    ip: &'static str,
    arrive: DateTime<Utc>,
    leave: DateTime<Utc>,
    home: DateTime<Utc>,
}

/// How long a journey takes, door to door (any two catalog countries).
const TRANSIT: Duration = Duration::hours(24);

/// An event waiting for the clock to pass its time.
struct Due {
    time: DateTime<Utc>,
    seq: u64,
    event: Event,
    label: Option<(Attack, Uuid)>,
}

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        (self.time, self.seq) == (other.time, other.seq)
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.time, self.seq).cmp(&(other.time, other.seq))
    }
}

/// The generator: an endless iterator of events in time order.
pub struct Generator {
    settings: Settings,
    rng: ChaCha8Rng,
    /// Scenarios start here; events up to it may leave the queue.
    clock: DateTime<Utc>,
    /// The running scenario's time.
    cursor: DateTime<Utc>,
    /// Time of the last event taken.
    taken: DateTime<Utc>,
    /// Scenarios still to start in quick succession (see [`Generator::refill`]).
    warm: usize,
    users: Vec<User>,
    total_weight: u32,
    queue: BinaryHeap<Reverse<Due>>,
    seq: u64,
    /// Events the running scenario made.
    made: u64,
    /// The running attack, whose events are labelled.
    attack: Option<(Attack, Uuid)>,
    /// Normal events still to come before the next attack.
    until_attack: f64,
    /// Attack scenarios started, by kind (for the summary).
    pub attacks_started: std::collections::BTreeMap<Attack, usize>,
}

impl Generator {
    /// `settings.users` must be at least 1 (checked by the command line).
    pub fn new(settings: Settings) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(settings.seed);
        let start = settings.start;
        let users = (0..settings.users.max(1))
            .map(|i| make_user(&mut rng, i, start))
            .collect::<Vec<_>>();
        let total_weight = users.iter().map(|u| u.weight).sum();
        let mut g = Generator {
            clock: start,
            cursor: start,
            taken: start,
            warm: settings.users,
            settings,
            rng,
            users,
            total_weight,
            queue: BinaryHeap::new(),
            seq: 0,
            made: 0,
            attack: None,
            until_attack: 0.0,
            attacks_started: Default::default(),
        };
        g.until_attack = f64::from(g.settings.warmup) + g.attack_gap();
        g
    }

    /// No more attacks from now on (those under way finish): lets a measured stream end with
    /// every injected attack whole.
    pub fn stop_attacks(&mut self) {
        self.settings.attack_every = 0;
    }

    /// Changes the pace from now on (e.g. backfill, then live), and lets the next scenario start
    /// as early as `at` (the clock may have run ahead by a sparse scenario's gap): never before
    /// an event already taken, so the stream stays in time order.
    pub fn set_pace(&mut self, gap: std::time::Duration, at: DateTime<Utc>) {
        self.settings.mean_gap = gap;
        self.clock = at.clamp(self.taken, self.clock);
        self.warm = self.users.len();
    }

    /// The time of the next event.
    pub fn peek_time(&mut self) -> DateTime<Utc> {
        loop {
            if let Some(Reverse(due)) = self.queue.peek() {
                if due.time <= self.clock {
                    return due.time;
                }
            }
            self.refill();
        }
    }

    /// The next event, and its label when an attack made it.
    pub fn next_labelled(&mut self) -> (Event, Option<Label>) {
        self.peek_time();
        let Some(Reverse(due)) = self.queue.pop() else {
            unreachable!("peek_time leaves an event in the queue")
        };
        self.taken = due.time;
        let label = due.label.map(|(attack, attack_id)| Label {
            event_id: due.event.id,
            attack,
            attack_id,
        });
        (due.event, label)
    }

    fn uuid(&mut self) -> Uuid {
        let mut b = [0u8; 16];
        self.rng.fill_bytes(&mut b);
        uuid::Builder::from_random_bytes(b).into_uuid()
    }

    fn token(&mut self, prefix: &str) -> String {
        format!("{prefix}_{:016x}", self.rng.next_u64())
    }

    /// An exponential duration with the given mean in ms (at least 1 ms).
    fn exp_ms(&mut self, mean_ms: f64) -> Duration {
        let u: f64 = self.rng.random_range(f64::EPSILON..1.0);
        let ms = (-u.ln() * mean_ms.max(1.0)).clamp(1.0, mean_ms.max(1.0) * 20.0);
        Duration::milliseconds(ms as i64)
    }

    /// A person's pause inside a scenario: 0.3–4 s.
    fn tick(&mut self) -> DateTime<Utc> {
        self.step_between(300, 4_000)
    }

    /// Advances the scenario's time by a random step in `lo..hi` ms.
    fn step_between(&mut self, lo: i64, hi: i64) -> DateTime<Utc> {
        let ms = self.rng.random_range(lo..hi);
        self.step(ms)
    }

    /// Advances the scenario's time by a fixed step.
    fn step(&mut self, ms: i64) -> DateTime<Utc> {
        self.cursor += Duration::milliseconds(ms.max(1));
        self.cursor
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
        self.seq += 1;
        self.made += 1;
        self.queue.push(Reverse(Due {
            time: event.time,
            seq: self.seq,
            event,
            label: self.attack,
        }));
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

    /// Normal events until the next attack: exponential, mean `attack_every`.
    fn attack_gap(&mut self) -> f64 {
        let u: f64 = self.rng.random_range(f64::EPSILON..1.0);
        -u.ln() * f64::from(self.settings.attack_every.max(1))
    }

    /// Runs one scenario from the clock, then moves the clock on.
    fn refill(&mut self) {
        self.cursor = self.clock;
        self.made = 0;
        let attack = (self.settings.attack_every > 0 && self.until_attack <= 0.0)
            .then(|| self.pick_attack())
            .flatten();
        if let Some(a) = attack {
            *self.attacks_started.entry(a).or_default() += 1;
            let id = self.uuid();
            self.attack = Some((a, id));
            self.attack(a);
            self.attack = None;
            self.until_attack = self.attack_gap();
        } else {
            self.normal();
            self.until_attack -= self.made as f64;
        }
        // A session lasts hours, so the clock moving on by its events' worth would take hours
        // to reach the pace: the first `users` scenarios start one mean gap apart.
        let made = if self.warm > 0 {
            self.warm -= 1;
            1
        } else {
            self.made.max(1)
        };
        let mean = self.settings.mean_gap.as_secs_f64() * 1000.0 * made as f64;
        let gap = self.exp_ms(mean);
        self.clock += gap;
    }

    /// Mean time between two events of one session: about `users` sessions run at once, and
    /// nobody stays idle long enough to be expired by the idle timeout (30 min).
    fn activity_gap_ms(&self) -> f64 {
        let ms = self.settings.mean_gap.as_secs_f64() * 1000.0 * self.users.len() as f64;
        ms.clamp(200.0, 600_000.0)
    }

    /// A session of someone awake, on one of their free devices (tries a few people).
    fn normal(&mut self) {
        for _ in 0..4 {
            let u = self.pick_user();
            let t = self.cursor;
            // Now and then someone signs in at night; admins keep to their hours (a night
            // login of an admin is an injected attack).
            let night_owl = !self.users[u].privileged() && self.rng.random_bool(0.02);
            if !self.users[u].awake(t) && !night_owl {
                continue;
            }
            let free: Vec<usize> = (0..self.users[u].devices.len())
                .filter(|d| self.users[u].devices[*d].busy_until <= t)
                .collect();
            let Some(&device) = free.choose(&mut self.rng) else {
                continue;
            };
            if self.maybe_travel(u, free.len() == self.users[u].devices.len()) {
                continue;
            }
            self.session(u, device);
            return;
        }
    }

    /// Ends a finished trip; starts one now and then (only with no session running, and not
    /// for admins, whose logins from a new country are alerts by design). Returns whether the
    /// user is in transit (no login possible).
    fn maybe_travel(&mut self, u: usize, idle: bool) -> bool {
        let t = self.cursor;
        if self.users[u].travel.is_some_and(|trip| trip.home <= t) {
            self.users[u].travel = None;
        }
        if self.users[u].travel.is_none()
            && idle
            && !self.users[u].privileged()
            && self.rng.random_ratio(1, 400)
        {
            let home = self.users[u].home.code;
            let options: Vec<&'static str> = catalog::HOME_WEIGHTS
                .iter()
                .map(|(c, _)| *c)
                .filter(|c| *c != home)
                .collect();
            let to = catalog::country(options.choose(&mut self.rng).expect("countries"));
            let days = self.rng.random_range(2..=9);
            let arrive = t + TRANSIT;
            let leave = arrive + Duration::days(days);
            self.users[u].visited.push(to.code);
            let ip = to.ips.choose(&mut self.rng).expect("ips");
            self.users[u].travel = Some(Trip {
                ip,
                arrive,
                leave,
                home: leave + TRANSIT,
            });
        }
        self.users[u]
            .travel
            .is_some_and(|trip| t < trip.arrive || (trip.leave <= t && t < trip.home))
    }

    /// Where the user is now: an address at home or on the trip.
    fn user_ip(&mut self, u: usize) -> &'static str {
        let t = self.cursor;
        match self.users[u].travel {
            Some(trip) if trip.arrive <= t && t < trip.leave => trip.ip,
            _ => self.users[u].home_ips.choose(&mut self.rng).expect("ips"),
        }
    }

    /// One whole session: login, activity and refreshes, then its end.
    fn session(&mut self, u: usize, device: usize) {
        let ip = self.user_ip(u);
        let method = if self.rng.random_bool(0.85) {
            self.users[u].method
        } else {
            "password"
        };
        let mut s = self.login_at(u, device, ip, method);
        let minutes: f64 = self.rng.random_range(3f64.ln()..480f64.ln()).exp();
        let end = (self.cursor + Duration::seconds((minutes * 60.0) as i64))
            .min(s.expires_at - Duration::minutes(1));
        let last = self.use_session(u, &mut s, end);
        self.end_session(u, &s, last);
    }

    /// Activity and refreshes until `end`; returns the time of the last one.
    fn use_session(&mut self, u: usize, s: &mut Session, end: DateTime<Utc>) -> DateTime<Utc> {
        let id = self.users[u].id.clone();
        let ua = self.users[u].devices[s.device].model.user_agent;
        // At most about 600 activities a session: a scenario is generated whole.
        let span = (end - self.cursor).num_milliseconds() as f64 / 600.0;
        let gap = self.activity_gap_ms().max(span);
        let mut next_refresh = self.cursor + REFRESH_EVERY;
        loop {
            let next_activity = self.cursor + self.exp_ms(gap).min(Duration::minutes(20));
            let t = next_activity.min(next_refresh);
            if t > end {
                return self.cursor;
            }
            self.cursor = t;
            if t == next_refresh {
                let next = self.token("rt");
                self.emit(
                    t,
                    Some(&id),
                    "token.refreshed",
                    json!({
                        "session_id": s.id,
                        "refresh_token_id": next,
                        "previous_refresh_token_id": s.refresh_token_id,
                        "expires_at": ts((t + Duration::hours(1)).min(s.expires_at)),
                        "ip": s.ip,
                        "user_agent": ua,
                    }),
                );
                s.refresh_token_id = next;
                next_refresh = t + REFRESH_EVERY;
            } else {
                self.emit(
                    t,
                    Some(&id),
                    "session.activity",
                    json!({"session_id": s.id, "ip": s.ip, "user_agent": ua}),
                );
            }
        }
    }

    /// A logout, walking away (idle expiry, no event), signing out the other devices, or a
    /// password change and a logout; the device is free again once the session has ended.
    fn end_session(&mut self, u: usize, s: &Session, last: DateTime<Utc>) {
        let id = self.users[u].id.clone();
        let roll: f64 = self.rng.random();
        let t = self.step_between(1_000, 60_000);
        let free_at = if roll < 0.35 {
            // Walks away: idle-expired 30 minutes after the last activity.
            last + Duration::minutes(31)
        } else {
            if roll > 0.998 {
                // About one session in 500: a password every couple of months.
                self.emit(t, Some(&id), "password.changed", json!({"changed_by": id}));
                self.tick();
            } else if roll > 0.97 {
                self.emit(
                    t,
                    Some(&id),
                    "session.revoked",
                    json!({"scope": "all_except", "session_id": s.id, "reason": "user signed out other devices", "revoked_by": id}),
                );
                self.tick();
            }
            let t = self.cursor;
            self.emit(
                t,
                Some(&id),
                "session.logged_out",
                json!({"session_id": s.id}),
            );
            t
        };
        self.users[u].devices[s.device].busy_until = free_at;
    }

    fn login_data(&self, u: usize, s: &Session, method: &str, otp: Option<bool>) -> Value {
        let user = &self.users[u];
        let device = &user.devices[s.device];
        json!({
            "session_id": s.id,
            "login_method": method,
            "expires_at": ts(s.expires_at),
            "identifier": user.email,
            "refresh_token_id": s.refresh_token_id,
            "ip": s.ip,
            "user_agent": device.model.user_agent,
            "device_id": device.device_id,
            "device_name": device.model.label,
            "otp_required": user.privileged(),
            "otp_verified": otp,
            "roles": user.role.roles(),
        })
    }

    /// A login from the scenario's time: maybe a typo first, OTP for admins, success; the
    /// device is busy until the session's expiry (the scenario shortens that when it ends).
    fn login_at(&mut self, u: usize, device: usize, ip: &'static str, method: &str) -> Session {
        let privileged = self.users[u].privileged();
        self.typo(u, device, ip, method);
        let session = self.new_session(device, ip);
        if privileged {
            self.otp_ok(u, &session.id);
        }
        self.succeed(u, &session, method, privileged.then_some(true));
        session
    }

    /// A fresh session on `device` from the scenario's time.
    fn new_session(&mut self, device: usize, ip: &'static str) -> Session {
        let t = self.tick();
        let lifetime = if self.rng.random_bool(0.8) {
            Duration::hours(12)
        } else {
            Duration::hours(1)
        };
        Session {
            id: self.token("sess"),
            refresh_token_id: self.token("rt"),
            device,
            ip,
            expires_at: t + lifetime,
        }
    }

    /// A mistyped password (or, now and then, email) before a password login.
    fn typo(&mut self, u: usize, device: usize, ip: &'static str, method: &str) {
        if method != "password" || !self.rng.random_bool(self.users[u].typo_rate) {
            return;
        }
        let (id, email) = (self.users[u].id.clone(), self.users[u].email.clone());
        let ua = self.users[u].devices[device].model.user_agent;
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

    /// A one-time code sent and entered.
    fn otp_ok(&mut self, u: usize, sid: &str) {
        let id = self.users[u].id.clone();
        let channel = *["totp", "email", "sms"].choose(&mut self.rng).expect("3");
        let t = self.cursor;
        self.emit(
            t,
            Some(&id),
            "otp.sent",
            json!({"channel": channel, "session_id": sid}),
        );
        let t = self.step_between(4_000, 25_000);
        self.emit(
            t,
            Some(&id),
            "otp.verified",
            json!({"channel": channel, "session_id": sid}),
        );
        self.step(300);
    }

    /// The successful login; a first login on a device with an id sometimes trusts it.
    fn succeed(&mut self, u: usize, s: &Session, method: &str, otp: Option<bool>) {
        let id = self.users[u].id.clone();
        let t = self.cursor;
        let data = self.login_data(u, s, method, otp);
        self.emit(t, Some(&id), "login.succeeded", data);
        let d = &mut self.users[u].devices[s.device];
        d.busy_until = d.busy_until.max(s.expires_at);
        let trust = !d.trusted && d.device_id.is_some() && self.attack.is_none();
        if trust && self.rng.random_bool(0.3) {
            let t = self.step_between(2_000, 10_000);
            let d = &mut self.users[u].devices[s.device];
            d.trusted = true;
            let data = json!({"device_id": d.device_id, "device_name": d.model.label});
            self.emit(t, Some(&id), "device.trusted", data);
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
            Attack::CredentialStuffing => self.credential_stuffing(),
            Attack::NewCountry => self.new_country(),
            Attack::ImpossibleTravel => self.impossible_travel(),
            Attack::RefreshTokenReuse => self.refresh_token_reuse(),
            Attack::OtpBruteForce => self.otp_brute_force(),
            Attack::SessionHijack => self.session_hijack(),
            Attack::PrivilegedLogin => self.privileged_login(),
            Attack::OffHoursAdmin => self.off_hours_admin(),
        }
    }

    fn failed(&mut self, t: DateTime<Utc>, u: Option<usize>, guess: &str, ip: &str, ua: &str) {
        let (subject, reason) = match u {
            Some(u) => (Some(self.users[u].id.clone()), "bad_password"),
            None => (None, "unknown_user"),
        };
        self.emit(
            t,
            subject.as_deref(),
            "login.failed",
            json!({"identifier": guess, "failure_reason": reason, "login_method": "password", "ip": ip, "user_agent": ua}),
        );
    }

    /// 15–30 failed passwords on one account from one address, then a lock.
    fn brute_force(&mut self) {
        let u = self.rng.random_range(0..self.users.len());
        let (ip, ua) = self.attacker();
        let (id, email) = (self.users[u].id.clone(), self.users[u].email.clone());
        let n = self.rng.random_range(15..=30);
        let mut t = self.tick();
        for _ in 0..n {
            self.failed(t, Some(u), &email, ip, ua);
            t = self.step_between(300, 2_500);
        }
        self.emit(
            t,
            Some(&id),
            "account.locked",
            json!({"reason": format!("{n} failed logins"), "until": ts(t + Duration::minutes(30)), "actor": "system"}),
        );
    }

    /// One address or its /24, one to three passwords each on 20–40 accounts.
    fn password_spray(&mut self) {
        let (ip, ua) = self.attacker();
        let net = self.rng.random_bool(0.5).then(|| {
            let (a, b) = (
                self.rng.random_range(45..=220),
                self.rng.random_range(0..=255),
            );
            format!("{a}.{b}.{}", self.rng.random_range(0..=255))
        });
        let n = self.rng.random_range(20..=40).min(self.users.len() + 5);
        let mut t = self.tick();
        for i in 0..n {
            let from = match &net {
                Some(net) => format!("{net}.{}", self.rng.random_range(1..=254)),
                None => ip.to_owned(),
            };
            let target = (i < self.users.len() && !self.rng.random_bool(0.1))
                .then(|| (i * 7 + 3) % self.users.len());
            let guess = match target {
                Some(u) => self.users[u].email.clone(),
                None => unknown_email(&mut self.rng),
            };
            for _ in 0..self.rng.random_range(1..=3) {
                self.failed(t, target, &guess, &from, ua);
                t = self.step_between(200, 1_500);
            }
        }
    }

    /// Many addresses × many accounts from a leaked list: most fail, a few succeed; one
    /// account is then taken over from a new device in another country.
    fn credential_stuffing(&mut self) {
        let n = self.rng.random_range(25..=60);
        let mut t = self.tick();
        let mut hits = vec![];
        for _ in 0..n {
            let ip = random_ip(&mut self.rng);
            let ua = *catalog::ATTACK_USER_AGENTS
                .choose(&mut self.rng)
                .expect("uas");
            let known = self.rng.random_bool(0.7);
            let u = self.rng.random_range(0..self.users.len());
            if known && hits.len() < 3 && self.rng.random_bool(0.08) {
                let ip: &'static str = catalog::country("RU")
                    .ips
                    .choose(&mut self.rng)
                    .expect("ips");
                self.cursor = t;
                let device = self.attacker_device(u, ua);
                let s = self.new_session(device, ip);
                self.succeed(u, &s, "password", None);
                hits.push(u);
            } else if known {
                let email = self.users[u].email.clone();
                self.failed(t, Some(u), &email, &ip, ua);
            } else {
                let guess = unknown_email(&mut self.rng);
                self.failed(t, None, &guess, &ip, ua);
            }
            t = self.cursor.max(t) + Duration::milliseconds(self.rng.random_range(50..800));
        }
        self.cursor = t;
        let Some(&u) = hits.first() else { return };
        // The takeover: a new device in another country, then the password is changed.
        self.step_between(600_000, 3_600_000);
        let ua = catalog::ATTACK_USER_AGENTS[3];
        let device = self.attacker_device(u, ua);
        let far = self.far_country(u, false);
        let ip = *far.ips.choose(&mut self.rng).expect("ips");
        let s = self.new_session(device, ip);
        self.succeed(u, &s, "password", None);
        let id = self.users[u].id.clone();
        let t = self.step_between(20_000, 120_000);
        self.emit(
            t,
            Some(&id),
            "session.activity",
            json!({"session_id": s.id, "ip": ip, "user_agent": ua}),
        );
        let t = self.step_between(20_000, 120_000);
        self.emit(t, Some(&id), "password.changed", json!({"changed_by": id}));
    }

    /// A device the attacker uses, added to the user's (never picked by normal traffic: it is
    /// busy for good).
    fn attacker_device(&mut self, u: usize, ua: &'static str) -> usize {
        let device_id = format!("dev_{:012x}", self.rng.next_u64() >> 16);
        self.users[u].devices.push(Device {
            model: DeviceModel {
                user_agent: ua,
                label: "Unknown device",
                mobile: false,
            },
            device_id: Some(device_id),
            trusted: false,
            busy_until: DateTime::<Utc>::MAX_UTC,
        });
        self.users[u].devices.len() - 1
    }

    /// A user's own device that is free now (the first one if none is).
    fn free_device(&mut self, u: usize) -> usize {
        let t = self.cursor;
        let free: Vec<usize> = (0..self.users[u].devices.len())
            .filter(|d| self.users[u].devices[*d].busy_until <= t)
            .collect();
        free.choose(&mut self.rng).copied().unwrap_or(0)
    }

    /// A successful login from a country the user never used, on a new device.
    fn new_country(&mut self) {
        let u = self.rng.random_range(0..self.users.len());
        let away = self.far_country(u, false);
        let ip = *away.ips.choose(&mut self.rng).expect("ips");
        let ua = *catalog::ATTACK_USER_AGENTS
            .choose(&mut self.rng)
            .expect("uas");
        let device = self.attacker_device(u, ua);
        self.login_at(u, device, ip, "password");
    }

    /// A login at home, then minutes later one from the other side of the world.
    fn impossible_travel(&mut self) {
        let u = self.rng.random_range(0..self.users.len());
        let home_ip = *self.users[u].home_ips.choose(&mut self.rng).expect("ips");
        let device = self.free_device(u);
        let method = self.users[u].method;
        let s = self.login_at(u, device, home_ip, method);
        let far = self.far_country(u, true);
        let ip = *far.ips.choose(&mut self.rng).expect("ips");
        self.step_between(120_000, 900_000);
        let ua = *catalog::ATTACK_USER_AGENTS
            .choose(&mut self.rng)
            .expect("uas");
        let other = self.attacker_device(u, ua);
        self.login_at(u, other, ip, "password");
        self.logout_later(u, &s);
    }

    /// Ends a session the attack opened on the user's own device after a while.
    fn logout_later(&mut self, u: usize, s: &Session) {
        let id = self.users[u].id.clone();
        let t = self.cursor + Duration::minutes(self.rng.random_range(5..60));
        self.emit(
            t,
            Some(&id),
            "session.logged_out",
            json!({"session_id": s.id}),
        );
        let d = &mut self.users[u].devices[s.device];
        d.busy_until = t;
    }

    fn refreshed(&mut self, u: usize, s: &Session, previous: &str, ip: &str, ua: &str) -> String {
        let id = self.users[u].id.clone();
        let next = self.token("rt");
        let t = self.cursor;
        self.emit(
            t,
            Some(&id),
            "token.refreshed",
            json!({"session_id": s.id, "refresh_token_id": next, "previous_refresh_token_id": previous, "expires_at": ts((t + Duration::hours(1)).min(s.expires_at)), "ip": ip, "user_agent": ua}),
        );
        next
    }

    /// A refresh token presented a second time after it was rotated, from another address.
    fn refresh_token_reuse(&mut self) {
        let u = self.rng.random_range(0..self.users.len());
        let device = self.free_device(u);
        let ip = self.user_ip(u);
        let method = self.users[u].method;
        let s = self.login_at(u, device, ip, method);
        let ua = self.users[u].devices[device].model.user_agent;
        // The legitimate client rotates rt1 → rt2 ...
        let stolen = s.refresh_token_id.clone();
        self.step_between(60_000, 600_000);
        self.refreshed(u, &s, &stolen, ip, ua);
        // ... then a thief presents rt1 again from elsewhere.
        let (thief_ip, thief_ua) = self.attacker();
        self.step_between(30_000, 600_000);
        self.refreshed(u, &s, &stolen, thief_ip, thief_ua);
        let id = self.users[u].id.clone();
        let t = self.step(200);
        self.emit(
            t,
            Some(&id),
            "session.revoked",
            json!({"scope": "one", "session_id": s.id, "reason": "refresh token reuse detected", "revoked_by": "system"}),
        );
        self.users[u].devices[device].busy_until = t;
    }

    /// A session's refresh and activity from a device other than the session's.
    fn session_hijack(&mut self) {
        let u = self.rng.random_range(0..self.users.len());
        let device = self.free_device(u);
        let ip = self.user_ip(u);
        let method = self.users[u].method;
        let s = self.login_at(u, device, ip, method);
        let id = self.users[u].id.clone();
        let ua = self.users[u].devices[device].model.user_agent;
        let t = self.step_between(30_000, 300_000);
        self.emit(
            t,
            Some(&id),
            "session.activity",
            json!({"session_id": s.id, "ip": ip, "user_agent": ua}),
        );
        // The stolen cookie and refresh token, replayed from the thief's machine.
        let (thief_ip, thief_ua) = self.attacker();
        self.step_between(60_000, 600_000);
        self.refreshed(u, &s, &s.refresh_token_id, thief_ip, thief_ua);
        for _ in 0..self.rng.random_range(2..=6) {
            let t = self.step_between(5_000, 60_000);
            self.emit(
                t,
                Some(&id),
                "session.activity",
                json!({"session_id": s.id, "ip": thief_ip, "user_agent": thief_ua}),
            );
        }
        self.logout_later(u, &s);
    }

    /// A privileged account (a user is promoted when the population has none).
    fn some_admin(&mut self) -> usize {
        let admins: Vec<usize> = (0..self.users.len())
            .filter(|i| self.users[*i].privileged())
            .collect();
        if let Some(&u) = admins.choose(&mut self.rng) {
            return u;
        }
        let u = self.rng.random_range(0..self.users.len());
        self.users[u].role = Role::Admin;
        u
    }

    /// An admin or super-admin login without OTP, or with OTP from a country never used.
    fn privileged_login(&mut self) {
        let u = self.some_admin();
        let ua = *catalog::ATTACK_USER_AGENTS
            .choose(&mut self.rng)
            .expect("uas");
        let device = self.attacker_device(u, ua);
        if self.rng.random_bool(0.5) {
            let ip = self.users[u].home_ips[0];
            let s = self.new_session(device, ip);
            self.succeed(u, &s, "password", Some(false));
        } else {
            let far = self.far_country(u, false);
            let ip = *far.ips.choose(&mut self.rng).expect("ips");
            self.login_at(u, device, ip, "password");
        }
    }

    /// An admin signs in around 1–4 am their time and works for a while.
    fn off_hours_admin(&mut self) {
        let u = self.some_admin();
        let offset = self.users[u].utc_offset;
        let local = self.cursor + offset;
        let night = local
            .date_naive()
            .and_hms_opt(1, 0, 0)
            .expect("valid")
            .and_utc();
        let night = if night <= local {
            night + Duration::days(1)
        } else {
            night
        };
        self.cursor = night - offset + Duration::minutes(self.rng.random_range(0..180));
        let ua = *catalog::ATTACK_USER_AGENTS
            .choose(&mut self.rng)
            .expect("uas");
        let device = self.attacker_device(u, ua);
        let ip = self.users[u].home_ips[0];
        let s = self.login_at(u, device, ip, "password");
        let id = self.users[u].id.clone();
        for _ in 0..self.rng.random_range(3..=10) {
            let t = self.step_between(10_000, 120_000);
            self.emit(
                t,
                Some(&id),
                "session.activity",
                json!({"session_id": s.id, "ip": ip, "user_agent": ua}),
            );
        }
    }

    /// Many wrong one-time codes in a row on an admin account.
    fn otp_brute_force(&mut self) {
        let u = self.some_admin();
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
    }

    /// A country other than `home`; `far` wants one at least 60 degrees of longitude away.
    fn far_country(&mut self, u: usize, far: bool) -> &'static Country {
        let home = self.users[u].home.code;
        let home_lon = catalog::country(home).longitude;
        let candidates = |fresh: bool| -> Vec<&'static Country> {
            catalog::COUNTRIES
                .iter()
                .filter(|c| c.code != home)
                .filter(|c| !fresh || !self.users[u].visited.contains(&c.code))
                .filter(|c| !far || (c.longitude - home_lon).abs() >= 60.0)
                .collect()
        };
        // Somewhere the account was never used from (by its owner or an earlier intruder).
        let mut options = candidates(true);
        if options.is_empty() {
            options = candidates(false);
        }
        let c = options
            .choose(&mut self.rng)
            .copied()
            .unwrap_or(&catalog::COUNTRIES[0]);
        self.users[u].visited.push(c.code);
        c
    }
}

impl Iterator for Generator {
    type Item = Event;
    fn next(&mut self) -> Option<Event> {
        Some(self.next_labelled().0)
    }
}

fn make_user(rng: &mut ChaCha8Rng, i: usize, start: DateTime<Utc>) -> User {
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
    // One address at home: two addresses of a national ISP pool may be geo-located
    // hundreds of kilometres apart, which would read as impossible travel.
    let home_ips: Vec<&'static str> = home.ips.choose_multiple(rng, 1).copied().collect();
    let n_devices = rng.random_range(1..=3);
    let devices = catalog::DEVICES
        .choose_multiple(rng, n_devices)
        .map(|m| Device {
            model: *m,
            device_id: rng
                .random_bool(0.5)
                .then(|| format!("dev_{:012x}", rng.next_u64() >> 16)),
            trusted: false,
            busy_until: start,
        })
        .collect();
    let role = match rng.random_range(0..120) {
        0..=2 => Role::SuperAdmin,
        3..=10 => Role::Admin,
        _ => Role::User,
    };
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
        utc_offset: Duration::hours((home.longitude / 15.0).round() as i64),
        wake: rng.random_range(6..=9),
        sleep: rng.random_range(21..=23),
        travel: None,
        visited: vec![],
        devices,
        role,
        // Admins work in the product every day.
        weight: if role == Role::User {
            rng.random_range(1..=5)
        } else {
            rng.random_range(3..=5)
        },
        method,
        typo_rate: rng.random_range(0.02..0.08),
    }
}

/// An address no catalogue country holds (no geo in the test database).
fn random_ip(rng: &mut ChaCha8Rng) -> String {
    format!(
        "{}.{}.{}.{}",
        rng.random_range(45..=220),
        rng.random_range(0..=255),
        rng.random_range(0..=255),
        rng.random_range(1..=254)
    )
}

/// An address an attacker might guess.
fn unknown_email(rng: &mut ChaCha8Rng) -> String {
    let local = ["admin", "root", "test", "info", "support", "sales", "hr"]
        .choose(rng)
        .expect("7");
    format!("{local}{}@example.com", rng.random_range(0..100))
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
