// Screenshots of a running `./dev run` (the demo: simulated traffic, demo sign-in on), for the
// README: `./dev shots` (or `E2E_BASE_URL=http://127.0.0.1:8080 node web/e2e/demo-shots.mjs`).
// Signs in through the demo mint as the admin and as the simulated user with the most recently
// active ordinary session, then captures each page at desktop and phone width into
// E2E_SCREENSHOTS (default docs/screenshots). Every wait is on a condition, never a fixed sleep.

import { chromium } from 'playwright-core';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';

const BASE = (process.env.E2E_BASE_URL || 'http://127.0.0.1:8080').replace(/\/$/, '');
const CHROMIUM = process.env.E2E_CHROMIUM || '/usr/bin/chromium';
const SHOTS = process.env.E2E_SCREENSHOTS || path.resolve('docs/screenshots');
const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 390, height: 844 };

async function json(method, p, { token, body } = {}) {
  const r = await fetch(BASE + p, {
    method,
    headers: {
      ...(token ? { Authorization: `Bearer ${token}` } : {}),
      ...(body ? { 'Content-Type': 'application/json' } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  if (!r.ok) throw new Error(`${method} ${p}: ${r.status} ${await r.text()}`);
  return r.json();
}

const mint = (body) => json('POST', '/ui/demo/token', { body }).then((r) => r.token);

const admin = await mint({ role: 'admin' });
// The user whose session was active last, among sessions on a person's own device (not an
// attacker's): the user pages then show a live "Current session" beside their other devices.
// Of the users active lately, the one with the most devices signed in shows the page best.
const active = await json('GET', '/api/v1/admin/sessions?status=active&limit=200', { token: admin });
const own = active.items.filter((x) => !x.suspicious && x.device_type !== 'bot');
const count = (u) => own.filter((x) => x.user_id === u).length;
const s = own.reduce((best, x) => (!best || count(x.user_id) > count(best.user_id) ? x : best), null);
if (!s) throw new Error('no active session yet: is the simulator running (./dev run)?');
const user = await mint({ role: 'user', sub: s.user_id, sid: s.session_id });

await mkdir(SHOTS, { recursive: true });
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
});

/** Opens `page` with `token` at `viewport`, waits for `ready` (selectors), saves `name`. */
async function capture(name, viewport, token, page, ready) {
  const phone = viewport === PHONE;
  const ctx = await browser.newContext({ viewport, isMobile: phone, hasTouch: phone, reducedMotion: 'reduce' });
  const p = await ctx.newPage();
  p.setDefaultTimeout(30_000);
  const url = token ? `${BASE}/ui/#token=${encodeURIComponent(token)}&page=${page}` : `${BASE}/ui/#/${page}`;
  await p.goto(url);
  for (const sel of ready) await p.waitForSelector(sel);
  await p.screenshot({ path: path.join(SHOTS, `${name}-${phone ? 'phone' : 'desktop'}.png`), fullPage: true });
  console.log(`wrote ${name}-${phone ? 'phone' : 'desktop'}.png`);
  await ctx.close();
}

const pages = [
  ['sessions', user, 'sessions', ['#sessions-body[data-state="ready"]']],
  ['history', user, 'history', ['#history-body[data-state="ready"] table']],
  ['admin', admin, 'admin', ['#feed[data-state="ready"] li.event', '#chart-peak[data-rendered="true"]']],
  ['admin-user', admin, `admin/user/${encodeURIComponent(s.user_id)}`, ['#drill-sessions[data-state="ready"]', '#drill-history table']],
  ['signin', null, 'signin', ['#token-form']],
];
try {
  for (const [name, token, page, ready] of pages) {
    for (const viewport of [DESKTOP, PHONE]) await capture(name, viewport, token, page, ready);
  }
  await capture('admin-refused', DESKTOP, user, 'admin', ['#admin-gate [data-state="forbidden"]']);
} finally {
  await browser.close();
}
