/**
 * Express integration: hooks that publish the login / logout / refresh events of an auth
 * service, and {@link requireActiveSession}, the seed's `validateSession` middleware done through
 * authtrail's introspection.
 *
 * Nothing here ever reads a password, token or one-time code into an event: the hooks take
 * only ids. If your session id is itself a credential (a bearer cookie value), publish
 * {@link sessionIdFrom}(it) instead.
 */
import { createHash } from "node:crypto";
import { isIP } from "node:net";
import type { NextFunction, Request, RequestHandler, Response } from "express";
import {
  loginFailed,
  loginSucceeded,
  sessionActivity,
  sessionLoggedOut,
  tokenRefreshed,
  type LoginFailedOptions,
  type LoginSucceededOptions,
  type TimeInput,
} from "./builders";
import { looksLikeJwt, MAX_KEY_CHARS, MAX_STRING_CHARS, printable, stringFault } from "./contract";
import type { ActiveSession, Introspector } from "./introspect";
import type { Publisher } from "./publisher";
import type { AuthtrailEvent, FailureReason, LoginMethod } from "./types";

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Locals {
      /** Set by {@link requireActiveSession}: the active session authtrail answered with. */
      authtrailSession?: ActiveSession;
    }
  }
}

/**
 * A publishable session id for an app whose session id is itself a secret (a bearer value):
 * `"ex_"` + the first 32 hex digits of its SHA-256. Use the same function wherever the id is
 * published and introspected.
 */
export function sessionIdFrom(secret: string): string {
  return `ex_${createHash("sha256").update(secret, "utf8").digest("hex").slice(0, 32)}`;
}

/** Options of {@link authtrailHooks}. */
export interface AuthtrailHooksOptions {
  /** Where events go (KafkaPublisher or HttpPublisher). */
  publisher: Publisher;
  /** This service, the events' `source`, e.g. `/services/auth-api`. */
  source: string;
  /**
   * true (default): the client IP is `req.ip`, which honours the app's `trust proxy` setting
   * (`app.set("trust proxy", "loopback")` behind a local proxy). false: always the socket's
   * peer address, ignoring `X-Forwarded-For` whatever the app says.
   */
  trustProxy?: boolean;
  /** When given, logout and refresh drop the session's cached introspection answer. */
  introspector?: Introspector;
}

/** What a successful login knows, besides the request. */
export interface OnLoginOptions {
  userId: string;
  sessionId: string;
  loginMethod: LoginMethod;
  expiresAt: TimeInput;
  /** The email or username typed (never the password). */
  identifier?: string;
  deviceId?: string;
  deviceName?: string;
  /** The refresh token's id (jti) or hash — never the token. */
  refreshTokenId?: string;
  otpRequired?: boolean;
  otpVerified?: boolean;
  roles?: string[];
  id?: string;
  time?: TimeInput;
}

/** What a failed login knows. The password typed is never an argument. */
export interface OnLoginFailedOptions {
  identifier: string;
  reason: FailureReason;
  /** The user, when the identifier names one (omit only for `unknown_user`). */
  userId?: string;
  loginMethod?: LoginMethod;
  deviceId?: string;
  id?: string;
  time?: TimeInput;
}

/** A logout or activity. */
export interface OnSessionOptions {
  userId: string;
  sessionId: string;
  id?: string;
  time?: TimeInput;
}

/** A refresh rotates the refresh token (field names of `token.refreshed`). */
export interface OnRefreshOptions extends OnSessionOptions {
  /** The new refresh token's id. */
  refreshTokenId: string;
  /** The presented (old) refresh token's id; must differ. */
  previousRefreshTokenId: string;
  /** When the new credentials expire. */
  expiresAt: TimeInput;
}

/**
 * The hooks; each resolves to the event sent, and rejects (never throws synchronously) when the
 * arguments make an invalid event (EventValidationError) or it could not be published.
 */
export interface AuthtrailHooks {
  onLogin(req: Request, options: OnLoginOptions): Promise<AuthtrailEvent<"login.succeeded">>;
  onLoginFailed(req: Request, options: OnLoginFailedOptions): Promise<AuthtrailEvent<"login.failed">>;
  onLogout(req: Request, options: OnSessionOptions): Promise<AuthtrailEvent<"session.logged_out">>;
  onRefresh(req: Request, options: OnRefreshOptions): Promise<AuthtrailEvent<"token.refreshed">>;
  onActivity(req: Request, options: OnSessionOptions): Promise<AuthtrailEvent<"session.activity">>;
}

/** `::ffff:1.2.3.4` → `1.2.3.4`; anything that is not an IP address → undefined. */
export function normalizeIp(ip: string | undefined): string | undefined {
  if (ip === undefined) return undefined;
  const plain = ip.startsWith("::ffff:") && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip;
  return isIP(plain) === 0 ? undefined : plain;
}

/** The User-Agent without characters the contract refuses, cut to its string limit. */
export function safeUserAgent(ua: string | undefined): string | undefined {
  if (ua === undefined) return undefined;
  // eslint-disable-next-line no-control-regex
  const cleaned = [...ua.replace(/[\u0000-\u001f\u007f-\u009f]/g, " ")].slice(0, MAX_STRING_CHARS).join("").trim();
  return cleaned === "" || stringFault(cleaned) !== undefined ? undefined : cleaned;
}

/**
 * A typed identifier as an event may carry it. It is user input, so the hooks must not fail on
 * it: control and format characters are shown escaped (`\u{202e}`), it is cut to the contract's
 * 320 characters, and something shaped like a token (pasted into the login form) is replaced by
 * `[redacted]`.
 */
export function safeIdentifier(identifier: string): string {
  if (looksLikeJwt(identifier)) return "[redacted]";
  const shown = [...printable(identifier.trim(), MAX_KEY_CHARS)];
  if (shown.length === 0) return "(empty)";
  return shown.length > MAX_KEY_CHARS ? `${shown.slice(0, MAX_KEY_CHARS - 1).join("")}…` : shown.join("");
}

/** The client's IP and user agent as the events carry them. */
export function clientOf(req: Request, trustProxy = true): { ip?: string; userAgent?: string } {
  const ip = normalizeIp(trustProxy ? req.ip : req.socket?.remoteAddress);
  const userAgent = safeUserAgent(req.get("user-agent"));
  return { ...(ip === undefined ? {} : { ip }), ...(userAgent === undefined ? {} : { userAgent }) };
}

/** Hooks for an Express auth service: call them where the seed's auth service logs history. */
export function authtrailHooks(options: AuthtrailHooksOptions): AuthtrailHooks {
  const { publisher, source, introspector } = options;
  const trustProxy = options.trustProxy ?? true;
  const send = async <E extends AuthtrailEvent>(event: E): Promise<E> => {
    await publisher.publish(event);
    return event;
  };
  return {
    onLogin: async (req, o) => {
      const args: LoginSucceededOptions = {
        ...o,
        ...(o.identifier === undefined ? {} : { identifier: safeIdentifier(o.identifier) }),
        source,
        ...clientOf(req, trustProxy),
      };
      return send(loginSucceeded(args));
    },
    onLoginFailed: async (req, o) => {
      const { reason, ...rest } = o;
      const args: LoginFailedOptions = {
        ...rest,
        identifier: safeIdentifier(rest.identifier),
        failureReason: reason,
        source,
        ...clientOf(req, trustProxy),
      };
      return send(loginFailed(args));
    },
    onLogout: async (_req, o) => {
      const event = await send(sessionLoggedOut({ ...o, source }));
      introspector?.invalidate(o.sessionId);
      return event;
    },
    onRefresh: async (req, o) => {
      const event = await send(tokenRefreshed({ ...o, source, ...clientOf(req, trustProxy) }));
      introspector?.invalidate(o.sessionId);
      return event;
    },
    onActivity: async (req, o) => send(sessionActivity({ ...o, source, ...clientOf(req, trustProxy) })),
  };
}

/** Options of {@link requireActiveSession}. */
export interface RequireActiveSessionOptions {
  introspector: Introspector;
  /** The request's session id (as published), or undefined when it has none. */
  sessionId: (req: Request) => string | undefined;
  /**
   * When authtrail cannot answer: false (default, fail closed) answers 503; true lets the
   * request through without `res.locals.authtrailSession`.
   */
  failOpen?: boolean;
  /** Told about authtrail errors (logging). Receives no credential. */
  onError?: (error: unknown, req: Request) => void;
}

function problem(res: Response, status: number, title: string, detail: string): void {
  res
    .status(status)
    .type("application/problem+json")
    .send(JSON.stringify({ type: "about:blank", title, status, detail }));
}

/**
 * Admits a request only while its session is active in authtrail (not expired, idle, revoked
 * or logged out); puts the session on `res.locals.authtrailSession`. Otherwise answers 401
 * (`application/problem+json`). Fails closed (503) when authtrail is unreachable, unless
 * `failOpen`.
 */
export function requireActiveSession(options: RequireActiveSessionOptions): RequestHandler {
  const { introspector, failOpen = false, onError } = options;
  return (req: Request, res: Response, next: NextFunction): void => {
    let sessionId: string | undefined;
    try {
      sessionId = options.sessionId(req);
    } catch (e) {
      next(e);
      return;
    }
    if (sessionId === undefined || sessionId === "") {
      problem(res, 401, "Unauthorized", "no session");
      return;
    }
    introspector.introspect(sessionId).then(
      (answer) => {
        if (!answer.active) {
          problem(res, 401, "Unauthorized", "the session is not active");
          return;
        }
        res.locals.authtrailSession = answer;
        next();
      },
      (error: unknown) => {
        onError?.(error, req);
        if (failOpen) next();
        else problem(res, 503, "Service Unavailable", "the session could not be checked");
      },
    );
  };
}
