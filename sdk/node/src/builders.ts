/**
 * Event builders: one function per publishable type, from plain camelCase arguments to a
 * validated contract event (snake_case `data`). Each fills in a fresh UUID `id` and `time` = now
 * (UTC, RFC 3339 with `Z`) unless given, `specversion` "1.0", `schemaversion` 1 and
 * `datacontenttype` "application/json", and never sets `publisher`. Every built event is checked
 * against the bundled JSON Schema and the contract's other rules; a bad argument throws
 * {@link EventValidationError} naming the field.
 */
import { randomUUID } from "node:crypto";
import {
  DATA_CONTENT_TYPE,
  SCHEMA_VERSION,
  SPEC_VERSION,
  type AuthtrailEvent,
  type DataByType,
  type FailureReason,
  type LoginMethod,
  type OtpChannel,
  type PublishableType,
  type RevokeScope,
} from "./types";
import { assertValidEvent } from "./validate";

/** A time: a `Date`, or an RFC 3339 string used as given. */
export type TimeInput = Date | string;

/** What every event has beyond its data. */
export interface EnvelopeOptions {
  /** The publishing service, e.g. `/services/auth-api`. */
  source: string;
  /** The event id (UUID, the idempotency key); a fresh random UUID by default. */
  id?: string;
  /** When it happened; now by default. */
  time?: TimeInput;
}

/** An event about one user (`subject`). */
export interface UserEventOptions extends EnvelopeOptions {
  /** The user id (the event's `subject`). */
  userId: string;
}

/** Client facts the intake enriches: GeoIP from `ip`, the device from `userAgent`. */
export interface ClientOptions {
  /** The client's IP address (IPv4 or IPv6). */
  ip?: string;
  /** The `User-Agent` header. */
  userAgent?: string;
}

export interface LoginSucceededOptions extends UserEventOptions, ClientOptions {
  sessionId: string;
  loginMethod: LoginMethod;
  /** When the session's current credentials expire; after `time`. */
  expiresAt: TimeInput;
  /** The email or username typed. */
  identifier?: string;
  /** The refresh token's id (jti) or a hash of it — never the token. */
  refreshTokenId?: string;
  deviceId?: string;
  deviceName?: string;
  otpRequired?: boolean;
  otpVerified?: boolean;
  roles?: string[];
}

export interface LoginFailedOptions extends EnvelopeOptions, ClientOptions {
  /** The user, when the identifier names one; omit only for `unknown_user`. */
  userId?: string;
  /** The email or username typed (never the password). */
  identifier: string;
  failureReason: FailureReason;
  loginMethod?: LoginMethod;
  deviceId?: string;
}

export interface TokenRefreshedOptions extends UserEventOptions, ClientOptions {
  sessionId: string;
  /** The new refresh token's id. */
  refreshTokenId: string;
  /** The id of the refresh token presented (must differ from the new one). */
  previousRefreshTokenId: string;
  /** When the new credentials expire; after `time`. */
  expiresAt: TimeInput;
}

export interface SessionActivityOptions extends UserEventOptions, ClientOptions {
  sessionId: string;
}

export interface SessionLoggedOutOptions extends UserEventOptions {
  sessionId: string;
}

export interface SessionRevokedOptions extends UserEventOptions {
  scope: RevokeScope;
  /** The session revoked (`one`) or kept (`all_except`); required for those scopes. */
  sessionId?: string;
  reason: string;
  /** Actor id, or `"system"`. */
  revokedBy: string;
}

export interface OtpOptions extends UserEventOptions {
  channel: OtpChannel;
  sessionId?: string;
}

export interface OtpFailedOptions extends OtpOptions {
  /** Why, e.g. `code_mismatch` (never the code). */
  reason?: string;
}

export interface DeviceTrustOptions extends UserEventOptions {
  deviceId: string;
  deviceName?: string;
}

export interface DeviceRenamedOptions extends UserEventOptions {
  deviceId: string;
  /** The user's name for the device. */
  deviceName: string;
}

export interface PasswordChangedOptions extends UserEventOptions {
  /** Who changed it (the user, an admin id, `system`). */
  changedBy?: string;
}

export interface AccountLockOptions extends UserEventOptions {
  reason: string;
  until?: TimeInput;
  /** Who locked or unlocked it (`system`, an admin id). */
  actor?: string;
}

/** RFC 3339: a Date as UTC with `Z`; a string as given (validated later). */
export function rfc3339(t: TimeInput): string {
  if (typeof t === "string") return t;
  if (Number.isNaN(t.getTime())) throw new RangeError("invalid Date");
  return t.toISOString();
}

/** `data` without the members left undefined (absent, not null, on the wire). */
function compact<T extends object>(data: T): T {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(data)) if (v !== undefined) out[k] = v;
  return out as T;
}

function optTime(t: TimeInput | undefined): string | undefined {
  return t === undefined ? undefined : rfc3339(t);
}

/** Builds, validates and returns one event. */
function build<T extends PublishableType>(
  type: T,
  opts: EnvelopeOptions,
  subject: string | undefined,
  data: DataByType[T],
): AuthtrailEvent<T> {
  const event: AuthtrailEvent<T> = {
    specversion: SPEC_VERSION,
    id: opts.id ?? randomUUID(),
    source: opts.source,
    type,
    time: rfc3339(opts.time ?? new Date()),
    ...(subject === undefined ? {} : { subject }),
    datacontenttype: DATA_CONTENT_TYPE,
    schemaversion: SCHEMA_VERSION,
    data: compact(data),
  };
  assertValidEvent(event);
  return event;
}

/** `login.succeeded`: a session began. */
export function loginSucceeded(o: LoginSucceededOptions): AuthtrailEvent<"login.succeeded"> {
  return build("login.succeeded", o, o.userId, {
    session_id: o.sessionId,
    login_method: o.loginMethod,
    expires_at: rfc3339(o.expiresAt),
    identifier: o.identifier,
    refresh_token_id: o.refreshTokenId,
    ip: o.ip,
    user_agent: o.userAgent,
    device_id: o.deviceId,
    device_name: o.deviceName,
    otp_required: o.otpRequired,
    otp_verified: o.otpVerified,
    roles: o.roles,
  });
}

/** `login.failed`: without `userId` only for `failureReason: "unknown_user"`. */
export function loginFailed(o: LoginFailedOptions): AuthtrailEvent<"login.failed"> {
  return build("login.failed", o, o.userId, {
    identifier: o.identifier,
    failure_reason: o.failureReason,
    login_method: o.loginMethod,
    ip: o.ip,
    user_agent: o.userAgent,
    device_id: o.deviceId,
  });
}

/** `token.refreshed`: the refresh token rotated. */
export function tokenRefreshed(o: TokenRefreshedOptions): AuthtrailEvent<"token.refreshed"> {
  return build("token.refreshed", o, o.userId, {
    session_id: o.sessionId,
    refresh_token_id: o.refreshTokenId,
    previous_refresh_token_id: o.previousRefreshTokenId,
    expires_at: rfc3339(o.expiresAt),
    ip: o.ip,
    user_agent: o.userAgent,
  });
}

/** `session.activity`: the session was used (keeps it from idling out). */
export function sessionActivity(o: SessionActivityOptions): AuthtrailEvent<"session.activity"> {
  return build("session.activity", o, o.userId, {
    session_id: o.sessionId,
    ip: o.ip,
    user_agent: o.userAgent,
  });
}

/** `session.logged_out`: the user ended the session. */
export function sessionLoggedOut(o: SessionLoggedOutOptions): AuthtrailEvent<"session.logged_out"> {
  return build("session.logged_out", o, o.userId, { session_id: o.sessionId });
}

/** `session.revoked`: one session, all, or all but one were ended by someone else. */
export function sessionRevoked(o: SessionRevokedOptions): AuthtrailEvent<"session.revoked"> {
  return build("session.revoked", o, o.userId, {
    scope: o.scope,
    session_id: o.sessionId,
    reason: o.reason,
    revoked_by: o.revokedBy,
  });
}

/** `otp.sent`: a one-time code went out (never the code). */
export function otpSent(o: OtpOptions): AuthtrailEvent<"otp.sent"> {
  return build("otp.sent", o, o.userId, { channel: o.channel, session_id: o.sessionId });
}

/** `otp.verified`. */
export function otpVerified(o: OtpOptions): AuthtrailEvent<"otp.verified"> {
  return build("otp.verified", o, o.userId, {
    channel: o.channel,
    session_id: o.sessionId,
  });
}

/** `otp.failed`. */
export function otpFailed(o: OtpFailedOptions): AuthtrailEvent<"otp.failed"> {
  return build("otp.failed", o, o.userId, {
    channel: o.channel,
    reason: o.reason,
    session_id: o.sessionId,
  });
}

/** `device.trusted`. */
export function deviceTrusted(o: DeviceTrustOptions): AuthtrailEvent<"device.trusted"> {
  return build("device.trusted", o, o.userId, {
    device_id: o.deviceId,
    device_name: o.deviceName,
  });
}

/** `device.untrusted`. */
export function deviceUntrusted(o: DeviceTrustOptions): AuthtrailEvent<"device.untrusted"> {
  return build("device.untrusted", o, o.userId, {
    device_id: o.deviceId,
    device_name: o.deviceName,
  });
}

/** `device.renamed`: the user named the device. */
export function deviceRenamed(o: DeviceRenamedOptions): AuthtrailEvent<"device.renamed"> {
  return build("device.renamed", o, o.userId, { device_id: o.deviceId, device_name: o.deviceName });
}

/** `password.changed` (never the password). */
export function passwordChanged(o: PasswordChangedOptions): AuthtrailEvent<"password.changed"> {
  return build("password.changed", o, o.userId, { changed_by: o.changedBy });
}

/** `account.locked`. */
export function accountLocked(o: AccountLockOptions): AuthtrailEvent<"account.locked"> {
  return build("account.locked", o, o.userId, {
    reason: o.reason,
    until: optTime(o.until),
    actor: o.actor,
  });
}

/** `account.unlocked`. */
export function accountUnlocked(o: AccountLockOptions): AuthtrailEvent<"account.unlocked"> {
  return build("account.unlocked", o, o.userId, {
    reason: o.reason,
    until: optTime(o.until),
    actor: o.actor,
  });
}

/** Every builder, by name. */
export const builders = {
  loginSucceeded,
  loginFailed,
  tokenRefreshed,
  sessionActivity,
  sessionLoggedOut,
  sessionRevoked,
  otpSent,
  otpVerified,
  otpFailed,
  deviceTrusted,
  deviceUntrusted,
  deviceRenamed,
  passwordChanged,
  accountLocked,
  accountUnlocked,
} as const;

type Builders = typeof builders;

/** The builders with `source` filled in, e.g. `createEvents("/services/auth-api").loginFailed({...})`. */
export type EventFactory = {
  [K in keyof Builders]: (options: Omit<Parameters<Builders[K]>[0], "source">) => ReturnType<Builders[K]>;
};

/** Builders bound to one `source` (the publishing service). */
export function createEvents(source: string): EventFactory {
  const out: Record<string, unknown> = {};
  for (const [name, fn] of Object.entries(builders)) {
    out[name] = (options: object) => (fn as (o: object) => unknown)({ ...options, source });
  }
  return out as EventFactory;
}
