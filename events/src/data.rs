//! The `data` member of each event type, and the value types it is built from.
//!
//! Every struct rejects unknown fields: a misspelt field in an audit record is a bug in the
//! publisher and must surface at the door, not as a silently missing column years later.
//! Value types ([`OpaqueId`], [`NonEmpty`]) parse on deserialisation, so a value of the type is
//! valid by construction.

use crate::kind::{DeviceType, EventType, FailureReason, LoginMethod, OtpChannel, RevokeScope};
use chrono::{DateTime, Utc};
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::net::IpAddr;
use uuid::Uuid;

/// Longest opaque id accepted (bytes). SHA-512 in hex is 128; leave room for prefixes.
pub const MAX_ID_LEN: usize = 200;

/// An opaque identifier: a session id, a refresh-token id (`jti`), a token hash, a device id.
///
/// Never the token itself: values shaped like a JWT (`eyJ…` with two or four dots) are refused,
/// as is anything with characters outside `[A-Za-z0-9._:~+/=-]` or longer than [`MAX_ID_LEN`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OpaqueId(String);

impl OpaqueId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for OpaqueId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.is_empty() {
            return Err("must not be empty".into());
        }
        if s.len() > MAX_ID_LEN {
            return Err(format!(
                "is {} bytes; an id may be at most {MAX_ID_LEN}",
                s.len()
            ));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "._:~+/=-".contains(*c)))
        {
            return Err(format!(
                "contains {c:?}; an id may use only letters, digits and . _ : ~ + / = -"
            ));
        }
        if crate::parse::looks_like_jwt(&s) {
            return Err(crate::parse::RAW_TOKEN_REASON.into());
        }
        Ok(OpaqueId(s))
    }
}

impl From<OpaqueId> for String {
    fn from(id: OpaqueId) -> String {
        id.0
    }
}

impl JsonSchema for OpaqueId {
    fn schema_name() -> Cow<'static, str> {
        "OpaqueId".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "An opaque id or hash (session id, token jti, SHA-256 of a token, device id). Never a raw token: JWT-shaped values are rejected.",
            "minLength": 1,
            "maxLength": MAX_ID_LEN,
            "pattern": "^(?!eyJ[A-Za-z0-9_-]*\\.)[A-Za-z0-9._:~+/=-]+$"
        })
    }
}

/// A string that is not empty and not only white space.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NonEmpty(pub(crate) String);

impl NonEmpty {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for NonEmpty {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.trim().is_empty() {
            Err("must not be empty".into())
        } else {
            Ok(NonEmpty(s))
        }
    }
}

impl From<NonEmpty> for String {
    fn from(s: NonEmpty) -> String {
        s.0
    }
}

impl JsonSchema for NonEmpty {
    fn schema_name() -> Cow<'static, str> {
        "NonEmpty".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "minLength": 1, "pattern": "\\S" })
    }
}

/// Where an IP address was, looked up at ingest and frozen into the event.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Geo {
    /// ISO 3166-1 alpha-2, upper case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latitude: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longitude: Option<f64>,
}

/// What the user agent said about the device, parsed at ingest and frozen into the event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Device {
    #[serde(rename = "type")]
    pub device_type: DeviceType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browser: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browser_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    /// Human-readable, e.g. "Chrome on Windows".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Provenance of the enrichment fields: which databases produced `geo` and `device`, so a reader
/// years later knows what the values were based on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Enrichment {
    /// e.g. "GeoIP2-City-Test" or "DBIP-City-Lite".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geoip_database: Option<String>,
    /// Build date of the GeoIP database (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geoip_build: Option<DateTime<Utc>>,
    /// e.g. "uap-core 0.18.0".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent_parser: Option<String>,
    /// True when `device_id` was derived by authtrail rather than given by the publisher.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id_derived: Option<bool>,
}

/// `login.succeeded`: a session began.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginSucceeded {
    pub session_id: OpaqueId,
    pub login_method: LoginMethod,
    /// When the session's current credentials expire.
    pub expires_at: DateTime<Utc>,
    /// Email or username typed by the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token_id: Option<OpaqueId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<OpaqueId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otp_required: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otp_verified: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<NonEmpty>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geo: Option<Geo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<Device>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrichment: Option<Enrichment>,
}

/// `login.failed`: an attempt that did not start a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginFailed {
    pub identifier: NonEmpty,
    pub failure_reason: FailureReason,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_method: Option<LoginMethod>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<OpaqueId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geo: Option<Geo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<Device>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrichment: Option<Enrichment>,
}

/// `token.refreshed`: the refresh token `previous_refresh_token_id` was presented and rotated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRefreshed {
    pub session_id: OpaqueId,
    /// The new refresh token's id.
    pub refresh_token_id: OpaqueId,
    /// The id of the refresh token that was presented.
    pub previous_refresh_token_id: OpaqueId,
    pub expires_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geo: Option<Geo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<Device>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrichment: Option<Enrichment>,
}

/// `session.activity`: the session was used (for idle timeouts and "last active").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionActivity {
    pub session_id: OpaqueId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geo: Option<Geo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<Device>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrichment: Option<Enrichment>,
}

/// `session.logged_out`: the user ended the session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionLoggedOut {
    pub session_id: OpaqueId,
}

/// `session.revoked`: one session, all of them, or all but one were ended by someone else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionRevoked {
    pub scope: RevokeScope,
    /// The session revoked (`one`) or kept (`all_except`); required for those scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<OpaqueId>,
    pub reason: NonEmpty,
    /// Actor id, or "system".
    pub revoked_by: NonEmpty,
}

/// `otp.sent`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OtpSent {
    pub channel: OtpChannel,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<OpaqueId>,
}

/// `otp.verified`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OtpVerified {
    pub channel: OtpChannel,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<OpaqueId>,
}

/// `otp.failed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OtpFailed {
    pub channel: OtpChannel,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<OpaqueId>,
}

/// `device.trusted` and `device.untrusted`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceTrust {
    pub device_id: OpaqueId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_name: Option<String>,
}

/// `device.renamed`: the user gave one of their devices a name (shown instead of the name parsed
/// from the user agent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceRenamed {
    pub device_id: OpaqueId,
    pub device_name: NonEmpty,
}

/// `password.changed`. Never the password or its hash: only that it changed, and by whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChanged {
    /// Actor id: the user, an admin, or "system" (reset flow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_by: Option<String>,
}

/// `account.locked` and `account.unlocked`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountLock {
    pub reason: NonEmpty,
    /// For a temporary lock: when it lifts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
}

/// `admin.action`: something an administrator read or did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminAction {
    pub action: NonEmpty,
    pub actor: NonEmpty,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Map<String, serde_json::Value>>,
}

/// `security_event.reviewed`: an admin looked at a security event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecurityEventReviewed {
    pub security_event_id: Uuid,
    pub reviewer: NonEmpty,
}

/// The typed `data` of an event; the variant always matches [`crate::Event::event_type`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum EventData {
    LoginSucceeded(LoginSucceeded),
    LoginFailed(LoginFailed),
    TokenRefreshed(TokenRefreshed),
    SessionActivity(SessionActivity),
    SessionLoggedOut(SessionLoggedOut),
    SessionRevoked(SessionRevoked),
    OtpSent(OtpSent),
    OtpVerified(OtpVerified),
    OtpFailed(OtpFailed),
    DeviceTrusted(DeviceTrust),
    DeviceUntrusted(DeviceTrust),
    DeviceRenamed(DeviceRenamed),
    PasswordChanged(PasswordChanged),
    AccountLocked(AccountLock),
    AccountUnlocked(AccountLock),
    AdminAction(AdminAction),
    SecurityEventReviewed(SecurityEventReviewed),
}

/// The one table from event type to data struct; everything that dispatches on the type uses it.
macro_rules! by_type {
    ($m:ident) => {
        $m! {
            LoginSucceeded => LoginSucceeded,
            LoginFailed => LoginFailed,
            TokenRefreshed => TokenRefreshed,
            SessionActivity => SessionActivity,
            SessionLoggedOut => SessionLoggedOut,
            SessionRevoked => SessionRevoked,
            OtpSent => OtpSent,
            OtpVerified => OtpVerified,
            OtpFailed => OtpFailed,
            DeviceTrusted => DeviceTrust,
            DeviceUntrusted => DeviceTrust,
            DeviceRenamed => DeviceRenamed,
            PasswordChanged => PasswordChanged,
            AccountLocked => AccountLock,
            AccountUnlocked => AccountLock,
            AdminAction => AdminAction,
            SecurityEventReviewed => SecurityEventReviewed,
        }
    };
}

macro_rules! impl_dispatch {
    ($($variant:ident => $ty:ident),+ $(,)?) => {
        impl EventData {
            /// The event type this data belongs to.
            pub fn event_type(&self) -> EventType {
                match self { $(EventData::$variant(_) => EventType::$variant),+ }
            }

            /// Types `data` as the struct of `event_type`. The error carries the path of the
            /// offending field relative to `data` (e.g. `session_id`, `roles[2]`).
            pub fn from_value(
                event_type: EventType,
                value: serde_json::Value,
            ) -> Result<Self, (String, String)> {
                fn typed<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Result<T, (String, String)> {
                    serde_path_to_error::deserialize(v).map_err(|e| {
                        let path = e.path().to_string();
                        (if path == "." { String::new() } else { path }, e.into_inner().to_string())
                    })
                }
                Ok(match event_type { $(EventType::$variant => EventData::$variant(typed(value)?)),+ })
            }
        }

        /// The JSON Schema of the `data` member of `event_type`.
        pub fn data_schema(event_type: EventType, generator: &mut SchemaGenerator) -> Schema {
            match event_type { $(EventType::$variant => generator.subschema_for::<$ty>()),+ }
        }
    };
}

by_type!(impl_dispatch);

/// Where and on what an event happened: the client members shared by the events that carry a
/// client (`login.succeeded`, `login.failed`, `token.refreshed`, `session.activity`), read in
/// one shape so that enrichment, normalisation and the projections need no per-type code.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientRef<'a> {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<&'a str>,
    /// Only logins name the device by id.
    pub device_id: Option<&'a OpaqueId>,
    /// The publisher's name for the device (`login.succeeded` only), else the parsed one.
    pub device_name: Option<&'a str>,
    pub geo: Option<&'a Geo>,
    pub device: Option<&'a Device>,
    pub enrichment: Option<&'a Enrichment>,
}

/// The same members, writable (for enrichment at the intake).
#[derive(Debug)]
pub struct ClientMut<'a> {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<&'a str>,
    /// `None` for types without a device id.
    pub device_id: Option<&'a mut Option<OpaqueId>>,
    pub geo: &'a mut Option<Geo>,
    pub device: &'a mut Option<Device>,
    pub enrichment: &'a mut Option<Enrichment>,
}

impl EventData {
    /// The client members, for the types that carry them.
    pub fn client(&self) -> Option<ClientRef<'_>> {
        macro_rules! view {
            ($d:ident, $device_id:expr, $device_name:expr) => {
                ClientRef {
                    ip: $d.ip,
                    user_agent: $d.user_agent.as_deref(),
                    device_id: $device_id,
                    device_name: $device_name.or_else(|| $d.device.as_ref()?.name.as_deref()),
                    geo: $d.geo.as_ref(),
                    device: $d.device.as_ref(),
                    enrichment: $d.enrichment.as_ref(),
                }
            };
        }
        Some(match self {
            EventData::LoginSucceeded(d) => {
                view!(d, d.device_id.as_ref(), d.device_name.as_deref())
            }
            EventData::LoginFailed(d) => view!(d, d.device_id.as_ref(), None),
            EventData::TokenRefreshed(d) => view!(d, None, None),
            EventData::SessionActivity(d) => view!(d, None, None),
            _ => return None,
        })
    }

    /// The client members, writable, for the types that carry them.
    pub fn client_mut(&mut self) -> Option<ClientMut<'_>> {
        macro_rules! slots {
            ($d:ident, $device_id:expr) => {
                ClientMut {
                    ip: $d.ip,
                    user_agent: $d.user_agent.as_deref(),
                    device_id: $device_id,
                    geo: &mut $d.geo,
                    device: &mut $d.device,
                    enrichment: &mut $d.enrichment,
                }
            };
        }
        Some(match self {
            EventData::LoginSucceeded(d) => slots!(d, Some(&mut d.device_id)),
            EventData::LoginFailed(d) => slots!(d, Some(&mut d.device_id)),
            EventData::TokenRefreshed(d) => slots!(d, None),
            EventData::SessionActivity(d) => slots!(d, None),
            _ => return None,
        })
    }
}
