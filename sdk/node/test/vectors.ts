/**
 * Test vectors: each example of events/examples rebuilt from plain builder arguments taken from
 * it (same id, time, source, subject and data).
 */
import * as sdk from "../dist/index.js";
import type { Example } from "./helpers.js";

type Data = Record<string, unknown>;
const s = (d: Data, k: string): string => d[k] as string;
const o = <T>(d: Data, k: string): T | undefined => d[k] as T | undefined;

/** Rebuilds an example's event with the matching builder. */
export function rebuild(example: Example): sdk.AuthtrailEvent {
  const e = example.event;
  const d = e.data;
  const env = { source: e["source"] as string, id: e["id"] as string, time: e["time"] as string };
  const userId = e["subject"] as string;
  switch (e.type) {
    case "login.succeeded":
      return sdk.loginSucceeded({
        ...env,
        userId,
        sessionId: s(d, "session_id"),
        loginMethod: d["login_method"] as sdk.LoginMethod,
        expiresAt: s(d, "expires_at"),
        identifier: o(d, "identifier"),
        refreshTokenId: o(d, "refresh_token_id"),
        ip: o(d, "ip"),
        userAgent: o(d, "user_agent"),
        deviceId: o(d, "device_id"),
        deviceName: o(d, "device_name"),
        otpRequired: o(d, "otp_required"),
        otpVerified: o(d, "otp_verified"),
        roles: o(d, "roles"),
      });
    case "login.failed":
      return sdk.loginFailed({
        ...env,
        ...(e["subject"] === undefined ? {} : { userId }),
        identifier: s(d, "identifier"),
        failureReason: d["failure_reason"] as sdk.FailureReason,
        loginMethod: o(d, "login_method"),
        ip: o(d, "ip"),
        userAgent: o(d, "user_agent"),
        deviceId: o(d, "device_id"),
      });
    case "token.refreshed":
      return sdk.tokenRefreshed({
        ...env,
        userId,
        sessionId: s(d, "session_id"),
        refreshTokenId: s(d, "refresh_token_id"),
        previousRefreshTokenId: s(d, "previous_refresh_token_id"),
        expiresAt: s(d, "expires_at"),
        ip: o(d, "ip"),
        userAgent: o(d, "user_agent"),
      });
    case "session.activity":
      return sdk.sessionActivity({
        ...env,
        userId,
        sessionId: s(d, "session_id"),
        ip: o(d, "ip"),
        userAgent: o(d, "user_agent"),
      });
    case "session.logged_out":
      return sdk.sessionLoggedOut({ ...env, userId, sessionId: s(d, "session_id") });
    case "session.revoked":
      return sdk.sessionRevoked({
        ...env,
        userId,
        scope: d["scope"] as sdk.RevokeScope,
        sessionId: o(d, "session_id"),
        reason: s(d, "reason"),
        revokedBy: s(d, "revoked_by"),
      });
    case "otp.sent":
      return sdk.otpSent({ ...env, userId, channel: d["channel"] as sdk.OtpChannel, sessionId: o(d, "session_id") });
    case "otp.verified":
      return sdk.otpVerified({ ...env, userId, channel: d["channel"] as sdk.OtpChannel, sessionId: o(d, "session_id") });
    case "otp.failed":
      return sdk.otpFailed({
        ...env,
        userId,
        channel: d["channel"] as sdk.OtpChannel,
        reason: o(d, "reason"),
        sessionId: o(d, "session_id"),
      });
    case "device.trusted":
      return sdk.deviceTrusted({ ...env, userId, deviceId: s(d, "device_id"), deviceName: o(d, "device_name") });
    case "device.untrusted":
      return sdk.deviceUntrusted({ ...env, userId, deviceId: s(d, "device_id"), deviceName: o(d, "device_name") });
    case "device.renamed":
      return sdk.deviceRenamed({ ...env, userId, deviceId: s(d, "device_id"), deviceName: s(d, "device_name") });
    case "password.changed":
      return sdk.passwordChanged({ ...env, userId, changedBy: o(d, "changed_by") });
    case "account.locked":
      return sdk.accountLocked({ ...env, userId, reason: s(d, "reason"), until: o(d, "until"), actor: o(d, "actor") });
    case "account.unlocked":
      return sdk.accountUnlocked({ ...env, userId, reason: s(d, "reason"), until: o(d, "until"), actor: o(d, "actor") });
    default:
      throw new Error(`no builder for ${e.type}`);
  }
}

/** One fresh event of every publishable type (new id, time now), for conformance runs. */
export function freshEvents(source = "/services/sdk-node-test"): sdk.AuthtrailEvent[] {
  const ev = sdk.createEvents(source);
  const userId = "user-4711";
  const sessionId = "sess_fresh_01";
  const inAnHour = new Date(Date.now() + 3_600_000);
  const ua =
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";
  return [
    ev.loginSucceeded({ userId, sessionId, loginMethod: "password", expiresAt: inAnHour, identifier: "alice@example.com", ip: "81.2.69.142", userAgent: ua, roles: ["user"] }),
    ev.loginFailed({ userId, identifier: "alice@example.com", failureReason: "bad_password", loginMethod: "password", ip: "2001:db8::1" }),
    ev.loginFailed({ identifier: "Nobody@Example.com", failureReason: "unknown_user" }),
    ev.tokenRefreshed({ userId, sessionId, refreshTokenId: "rt_2", previousRefreshTokenId: "rt_1", expiresAt: inAnHour, userAgent: ua }),
    ev.sessionActivity({ userId, sessionId, ip: "81.2.69.142" }),
    ev.sessionLoggedOut({ userId, sessionId }),
    ev.sessionRevoked({ userId, scope: "all", reason: "password_changed", revokedBy: "system" }),
    ev.sessionRevoked({ userId, scope: "one", sessionId, reason: "admin", revokedBy: "admin-1" }),
    ev.otpSent({ userId, channel: "sms", sessionId }),
    ev.otpVerified({ userId, channel: "totp" }),
    ev.otpFailed({ userId, channel: "email", reason: "expired" }),
    ev.deviceTrusted({ userId, deviceId: "dev_1" }),
    ev.deviceUntrusted({ userId, deviceId: "dev_1", deviceName: "Old phone" }),
    ev.deviceRenamed({ userId, deviceId: "dev_1", deviceName: "Work laptop" }),
    ev.passwordChanged({ userId, changedBy: userId }),
    ev.passwordChanged({ userId }),
    ev.accountLocked({ userId, reason: "too_many_failed_logins", until: inAnHour, actor: "system" }),
    ev.accountUnlocked({ userId, reason: "admin", actor: "admin-1" }),
  ];
}
