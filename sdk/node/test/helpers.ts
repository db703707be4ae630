/** Shared test helpers: repository paths, examples, JWT minting, polling, the authtrail CLI. */
import { spawnSync } from "node:child_process";
import { createHmac } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";

/** sdk/node (tests run from build-test/). */
export const PACKAGE_ROOT = resolve(__dirname, "..");
/** The repository's events/ folder (the contract), overridable with AUTHTRAIL_EVENTS_DIR. */
export const EVENTS_DIR = process.env["AUTHTRAIL_EVENTS_DIR"] ?? resolve(PACKAGE_ROOT, "..", "..", "events");

/** Types only authtrail's API appends: no builder, not publishable. */
export const AUTHTRAIL_ONLY = new Set(["admin.action", "security_event.reviewed"]);

export interface Example {
  file: string;
  event: Record<string, unknown> & { type: string; data: Record<string, unknown> };
}

/** Every events/examples/*.json, parsed. */
export function loadExamples(): Example[] {
  const dir = join(EVENTS_DIR, "examples");
  return readdirSync(dir)
    .filter((f) => f.endsWith(".json"))
    .sort()
    .map((file) => ({ file, event: JSON.parse(readFileSync(join(dir, file), "utf8")) as Example["event"] }));
}

const b64url = (b: Buffer | string): string => Buffer.from(b).toString("base64url");

/** An HS256 JWT with node:crypto. */
export function mintJwt(secret: string, claims: Record<string, unknown>): string {
  const head = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const body = b64url(JSON.stringify(claims));
  const sig = createHmac("sha256", secret).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${sig}`;
}

/**
 * Calls `probe` until it returns a value other than undefined, or throws after `timeoutMs`
 * with the last observation.
 */
export async function pollUntil<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 60_000,
  intervalMs = 250,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = "nothing yet";
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${String(last)}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** The result of `$AUTHTRAIL_BIN validate` on NDJSON lines. */
export interface ValidateRun {
  status: number | null;
  /** Canonical events printed, parsed. */
  events: unknown[];
  stderr: string;
}

/**
 * The environment without `AUTHTRAIL_*`: the binary reads those as configuration overrides
 * (`AUTHTRAIL_API_KEY` would be taken as `api.key` and refused), and `validate` needs none.
 */
function withoutAuthtrailConfig(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { RUST_LOG: "error" };
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("AUTHTRAIL_") && k !== "RUST_LOG") env[k] = v;
  return env;
}

/** Pipes events through `authtrail validate` (NDJSON in, canonical events out). */
export function authtrailValidate(bin: string, lines: readonly string[]): ValidateRun {
  const run = spawnSync(bin, ["validate"], {
    input: lines.join("\n") + "\n",
    encoding: "utf8",
    timeout: 60_000,
    env: withoutAuthtrailConfig(),
  });
  if (run.error) throw run.error;
  const events = run.stdout
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as unknown);
  return { status: run.status, events, stderr: run.stderr };
}

/** snake_case → camelCase. */
export function camel(s: string): string {
  return s.replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase());
}

/** "login.succeeded" → "loginSucceeded", "session.logged_out" → "sessionLoggedOut". */
export function builderName(type: string): string {
  return camel(type.replace(/\./g, "_"));
}
