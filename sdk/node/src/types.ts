/**
 * The authtrail event contract (events/README.md) as TypeScript types.
 *
 * Every event is one CloudEvents 1.0 object in structured JSON mode. `data` members use the
 * contract's snake_case names, exactly as they travel on the wire.
 */

/** CloudEvents `specversion`. */
export const SPEC_VERSION = "1.0" as const;
/** Version of the `data` shapes this SDK writes. Writers always write the current version. */
export const SCHEMA_VERSION = 1 as const;
/** `datacontenttype` of every event. */
export const DATA_CONTENT_TYPE = "application/json" as const;

/** How the user authenticated. */
export type LoginMethod = "password" | "microsoft" | "sso" | "api_key" | "test_login";
/** Why a login failed. */
export type FailureReason =
  | "bad_password"
  | "unknown_user"
  | "account_locked"
  | "otp_failed"
  | "disabled"
  | "other";
/** Where a one-time code went. */
export type OtpChannel = "email" | "sms" | "totp" | "push";
/** Which sessions a `session.revoked` event ends. */
export type RevokeScope = "one" | "all" | "all_except";

/** The types a publisher may send: everything but what only authtrail appends. */
export const PUBLISHABLE_TYPES = [
  "login.succeeded",
  "login.failed",
  "token.refreshed",
  "session.activity",
  "session.logged_out",
  "session.revoked",
  "otp.sent",
  "otp.verified",
  "otp.failed",
  "device.trusted",
  "device.untrusted",
  "device.renamed",
  "password.changed",
  "account.locked",
  "account.unlocked",
] as const;
/** A type a publisher may send. */
export type PublishableType = (typeof PUBLISHABLE_TYPES)[number];
/** Types appended only by authtrail's own API (`admin.action`, `security_event.reviewed`). */
export const AUTHTRAIL_ONLY_TYPES = ["admin.action", "security_event.reviewed"] as const;
/** Every event type of the contract. */
export type EventType = PublishableType | (typeof AUTHTRAIL_ONLY_TYPES)[number];

/** `login.succeeded`: a session began. */
export interface LoginSucceededData {
  session_id: string;
  login_method: LoginMethod;
  /** RFC 3339; after the event's `time`. */
  expires_at: string;
  identifier?: string;
  refresh_token_id?: string;
  ip?: string;
  user_agent?: string;
  device_id?: string;
  device_name?: string;
  otp_required?: boolean;
  otp_verified?: boolean;
  roles?: string[];
}

/** `login.failed`. */
export interface LoginFailedData {
  identifier: string;
  failure_reason: FailureReason;
  login_method?: LoginMethod;
  ip?: string;
  user_agent?: string;
  device_id?: string;
}

/** `token.refreshed`: the refresh token rotated. */
export interface TokenRefreshedData {
  session_id: string;
  /** The new refresh token's id. */
  refresh_token_id: string;
  /** The id of the refresh token presented; must differ from `refresh_token_id`. */
  previous_refresh_token_id: string;
  expires_at: string;
  ip?: string;
  user_agent?: string;
}

/** `session.activity`. */
export interface SessionActivityData {
  session_id: string;
  ip?: string;
  user_agent?: string;
}

/** `session.logged_out`. */
export interface SessionLoggedOutData {
  session_id: string;
}

/** `session.revoked`. */
export interface SessionRevokedData {
  scope: RevokeScope;
  /** The session revoked (`one`) or kept (`all_except`). */
  session_id?: string;
  reason: string;
  /** Actor id, or `"system"`. */
  revoked_by: string;
}

/** `otp.sent`, `otp.verified`. */
export interface OtpData {
  channel: OtpChannel;
  session_id?: string;
}

/** `otp.failed`. */
export interface OtpFailedData {
  channel: OtpChannel;
  reason?: string;
  session_id?: string;
}

/** `device.trusted`, `device.untrusted`. */
export interface DeviceTrustData {
  device_id: string;
  device_name?: string;
}

/** `device.renamed`. */
export interface DeviceRenamedData {
  device_id: string;
  device_name: string;
}

/** `password.changed`. */
export interface PasswordChangedData {
  changed_by?: string;
}

/** `account.locked`, `account.unlocked`. */
export interface AccountLockData {
  reason: string;
  until?: string;
  actor?: string;
}

/** The `data` shape of each publishable type. */
export interface DataByType {
  "login.succeeded": LoginSucceededData;
  "login.failed": LoginFailedData;
  "token.refreshed": TokenRefreshedData;
  "session.activity": SessionActivityData;
  "session.logged_out": SessionLoggedOutData;
  "session.revoked": SessionRevokedData;
  "otp.sent": OtpData;
  "otp.verified": OtpData;
  "otp.failed": OtpFailedData;
  "device.trusted": DeviceTrustData;
  "device.untrusted": DeviceTrustData;
  "device.renamed": DeviceRenamedData;
  "password.changed": PasswordChangedData;
  "account.locked": AccountLockData;
  "account.unlocked": AccountLockData;
}

/** One authtrail event (CloudEvents 1.0, structured mode). Never carries `publisher`. */
export interface AuthtrailEvent<T extends PublishableType = PublishableType> {
  specversion: typeof SPEC_VERSION;
  /** UUID; the idempotency key. */
  id: string;
  source: string;
  type: T;
  /** RFC 3339, when it happened. */
  time: string;
  /** The user id; absent only for `login.failed` of an unknown user. */
  subject?: string;
  datacontenttype: typeof DATA_CONTENT_TYPE;
  schemaversion: typeof SCHEMA_VERSION;
  data: DataByType[T];
}
