/**
 * HTTP plumbing shared by {@link HttpPublisher} and the introspector: JSON requests to authtrail
 * with `X-API-Key`, a timeout, bounded retries, and RFC 9457 problem details on errors.
 */

/** An RFC 9457 problem-details body as authtrail sends it (extension members kept). */
export interface ProblemDetails {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  instance?: string;
  /** authtrail's intake: each refused event with its index, field and reason. */
  errors?: Array<{ index?: number; line?: number; field?: string; reason?: string; id?: string }>;
  [extension: string]: unknown;
}

/** authtrail answered 4xx or 5xx. `problem` is the RFC 9457 body when it sent one. */
export class AuthtrailHttpError extends Error {
  override readonly name = "AuthtrailHttpError";
  readonly status: number;
  readonly problem: ProblemDetails | undefined;

  constructor(status: number, problem: ProblemDetails | undefined, what: string) {
    const detail = problem?.detail ?? problem?.title ?? "no problem details";
    super(`${what}: HTTP ${status}: ${detail}`);
    this.status = status;
    this.problem = problem;
  }

  /** Whether trying again may succeed: 5xx, 408 and 429. */
  get retryable(): boolean {
    return this.status >= 500 || this.status === 408 || this.status === 429;
  }
}

/** authtrail could not be reached (network error or timeout). */
export class AuthtrailUnavailableError extends Error {
  override readonly name = "AuthtrailUnavailableError";
  constructor(what: string, options: { cause: unknown }) {
    super(`${what}: authtrail unreachable: ${String((options.cause as Error)?.message ?? options.cause)}`, options);
  }
}

/** Connection settings for authtrail's HTTP API. */
export interface HttpClientOptions {
  /** Base URL of `authtrail serve`, e.g. `http://authtrail:8080`. */
  url: string;
  /** An API key (`X-API-Key`) with the scopes needed (`publish`, `introspect`). */
  apiKey: string;
  /** Per-attempt timeout in ms (default 10 000). */
  timeoutMs?: number;
  /** Retries after the first attempt on 5xx, 408, 429 and network errors (default 3). */
  retries?: number;
  /** First back-off in ms, doubled each retry, with jitter (default 200). */
  retryDelayMs?: number;
  /** A `fetch` implementation (default: the global one). */
  fetch?: typeof fetch;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function readProblem(res: Response): Promise<ProblemDetails | undefined> {
  const text = await res.text().catch(() => "");
  try {
    const body: unknown = JSON.parse(text);
    return body !== null && typeof body === "object" && !Array.isArray(body) ? (body as ProblemDetails) : undefined;
  } catch {
    return undefined;
  }
}

/** A small JSON client for authtrail's HTTP API. */
export class AuthtrailHttpClient {
  readonly baseUrl: string;
  private readonly apiKey: string;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly retryDelayMs: number;
  private readonly fetchImpl: typeof fetch;

  constructor(options: HttpClientOptions) {
    if (!options.url) throw new TypeError("authtrail url is required");
    if (!options.apiKey) throw new TypeError("authtrail apiKey is required");
    this.baseUrl = options.url.replace(/\/+$/, "");
    this.apiKey = options.apiKey;
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.retries = options.retries ?? 3;
    this.retryDelayMs = options.retryDelayMs ?? 200;
    this.fetchImpl = options.fetch ?? fetch;
  }

  /**
   * POSTs `body` to `path` and returns the parsed JSON answer. Retries only when `idempotent`
   * (every call here is: event ids are idempotency keys, introspection reads).
   */
  async postJson(path: string, body: string, contentType: string, what: string): Promise<unknown> {
    let attempt = 0;
    for (;;) {
      try {
        return await this.once(path, body, contentType, what);
      } catch (e) {
        const retryable =
          e instanceof AuthtrailUnavailableError || (e instanceof AuthtrailHttpError && e.retryable);
        if (!retryable || attempt >= this.retries) throw e;
        const backoff = this.retryDelayMs * 2 ** attempt;
        attempt += 1;
        await sleep(backoff / 2 + Math.random() * backoff);
      }
    }
  }

  private async once(path: string, body: string, contentType: string, what: string): Promise<unknown> {
    let res: Response;
    try {
      res = await this.fetchImpl(`${this.baseUrl}${path}`, {
        method: "POST",
        headers: { "content-type": contentType, accept: "application/json", "x-api-key": this.apiKey },
        body,
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (cause) {
      throw new AuthtrailUnavailableError(what, { cause });
    }
    if (!res.ok) throw new AuthtrailHttpError(res.status, await readProblem(res), what);
    try {
      return await res.json();
    } catch (cause) {
      throw new AuthtrailUnavailableError(`${what} (unreadable answer)`, { cause });
    }
  }
}
