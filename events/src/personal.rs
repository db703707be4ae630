//! Personal data in events, and its encrypted form on the log.
//!
//! The members that identify or locate a person — identifier, IP address, user agent and what
//! was parsed from it, city, coordinates, device name — are [`Personal`]. authtrail encrypts them
//! per subject where events enter and keeps only the ciphertext on the log, in the `personaldata`
//! extension attribute ([`Sealed`]); `data` then holds the rest, with [`REDACTED`] in the
//! members that are required. Destroying a subject's key erases these members from every copy of
//! the log at once (crypto-shredding) while the log itself, and its seals, stay unchanged.
//!
//! This module only moves members between `data` and [`Personal`]; the cipher and the keys live
//! in the service (`authtrail::privacy`).

use crate::data::EventData;
use crate::event::Event;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// The CloudEvents extension attribute holding the encrypted [`Personal`] members. Set by
/// authtrail only; publishers never send it.
pub const PERSONAL_ATTRIBUTE: &str = "personaldata";

/// What a required personal member holds while it is encrypted, and for good once its key is
/// destroyed.
pub const REDACTED: &str = "[redacted]";

/// The only cipher: AES-256-GCM, 96-bit nonce first, 128-bit tag last.
const SCHEME: &str = "a256gcm";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// The personal members of one event, in the clear (the plaintext that gets encrypted). Unknown
/// members are ignored, so that a reader older than the writer still opens what it knows.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Personal {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// `data.device_name` (logins, device trust and renames).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latitude: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longitude: Option<f64>,
    /// `data.device` members parsed from the user agent (the device type stays in the clear).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browser: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browser_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_label: Option<String>,
}

impl Personal {
    pub fn is_empty(&self) -> bool {
        *self == Personal::default()
    }
}

/// The encrypted personal members of one event: `a256gcm.<generation>.<base64url(nonce ‖
/// ciphertext ‖ tag)>` on the wire. `generation` names which of the subject's keys sealed it (a
/// forgotten subject who comes back gets a new one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub generation: u32,
    /// Nonce, then ciphertext and tag.
    pub blob: Vec<u8>,
}

impl Sealed {
    pub fn nonce(&self) -> &[u8] {
        &self.blob[..NONCE_LEN]
    }

    pub fn ciphertext(&self) -> &[u8] {
        &self.blob[NONCE_LEN..]
    }

    pub fn new(generation: u32, nonce: [u8; NONCE_LEN], ciphertext: Vec<u8>) -> Sealed {
        let mut blob = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ciphertext);
        Sealed { generation, blob }
    }

    /// The attribute value.
    pub fn encode(&self) -> String {
        use base64::Engine;
        format!(
            "{SCHEME}.{}.{}",
            self.generation,
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&self.blob)
        )
    }

    /// Parses the attribute value; the error is a reason.
    pub fn decode(s: &str) -> Result<Sealed, String> {
        use base64::Engine;
        let mut parts = s.splitn(3, '.');
        let (Some(scheme), Some(generation), Some(blob)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(format!("must be {SCHEME}.<generation>.<base64url>"));
        };
        if scheme != SCHEME {
            return Err(format!("unknown scheme {scheme:?}; only {SCHEME} is known"));
        }
        let generation: u32 = generation
            .parse()
            .ok()
            .filter(|g| *g > 0)
            .ok_or("generation must be a positive integer")?;
        let blob = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(blob)
            .map_err(|_| "ciphertext is not unpadded base64url".to_owned())?;
        if blob.len() < NONCE_LEN + TAG_LEN {
            return Err("ciphertext is shorter than a nonce and a tag".into());
        }
        Ok(Sealed { generation, blob })
    }
}

impl Event {
    /// Moves the personal members out of `data`: optional ones become absent, required ones
    /// (`login.failed` identifier, `device.renamed` name) become [`REDACTED`]. `restore_personal`
    /// with the result gives back the same event.
    pub fn take_personal(&mut self) -> Personal {
        let mut p = Personal::default();
        fn required(s: &mut String) -> Option<String> {
            Some(std::mem::replace(s, REDACTED.to_owned()))
        }
        macro_rules! client {
            ($d:ident) => {{
                p.ip = $d.ip.take();
                p.user_agent = $d.user_agent.take();
                if let Some(g) = &mut $d.geo {
                    p.city = g.city.take();
                    p.latitude = g.latitude.take();
                    p.longitude = g.longitude.take();
                }
                if let Some(dev) = &mut $d.device {
                    p.browser = dev.browser.take();
                    p.browser_version = dev.browser_version.take();
                    p.os = dev.os.take();
                    p.os_version = dev.os_version.take();
                    p.device_label = dev.name.take();
                }
            }};
        }
        match &mut self.data {
            EventData::LoginSucceeded(d) => {
                p.identifier = d.identifier.take();
                p.device_name = d.device_name.take();
                client!(d);
            }
            EventData::LoginFailed(d) => {
                p.identifier = required(&mut d.identifier.0);
                client!(d);
            }
            EventData::TokenRefreshed(d) => client!(d),
            EventData::SessionActivity(d) => client!(d),
            EventData::DeviceTrusted(d) | EventData::DeviceUntrusted(d) => {
                p.device_name = d.device_name.take();
            }
            EventData::DeviceRenamed(d) => p.device_name = required(&mut d.device_name.0),
            _ => {}
        }
        p
    }

    /// Puts members taken by [`Event::take_personal`] back (for a required member, only a
    /// non-empty value replaces the placeholder).
    pub fn restore_personal(&mut self, p: Personal) {
        fn required(slot: &mut String, v: Option<String>) {
            if let Some(v) = v.filter(|v| !v.trim().is_empty()) {
                *slot = v;
            }
        }
        macro_rules! client {
            ($d:ident) => {{
                $d.ip = p.ip;
                $d.user_agent = p.user_agent;
                if let Some(g) = &mut $d.geo {
                    g.city = p.city;
                    g.latitude = p.latitude;
                    g.longitude = p.longitude;
                }
                if let Some(dev) = &mut $d.device {
                    dev.browser = p.browser;
                    dev.browser_version = p.browser_version;
                    dev.os = p.os;
                    dev.os_version = p.os_version;
                    dev.name = p.device_label;
                }
            }};
        }
        match &mut self.data {
            EventData::LoginSucceeded(d) => {
                d.identifier = p.identifier;
                d.device_name = p.device_name;
                client!(d);
            }
            EventData::LoginFailed(d) => {
                required(&mut d.identifier.0, p.identifier);
                client!(d);
            }
            EventData::TokenRefreshed(d) => client!(d),
            EventData::SessionActivity(d) => client!(d),
            EventData::DeviceTrusted(d) | EventData::DeviceUntrusted(d) => {
                d.device_name = p.device_name;
            }
            EventData::DeviceRenamed(d) => required(&mut d.device_name.0, p.device_name),
            _ => {}
        }
    }

    /// Whether authtrail encrypts this event's personal members: every event about a subject.
    /// A failed login of an unknown user names no account that could ask to be forgotten, and
    /// its identifier is its partition key, so it stays in the clear.
    pub fn carries_personal_data(&self) -> bool {
        self.subject.is_some()
            && matches!(
                self.data,
                EventData::LoginSucceeded(_)
                    | EventData::LoginFailed(_)
                    | EventData::TokenRefreshed(_)
                    | EventData::SessionActivity(_)
                    | EventData::DeviceTrusted(_)
                    | EventData::DeviceUntrusted(_)
                    | EventData::DeviceRenamed(_)
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login() -> Event {
        crate::parse(
            br#"{"specversion":"1.0","id":"6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0b","source":"auth","type":"login.succeeded","time":"2026-11-25T10:00:00Z","subject":"u1","schemaversion":1,
            "data":{"session_id":"s1","login_method":"password","expires_at":"2026-11-25T11:00:00Z","identifier":"alice@example.com","ip":"203.0.113.9","user_agent":"Mozilla/5.0","device_name":"Alice's phone",
            "geo":{"country_code":"GB","country":"United Kingdom","city":"London","latitude":51.5,"longitude":-0.12},
            "device":{"type":"mobile","browser":"Safari","browser_version":"17","os":"iOS","os_version":"17.1","name":"Safari on iOS"}}}"#,
        )
        .unwrap()
    }

    #[test]
    fn taking_and_restoring_gives_back_the_event() {
        let original = login();
        let mut e = original.clone();
        let p = e.take_personal();
        assert_eq!(p.identifier.as_deref(), Some("alice@example.com"));
        assert_eq!(p.city.as_deref(), Some("London"));
        let text = String::from_utf8(e.to_json_bytes()).unwrap();
        for personal in [
            "alice",
            "203.0.113.9",
            "Mozilla",
            "phone",
            "London",
            "51.5",
            "Safari",
        ] {
            assert!(!text.contains(personal), "{personal} left in {text}");
        }
        assert!(text.contains("United Kingdom") && text.contains("mobile"));
        e.restore_personal(p);
        assert_eq!(e, original);
    }

    #[test]
    fn required_members_hold_the_placeholder() {
        let mut e = crate::parse(
            br#"{"specversion":"1.0","id":"6f1e2d3c-4b5a-4978-8a6b-5c4d3e2f1a0c","source":"auth","type":"login.failed","time":"2026-11-25T10:00:00Z","subject":"u1","schemaversion":1,
            "data":{"identifier":"alice@example.com","failure_reason":"bad_password"}}"#,
        )
        .unwrap();
        let original = e.clone();
        let p = e.take_personal();
        let redacted = crate::parse(&e.to_json_bytes()).unwrap();
        assert_eq!(redacted, e, "the redacted event is valid");
        assert!(String::from_utf8(e.to_json_bytes())
            .unwrap()
            .contains(REDACTED));
        e.restore_personal(p);
        assert_eq!(e, original);
    }

    #[test]
    fn a_sealed_event_may_be_longer_than_a_publishers() {
        let mut e = login();
        e.take_personal();
        // A long user agent, encrypted: more than any one member may hold, and an event beyond
        // the publishers' size limit.
        e.personal = Some(Sealed::new(1, [1; 12], vec![7; 60_000]));
        let bytes = e.to_json_bytes();
        assert!(bytes.len() > crate::MAX_EVENT_BYTES);
        assert_eq!(crate::parse(&bytes).unwrap(), e);
        // Without the attribute the limits hold as before.
        let mut plain = login();
        if let crate::EventData::LoginSucceeded(d) = &mut plain.data {
            d.user_agent = Some("x".repeat(2049));
        }
        assert_eq!(
            crate::parse(&plain.to_json_bytes()).unwrap_err().field,
            "data.user_agent"
        );
    }

    #[test]
    fn sealed_round_trips_and_refuses_garbage() {
        let s = Sealed::new(3, [7; 12], vec![1; 40]);
        assert_eq!(Sealed::decode(&s.encode()).unwrap(), s);
        for bad in [
            "",
            "a256gcm",
            "a256gcm.0.AAAA",
            "x.1.AAAA",
            "a256gcm.1.***",
            "a256gcm.1.AAAA",
        ] {
            assert!(Sealed::decode(bad).is_err(), "{bad}");
        }
    }
}
