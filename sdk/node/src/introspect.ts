/**
 * {@link Introspector}: asks authtrail whether a session is active now
 * (`POST /api/v1/sessions/introspect`), with an optional short TTL cache.
 */
import { AuthtrailHttpClient, type HttpClientOptions } from "./http";

/** What authtrail knows about an active session. */
export interface ActiveSession {
  active: true;
  session_id: string;
  /** The user id (`sub`). */
  user: string;
  /** When the session stops being active without further events (RFC 3339). */
  expires_at: string;
  created_at?: string;
  last_activity_at?: string;
  login_method?: string | null;
  roles?: string[];
  trusted_device?: boolean;
  suspicious?: boolean;
  [member: string]: unknown;
}

/** The answer: exactly `{ active: false }` for anything not active, or the active session. */
export type Introspection = ActiveSession | { active: false };

/** Options of {@link Introspector}. */
export interface IntrospectorOptions extends HttpClientOptions {
  /**
   * Cache answers this long, in ms (default 0: no cache). An active answer is never kept past
   * the session's `expires_at`. A logout or revocation shows only after the TTL (unless the
   * hooks call {@link Introspector.invalidate}), so keep it short: a few seconds.
   */
  cacheTtlMs?: number;
  /** Most sessions cached (default 10 000); the oldest entries go first. */
  cacheMax?: number;
}

const INACTIVE: Introspection = Object.freeze({ active: false as const });

/** authtrail's introspection, the seed's `validateSession`, done against the audit log. */
export class Introspector {
  private readonly client: AuthtrailHttpClient;
  private readonly ttlMs: number;
  private readonly max: number;
  private readonly cache = new Map<string, { until: number; answer: Introspection }>();

  constructor(options: IntrospectorOptions) {
    // Introspection is fast and read-only: fewer, quicker retries than publishing.
    this.client = new AuthtrailHttpClient({ retries: 1, timeoutMs: 5_000, ...options });
    this.ttlMs = Math.max(0, options.cacheTtlMs ?? 0);
    this.max = Math.max(1, options.cacheMax ?? 10_000);
  }

  /** Whether `sessionId` is active now. Throws AuthtrailHttpError / AuthtrailUnavailableError. */
  async introspect(sessionId: string): Promise<Introspection> {
    if (sessionId === "") return INACTIVE;
    const now = Date.now();
    const hit = this.cache.get(sessionId);
    if (hit !== undefined) {
      if (hit.until > now) return hit.answer;
      this.cache.delete(sessionId);
    }
    const body: unknown = await this.client.postJson(
      "/api/v1/sessions/introspect",
      JSON.stringify({ session_id: sessionId }),
      "application/json",
      "introspecting a session",
    );
    const answer = parse(body);
    if (this.ttlMs > 0) this.remember(sessionId, answer, now);
    return answer;
  }

  /** Forgets the cached answer for one session (call it on logout, revocation). */
  invalidate(sessionId: string): void {
    this.cache.delete(sessionId);
  }

  /** Forgets every cached answer. */
  clear(): void {
    this.cache.clear();
  }

  private remember(sessionId: string, answer: Introspection, now: number): void {
    let until = now + this.ttlMs;
    if (answer.active) {
      const expires = Date.parse(answer.expires_at);
      if (!Number.isNaN(expires)) until = Math.min(until, expires);
    }
    if (until <= now) return;
    if (this.cache.size >= this.max) {
      const oldest = this.cache.keys().next();
      if (oldest.done !== true) this.cache.delete(oldest.value);
    }
    this.cache.set(sessionId, { until, answer });
  }
}

function parse(body: unknown): Introspection {
  if (body === null || typeof body !== "object") throw new TypeError("introspection answer is not an object");
  const b = body as Record<string, unknown>;
  if (b["active"] === true && typeof b["session_id"] === "string" && typeof b["user"] === "string") {
    return b as ActiveSession;
  }
  if (b["active"] === false) return INACTIVE;
  throw new TypeError("introspection answer has no boolean `active` with session_id and user");
}
