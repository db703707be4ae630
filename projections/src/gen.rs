//! A seeded generator of realistic event streams (feature `gen`), for property tests, the
//! crash test and benchmarks. The same seed gives the same events, ids included.
//!
//! It mixes every event type with the situations the rules care about: failure bursts, logins
//! from new countries (geo-located: minutes apart, impossible travel), activity from another
//! user agent than its session's, refresh-token reuse, too many sessions, revocations of every scope,
//! locks, device trust and names, reviews of earlier security events, and times that
//! occasionally run backwards in log order.

use crate::fold::security_event_id;
use authtrail_events::{parse_value, Event};
use chrono::{DateTime, TimeDelta, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use uuid::Uuid;

/// Address, country code, country, city, latitude, longitude (logins minutes apart from two
/// of them are impossible travel).
type Place = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    f64,
    f64,
);
const COUNTRIES: &[Place] = &[
    (
        "81.2.69.142",
        "GB",
        "United Kingdom",
        "London",
        51.51,
        -0.09,
    ),
    ("89.160.20.112", "SE", "Sweden", "Linköping", 58.42, 15.62),
    (
        "216.160.83.56",
        "US",
        "United States",
        "Milton",
        47.25,
        -122.31,
    ),
    (
        "2.125.160.216",
        "GB",
        "United Kingdom",
        "Boxford",
        51.75,
        -1.25,
    ),
    ("67.43.156.0", "BT", "Bhutan", "Thimphu", 27.47, 89.64),
    (
        "202.196.224.0",
        "PH",
        "Philippines",
        "Manila",
        14.60,
        120.98,
    ),
];

struct UserSim {
    id: String,
    home: usize,
    sessions: Vec<(String, String, Vec<String>)>, // (session id, current refresh id, rotated)
}

pub struct StreamGen {
    rng: ChaCha8Rng,
    users: Vec<UserSim>,
    t: DateTime<Utc>,
    counter: u64,
    recent_events: Vec<Uuid>,
}

impl StreamGen {
    pub fn new(seed: u64, users: usize, start: DateTime<Utc>) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let users = (0..users.max(1))
            .map(|i| UserSim {
                id: format!("user-{i:04}"),
                home: rng.random_range(0..COUNTRIES.len()),
                sessions: vec![],
            })
            .collect();
        StreamGen {
            rng,
            users,
            t: start,
            counter: 0,
            recent_events: vec![],
        }
    }

    /// The next `n` events.
    pub fn take(&mut self, n: usize) -> Vec<Event> {
        (0..n).map(|_| self.next_event()).collect()
    }

    fn id(&mut self) -> Uuid {
        self.counter += 1;
        Uuid::from_u64_pair(self.rng.random(), self.counter)
    }

    fn token(&mut self, prefix: &str) -> String {
        format!("{prefix}_{:016x}", self.rng.random::<u64>())
    }

    fn envelope(
        &mut self,
        ty: &str,
        subject: Option<&str>,
        time: DateTime<Utc>,
        data: Value,
    ) -> Event {
        let id = self.id();
        let mut v = json!({
            "specversion": "1.0", "id": id, "source": "/gen", "type": ty,
            "time": time.to_rfc3339(), "schemaversion": 1, "data": data,
        });
        if let Some(s) = subject {
            v["subject"] = json!(s);
        }
        self.recent_events.push(id);
        if self.recent_events.len() > 64 {
            self.recent_events.remove(0);
        }
        parse_value(v).expect("generated events are valid")
    }

    fn place(&mut self, u: usize) -> usize {
        if self.rng.random_bool(0.05) {
            self.rng.random_range(0..COUNTRIES.len())
        } else {
            self.users[u].home
        }
    }

    fn client(&mut self, u: usize, ctry: usize) -> Value {
        let (ip, cc, country, city, lat, lon) = COUNTRIES[ctry];
        let dev = self.rng.random_range(0..3u8);
        let (ty, name) = [
            ("desktop", "Chrome on Windows"),
            ("mobile", "Safari on iOS"),
            ("tablet", "Chrome on Android"),
        ][dev as usize];
        json!({
            "ip": ip, "user_agent": format!("gen-agent/{dev}"), "device_id": format!("dev-{u}-{dev}"),
            "geo": { "country_code": cc, "country": country, "city": city, "latitude": lat, "longitude": lon },
            "device": { "type": ty, "name": name },
        })
    }

    fn next_event(&mut self) -> Event {
        // Time mostly advances; now and then an event is stamped a little in the past.
        self.t += TimeDelta::seconds(self.rng.random_range(0..90));
        let time = if self.rng.random_bool(0.03) {
            self.t - TimeDelta::seconds(self.rng.random_range(1..600))
        } else {
            self.t
        };
        let u = self.rng.random_range(0..self.users.len());
        let user = self.users[u].id.clone();
        let roll = self.rng.random_range(0..100u32);
        let has_session = !self.users[u].sessions.is_empty();
        match roll {
            0..=19 => self.login(u, &user, time),
            20..=31 => self.failed_login(u, &user, time),
            32..=49 if has_session => self.refresh(u, &user, time),
            50..=69 if has_session => {
                let k = self.rng.random_range(0..self.users[u].sessions.len());
                let sid = self.users[u].sessions[k].0.clone();
                // Now and then from another user agent than the session's (a hijack). Decided
                // by the clock, not the RNG, so the streams of a seed stay what they were.
                let mut data = json!({ "session_id": sid, "ip": "81.2.69.142" });
                if self.t.timestamp() % 31 == 0 {
                    data["user_agent"] = json!("curl/8.0");
                }
                self.envelope("session.activity", Some(&user), time, data)
            }
            70..=75 if has_session => {
                let k = self.rng.random_range(0..self.users[u].sessions.len());
                let (sid, _, _) = self.users[u].sessions.remove(k);
                self.envelope(
                    "session.logged_out",
                    Some(&user),
                    time,
                    json!({ "session_id": sid }),
                )
            }
            76..=79 if has_session => {
                let k = self.rng.random_range(0..self.users[u].sessions.len());
                let sid = self.users[u].sessions[k].0.clone();
                let scope = ["one", "all", "all_except"][self.rng.random_range(0..3)];
                let data = json!({ "scope": scope, "session_id": sid, "reason": "user_request", "revoked_by": user });
                self.envelope("session.revoked", Some(&user), time, data)
            }
            80..=84 => {
                let ty = ["otp.sent", "otp.verified", "otp.failed"][self.rng.random_range(0..3)];
                self.envelope(ty, Some(&user), time, json!({ "channel": "email" }))
            }
            85..=87 => self.device_trust(u, &user, time),
            88 => {
                // A person names one of their devices (maybe one no session of theirs used yet).
                let dev = self.rng.random_range(0..4u8);
                let name = ["Work laptop", "Phone", "Home PC"][self.rng.random_range(0..3)];
                self.envelope(
                    "device.renamed",
                    Some(&user),
                    time,
                    json!({ "device_id": format!("dev-{u}-{dev}"), "device_name": name }),
                )
            }
            89 => self.envelope(
                "password.changed",
                Some(&user),
                time,
                json!({ "changed_by": user }),
            ),
            90 => {
                self.users[u].sessions.clear();
                self.envelope("account.locked", Some(&user), time, json!({ "reason": "too_many_failed_logins", "until": (time + TimeDelta::minutes(30)).to_rfc3339(), "actor": "system" }))
            }
            91 => self.envelope(
                "account.unlocked",
                Some(&user),
                time,
                json!({ "reason": "lock_expired" }),
            ),
            92..=94 => self.envelope(
                "admin.action",
                Some(&user),
                time,
                json!({ "action": "users.view", "actor": "admin-1", "target_user": user }),
            ),
            95..=97 if !self.recent_events.is_empty() => self.review(time),
            _ => self.envelope(
                "session.activity",
                Some(&user),
                time,
                json!({ "session_id": format!("unknown-{u}") }),
            ),
        }
    }

    /// A successful login of user `u` opening a new session (admins with OTP).
    fn login(&mut self, u: usize, user: &str, time: DateTime<Utc>) -> Event {
        let sid = self.token("sess");
        let rt = self.token("rt");
        let ctry = self.place(u);
        let mut data = self.client(u, ctry);
        let admin = u % 17 == 0;
        data["session_id"] = json!(sid);
        data["login_method"] = json!(["password", "sso", "microsoft"][self.rng.random_range(0..3)]);
        data["expires_at"] = json!((time + TimeDelta::minutes(15)).to_rfc3339());
        data["identifier"] = json!(format!("{user}@example.com"));
        data["refresh_token_id"] = json!(rt);
        data["roles"] = if admin {
            json!(["admin", "super_admin"])
        } else {
            json!(["user"])
        };
        data["otp_required"] = json!(admin);
        data["otp_verified"] = json!(admin);
        self.users[u].sessions.push((sid, rt, vec![]));
        self.envelope("login.succeeded", Some(user), time, data)
    }

    /// A failed login of user `u`, or (one in five) of a mistyped identifier nobody has.
    fn failed_login(&mut self, u: usize, user: &str, time: DateTime<Utc>) -> Event {
        let ctry = self.place(u);
        let mut data = self.client(u, ctry);
        let unknown = self.rng.random_bool(0.2);
        data["identifier"] = json!(if unknown {
            format!("Typo{}@Example.com", u % 7)
        } else {
            format!("{user}@example.com")
        });
        data["failure_reason"] = json!(if unknown {
            "unknown_user"
        } else {
            "bad_password"
        });
        if self.rng.random_bool(0.3) {
            data.as_object_mut().expect("object").remove("geo");
        }
        self.envelope(
            "login.failed",
            if unknown { None } else { Some(user) },
            time,
            data,
        )
    }

    /// A refresh of one of user `u`'s sessions (which has one); now and then an old refresh
    /// token presented again.
    fn refresh(&mut self, u: usize, user: &str, time: DateTime<Utc>) -> Event {
        let k = self.rng.random_range(0..self.users[u].sessions.len());
        let new = self.token("rt");
        let reuse = self.rng.random_bool(0.04) && !self.users[u].sessions[k].2.is_empty();
        let (sid, cur, rotated) = self.users[u].sessions[k].clone();
        let presented = if reuse {
            rotated[0].clone()
        } else {
            cur.clone()
        };
        if !reuse {
            let s = &mut self.users[u].sessions[k];
            s.2.push(cur);
            s.1 = new.clone();
        }
        let data = json!({ "session_id": sid, "refresh_token_id": new, "previous_refresh_token_id": presented, "expires_at": (time + TimeDelta::minutes(15)).to_rfc3339() });
        self.envelope("token.refreshed", Some(user), time, data)
    }

    /// User `u` trusts (mostly) or untrusts one of their devices.
    fn device_trust(&mut self, u: usize, user: &str, time: DateTime<Utc>) -> Event {
        let ty = if self.rng.random_bool(0.7) {
            "device.trusted"
        } else {
            "device.untrusted"
        };
        let dev = self.rng.random_range(0..3u8);
        self.envelope(
            ty,
            Some(user),
            time,
            json!({ "device_id": format!("dev-{u}-{dev}"), "device_name": "Gen device" }),
        )
    }

    /// An admin's review of a security event one of the recent events caused (or may have).
    fn review(&mut self, time: DateTime<Utc>) -> Event {
        let k = self.rng.random_range(0..self.recent_events.len());
        let kind = [
            "login_success",
            "login_failure",
            "suspicious_activity",
            "admin_action",
        ][self.rng.random_range(0..4)];
        let target = security_event_id(self.recent_events[k], kind);
        // Reviews come from an admin command: keyed by a user other than the event's.
        let reviewer_subject = self.users[self.rng.random_range(0..self.users.len())]
            .id
            .clone();
        self.envelope(
            "security_event.reviewed",
            Some(&reviewer_subject),
            time,
            json!({ "security_event_id": target, "reviewer": "admin-1" }),
        )
    }
}
