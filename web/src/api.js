// The public query API (/api/v1/...) with the bearer token the host page gave us. Nothing else:
// the dashboard has no private route to data.

// The token lives in memory, mirrored in sessionStorage (this tab only, gone when it closes, so
// a reload keeps the sign-in) — never in localStorage, which every tab and script of the origin
// shares and which stays on disk.
const TOKEN_KEY = 'authtrail.token';

// Earlier versions kept the token in localStorage: remove that copy.
try {
  localStorage.removeItem(TOKEN_KEY);
} catch {
  /* no storage (or not a browser) */
}

export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
  }
}

let memoryToken = null;

export function getToken() {
  if (memoryToken) return memoryToken;
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

export function setToken(token) {
  memoryToken = token || null;
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    /* storage disabled: the token lives only as long as the page */
  }
}

function token() {
  return getToken();
}

/** The token's claims, decoded for display only (the API is what checks them). */
export function claims(t = token()) {
  if (!t) return null;
  try {
    const part = t.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const json = decodeURIComponent(
      atob(part)
        .split('')
        .map((c) => '%' + c.charCodeAt(0).toString(16).padStart(2, '0'))
        .join(''),
    );
    return JSON.parse(json);
  } catch {
    return null;
  }
}

export function isAdmin(c = claims()) {
  return !!c && (c.role === 'admin' || c.role === 'super_admin');
}

async function request(method, path, { query, body, signal } = {}) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== '' && v !== false) url.searchParams.set(k, String(v));
  }
  const headers = { Accept: 'application/json' };
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      cache: 'no-store',
    });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, { title: 'Network error', detail: 'the server could not be reached' });
  }
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { detail: text };
  }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

export const api = {
  get: (path, query, opts = {}) => request('GET', path, { ...opts, query }),
  del: (path, query) => request('DELETE', path, { query }),
  post: (path, body, query) => request('POST', path, { body, query }),
  put: (path, body, query) => request('PUT', path, { body, query }),
  /** Every item of a cursor-paginated list (bounded by maxPages). */
  async all(path, query = {}, maxPages = 10) {
    const items = [];
    let cursor;
    for (let i = 0; i < maxPages; i++) {
      const page = await this.get(path, { ...query, limit: query.limit || 500, cursor });
      items.push(...page.items);
      cursor = page.next_cursor;
      if (!cursor) return { items, complete: true };
    }
    return { items, complete: false };
  },
};

/** The page's configuration: `{demo, token_origins}` (see src/web/mod.rs). */
export async function pageConfig() {
  try {
    const res = await fetch('/ui/config', { cache: 'no-store' });
    if (!res.ok) return { demo: false, token_origins: [] };
    return await res.json();
  } catch {
    return { demo: false, token_origins: [] };
  }
}

/** The demo sign-in (only answers when the server runs with web.demo). */
export async function demoConfig() {
  try {
    const res = await fetch('/ui/demo/config', { cache: 'no-store' });
    if (!res.ok) return { demo: false };
    return await res.json();
  } catch {
    return { demo: false };
  }
}

export async function demoToken(body) {
  const res = await fetch('/ui/demo/token', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new ApiError(res.status, data);
  return data.token;
}

/**
 * Server-sent events with the Authorization header: EventSource cannot send headers, so this
 * reads the stream with fetch() and parses the text/event-stream framing itself. Reconnects
 * with backoff until `signal` aborts; `onState` gets 'connecting' | 'live' | 'retrying' | 'denied'.
 */
export async function streamEvents(path, { onEvent, onState, signal }) {
  let backoff = 1000;
  while (!signal.aborted) {
    onState('connecting');
    try {
      const res = await fetch(path, {
        headers: { Accept: 'text/event-stream', Authorization: `Bearer ${token()}` },
        signal,
        cache: 'no-store',
      });
      if (res.status === 401 || res.status === 403) {
        onState('denied', res.status);
        return;
      }
      if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
      onState('live');
      backoff = 1000;
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value.replace(/\r\n?/g, '\n');
        let cut;
        while ((cut = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          let type = 'message';
          const data = [];
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) continue;
            const i = line.indexOf(':');
            const field = i < 0 ? line : line.slice(0, i);
            const val = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
            if (field === 'event') type = val;
            else if (field === 'data') data.push(val);
          }
          if (data.length) {
            try {
              onEvent(type, JSON.parse(data.join('\n')));
            } catch {
              /* not JSON: ignore */
            }
          }
        }
      }
    } catch (e) {
      if (signal.aborted) return;
    }
    if (signal.aborted) return;
    onState('retrying');
    await new Promise((r) => setTimeout(r, backoff));
    backoff = Math.min(backoff * 2, 15000);
  }
}
