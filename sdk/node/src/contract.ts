/**
 * The contract's rules that JSON Schema does not express (events/README.md, "Strings",
 * "Secrets never enter the log" and the per-type rules), mirrored from authtrail's parser so
 * that an event this SDK sends is one authtrail accepts.
 */

/** One reason an event is refused: a field path (`data.session_id`, `(event)`) and why. */
export interface ContractViolation {
  field: string;
  reason: string;
}

/** Largest event accepted, in UTF-8 bytes. */
export const MAX_EVENT_BYTES = 65536;
/** Longest string value or member name, in characters (code points). */
export const MAX_STRING_CHARS = 2048;
/** Longest `subject` and `identifier`, in characters: they are index keys. */
export const MAX_KEY_CHARS = 320;

/** Member names that announce a secret; authtrail stores only ids and hashes. */
export const SECRET_NAMES: ReadonlySet<string> = new Set([
  "password",
  "passwd",
  "pwd",
  "new_password",
  "old_password",
  "secret",
  "client_secret",
  "otp",
  "otp_code",
  "code",
  "token",
  "access_token",
  "refresh_token",
  "id_token",
  "jwt",
  "api_key",
  "authorization",
  "cookie",
]);

const SECRET_NAME_REASON =
  "names a secret; authtrail never stores passwords, tokens or one-time codes — publish an id or a hash";
const RAW_TOKEN_REASON =
  "looks like a raw JWT; publish the token's id (jti) or a hash of it, never the token";

/** Unicode Cf ranges, the same table as authtrail's parser (Unicode 15/16). */
const FORMAT_CHARS: ReadonlyArray<readonly [number, number]> = [
  [0x00ad, 0x00ad],
  [0x0600, 0x0605],
  [0x061c, 0x061c],
  [0x06dd, 0x06dd],
  [0x070f, 0x070f],
  [0x0890, 0x0891],
  [0x08e2, 0x08e2],
  [0x180e, 0x180e],
  [0x200b, 0x200f],
  [0x202a, 0x202e],
  [0x2060, 0x2064],
  [0x2066, 0x206f],
  [0xfeff, 0xfeff],
  [0xfff9, 0xfffb],
  [0x110bd, 0x110bd],
  [0x110cd, 0x110cd],
  [0x13430, 0x1343f],
  [0x1bca0, 0x1bca3],
  [0x1d173, 0x1d17a],
  [0xe0001, 0xe0001],
  [0xe0020, 0xe007f],
];

function isControl(cp: number): boolean {
  return cp <= 0x1f || (cp >= 0x7f && cp <= 0x9f);
}

function isFormat(cp: number): boolean {
  return FORMAT_CHARS.some(([lo, hi]) => cp >= lo && cp <= hi);
}

function codePoint(cp: number): string {
  return `U+${cp.toString(16).toUpperCase().padStart(4, "0")}`;
}

/**
 * Whether `s` contains something shaped like a compact JWS/JWE: base64url segments joined by two
 * or four dots, the first starting with `eyJ`. Catches `Bearer eyJ…` inside free text too.
 */
export function looksLikeJwt(s: string): boolean {
  return s.split(/[^A-Za-z0-9_.-]/).some((word) => {
    const parts = word.split(".");
    const first = parts[0] ?? "";
    return (
      (parts.length === 3 || parts.length === 5) &&
      first.startsWith("eyJ") &&
      first.length >= 10 &&
      (parts[1] ?? "") !== ""
    );
  });
}

/** Why a string (value or member name) is refused, or undefined when it is fine. */
export function stringFault(s: string): string | undefined {
  let chars = 0;
  for (const ch of s) {
    chars += 1;
    const cp = ch.codePointAt(0) ?? 0;
    if (isControl(cp)) return `contains the control character ${codePoint(cp)}`;
    if (isFormat(cp)) return `contains the format character ${codePoint(cp)}`;
  }
  if (chars > MAX_STRING_CHARS) return `is ${chars} characters; the limit is ${MAX_STRING_CHARS}`;
  if (looksLikeJwt(s)) return RAW_TOKEN_REASON;
  return undefined;
}

/** `s` safe to put in an error message: refused characters escaped, at most `max` characters. */
export function printable(s: string, max = 64): string {
  let out = "";
  let i = 0;
  for (const ch of s) {
    if (i === max) return `${out}…`;
    const cp = ch.codePointAt(0) ?? 0;
    out += isControl(cp) || isFormat(cp) ? `\\u{${cp.toString(16)}}` : ch;
    i += 1;
  }
  return out;
}

/** Walks every member name and string value under `value`, collecting violations. */
function scan(value: unknown, path: string, out: ContractViolation[]): void {
  if (typeof value === "string") {
    const fault = stringFault(value);
    if (fault !== undefined) out.push({ field: path, reason: fault });
  } else if (Array.isArray(value)) {
    value.forEach((v, i) => scan(v, `${path}[${i}]`, out));
  } else if (value !== null && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) {
      const nameFault = stringFault(k);
      if (nameFault !== undefined) {
        out.push({ field: path === "" ? printable(k) : `${path}.${printable(k)}`, reason: nameFault });
        continue;
      }
      const child = path === "" ? k : `${path}.${k}`;
      if (SECRET_NAMES.has(k.toLowerCase())) {
        out.push({ field: child, reason: SECRET_NAME_REASON });
        continue;
      }
      scan(v, child, out);
    }
  }
}

function timeOf(value: unknown): number | undefined {
  if (typeof value !== "string") return undefined;
  const t = Date.parse(value);
  return Number.isNaN(t) ? undefined : t;
}

function yearFault(value: unknown): string | undefined {
  if (typeof value !== "string") return undefined;
  const m = /^(\d{4})-/.exec(value);
  const year = m?.[1] === undefined ? undefined : Number(m[1]);
  return year !== undefined && (year < 1970 || year > 9000)
    ? `year ${year} is outside 1970 to 9000`
    : undefined;
}

/** Per-type rules of authtrail's parser that the JSON Schemas cannot state. */
function typeRules(event: Record<string, unknown>, out: ContractViolation[]): void {
  const data = (event["data"] ?? {}) as Record<string, unknown>;
  const type = event["type"];
  const time = timeOf(event["time"]);
  const yf = yearFault(event["time"]);
  if (yf !== undefined) out.push({ field: "time", reason: yf });
  const after = (field: string): void => {
    const value = data[field];
    const yearProblem = yearFault(value);
    if (yearProblem !== undefined) {
      out.push({ field: `data.${field}`, reason: yearProblem });
      return;
    }
    const t = timeOf(value);
    if (t !== undefined && time !== undefined && !(t > time)) {
      out.push({ field: `data.${field}`, reason: "must be after the event's time" });
    }
  };
  const subject = event["subject"];
  if (typeof subject === "string" && [...subject].length > MAX_KEY_CHARS) {
    out.push({ field: "subject", reason: `is longer than ${MAX_KEY_CHARS} characters` });
  }
  const identifier = data["identifier"];
  if (typeof identifier === "string" && [...identifier].length > MAX_KEY_CHARS) {
    out.push({ field: "data.identifier", reason: `is longer than ${MAX_KEY_CHARS} characters` });
  }
  switch (type) {
    case "login.succeeded":
      after("expires_at");
      break;
    case "token.refreshed":
      after("expires_at");
      if (data["refresh_token_id"] === data["previous_refresh_token_id"]) {
        out.push({
          field: "data.refresh_token_id",
          reason: "must differ from previous_refresh_token_id (a refresh rotates the token)",
        });
      }
      break;
    case "login.failed":
      if (subject === undefined && data["failure_reason"] !== "unknown_user") {
        out.push({
          field: "subject",
          reason: "may be absent only when failure_reason is unknown_user",
        });
      }
      break;
    case "session.revoked":
      if (data["scope"] !== "all" && (data["session_id"] === undefined || data["session_id"] === null)) {
        out.push({ field: "data.session_id", reason: `is required for scope ${String(data["scope"])}` });
      }
      break;
    case "account.locked":
      if (data["until"] !== undefined && data["until"] !== null) after("until");
      break;
    case "account.unlocked": {
      const yu = yearFault(data["until"]);
      if (yu !== undefined) out.push({ field: "data.until", reason: yu });
      break;
    }
    default:
      break;
  }
}

/**
 * The contract rules beyond the JSON Schema: size, strings (length, control and format
 * characters, raw JWTs), secret-named members anywhere, per-type rules. Never echoes a value.
 */
export function contractViolations(event: unknown): ContractViolation[] {
  const out: ContractViolation[] = [];
  if (event === null || typeof event !== "object" || Array.isArray(event)) {
    return [{ field: "(event)", reason: "must be a JSON object" }];
  }
  const bytes = Buffer.byteLength(JSON.stringify(event), "utf8");
  if (bytes > MAX_EVENT_BYTES) {
    out.push({ field: "(event)", reason: `event is ${bytes} bytes; the limit is ${MAX_EVENT_BYTES}` });
  }
  scan(event, "", out);
  typeRules(event as Record<string, unknown>, out);
  return out;
}
