//! Event types and the closed vocabularies used inside `data`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $s:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
        pub enum $name { $(#[serde(rename = $s)] $variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The wire spelling.
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $s),+ }
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($s => Ok($name::$variant),)+
                    other => Err(format!(
                        "unknown value {other:?}; expected one of: {}",
                        [$($s),+].join(", ")
                    )),
                }
            }
        }
    };
}

string_enum! {
    /// The CloudEvents `type` attribute: exactly these strings.
    EventType {
        LoginSucceeded = "login.succeeded",
        LoginFailed = "login.failed",
        TokenRefreshed = "token.refreshed",
        SessionActivity = "session.activity",
        SessionLoggedOut = "session.logged_out",
        SessionRevoked = "session.revoked",
        OtpSent = "otp.sent",
        OtpVerified = "otp.verified",
        OtpFailed = "otp.failed",
        DeviceTrusted = "device.trusted",
        DeviceUntrusted = "device.untrusted",
        DeviceRenamed = "device.renamed",
        PasswordChanged = "password.changed",
        AccountLocked = "account.locked",
        AccountUnlocked = "account.unlocked",
        AdminAction = "admin.action",
        SecurityEventReviewed = "security_event.reviewed",
    }
}

impl EventType {
    /// Whether the event may omit `subject`. Only a failed login may, and only for an unknown user
    /// (see [`crate::parse`]): every other fact belongs to a known account.
    pub const fn subject_optional(self) -> bool {
        matches!(self, EventType::LoginFailed)
    }
}

string_enum! {
    /// How the user authenticated.
    LoginMethod {
        Password = "password",
        Microsoft = "microsoft",
        Sso = "sso",
        ApiKey = "api_key",
        TestLogin = "test_login",
    }
}

string_enum! {
    /// Why a login attempt failed.
    FailureReason {
        BadPassword = "bad_password",
        UnknownUser = "unknown_user",
        AccountLocked = "account_locked",
        OtpFailed = "otp_failed",
        Disabled = "disabled",
        Other = "other",
    }
}

string_enum! {
    /// Which sessions a `session.revoked` event ends.
    RevokeScope {
        One = "one",
        All = "all",
        AllExcept = "all_except",
    }
}

string_enum! {
    /// The channel an one-time password travelled over.
    OtpChannel {
        Email = "email",
        Sms = "sms",
        Totp = "totp",
        Push = "push",
    }
}

string_enum! {
    /// Coarse device class, derived from the user agent at ingest.
    DeviceType {
        Desktop = "desktop",
        Mobile = "mobile",
        Tablet = "tablet",
        Bot = "bot",
        Unknown = "unknown",
    }
}
