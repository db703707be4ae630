// End-to-end tests of the dashboard in headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core; no browser download). Started by tests/web_e2e.rs, which spawns the server,
// projects fixtures and passes addresses and tokens in the environment. Exits non-zero on the
// first failure. Writes screenshots of every page at desktop and phone width.
//
// Every wait is on a condition (selectors, attributes, functions), never a fixed sleep.

import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';

function env(k) {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set: run this through tests/web_e2e.rs (./dev test)`);
  return v;
}
const BASE = env('E2E_BASE_URL').replace(/\/$/, '');
const USER = env('E2E_USER');
const USER_TOKEN = env('E2E_USER_TOKEN');
const CURRENT = env('E2E_CURRENT_SID');
const OTHER = env('E2E_OTHER_USER');
const ADMIN_TOKEN = env('E2E_ADMIN_TOKEN');
const API_KEY = env('E2E_API_KEY');
const CHROMIUM = process.env.E2E_CHROMIUM || '/usr/bin/chromium';
const SHOTS = process.env.E2E_SCREENSHOTS || path.resolve('../docs/screenshots');

const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 390, height: 844 };
const T = 15_000; // longest wait for anything

const consoleErrors = [];
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
});
await mkdir(SHOTS, { recursive: true });

async function api(method, p, token, body) {
  const r = await fetch(BASE + p, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

/** A fresh browser context at `viewport`, opened on `page` with the host's `#token=`. */
async function open(viewport, token, page, { allow = [], timeShift = 0 } = {}) {
  const phone = viewport === PHONE;
  const ctx = await browser.newContext({
    viewport,
    timezoneId: 'America/New_York',
    locale: 'en-US',
    isMobile: phone,
    hasTouch: phone,
    reducedMotion: 'reduce',
  });
  // A browser whose clock is `timeShift` ms off the server's (frozen there; timers still run).
  if (timeShift) await ctx.clock.setFixedTime(new Date(Date.now() + timeShift));
  const p = await ctx.newPage();
  p.setDefaultTimeout(T);
  p.on('console', (m) => {
    if (m.type() === 'error' && !allow.some((re) => re.test(m.text()))) consoleErrors.push(`[${page}] ${m.text()}`);
  });
  p.on('pageerror', (e) => consoleErrors.push(`[${page}] ${e.message}`));
  // Name the request behind a "Failed to load resource" console error.
  p.on('response', (r) => {
    if (r.status() >= 400 && !allow.some((re) => re.test(`status of ${r.status()}`))) {
      consoleErrors.push(`[${page}]   (${r.status()} ${r.request().method()} ${r.url()})`);
    }
  });
  const url = token ? `${BASE}/ui/#token=${encodeURIComponent(token)}&page=${page}` : `${BASE}/ui/#/${page}`;
  await p.goto(url);
  return { ctx, page: p };
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

async function noHorizontalScroll(page) {
  // Against the device width: a mobile browser widens its layout viewport to fit wide content.
  const w = page.viewportSize().width;
  const sw = await page.evaluate(() => Math.max(document.documentElement.scrollWidth, document.body.scrollWidth));
  assert.ok(sw <= w, `page scrolls sideways at ${w}px (content ${sw}px wide)`);
}

const results = [];
async function step(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    results.push(`ok   ${name} (${Date.now() - t0} ms)`);
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    console.log(`FAIL ${name}: ${e.stack || e}`);
    await browser.close();
    process.exit(1);
  }
}

const cardIds = (page) => page.$$eval('#session-list [data-session-id]', (els) => els.map((e) => e.dataset.sessionId));

// ---------------------------------------------------------------------------------------------
await step('a user sees exactly the sessions the API returns', async () => {
  const { ctx, page } = await open(DESKTOP, USER_TOKEN, 'sessions');
  await page.waitForSelector('#sessions-body[data-state="ready"]');
  const fromApi = await api('GET', '/api/v1/auth/sessions?limit=500', USER_TOKEN);
  assert.equal(fromApi.status, 200);
  const want = fromApi.body.items.map((s) => s.session_id).sort();
  assert.deepEqual((await cardIds(page)).sort(), want);
  assert.equal(want.length, 4, `the fixture user should have 4 active sessions, has ${want.length}`);
  // The seed's card: name, place, activity, badges.
  const current = page.locator(`[data-session-id="${CURRENT}"]`);
  await assert.doesNotReject(current.getByText('Active now (Current session)').waitFor());
  assert.equal(await current.locator('button[data-action="revoke"]').count(), 0, 'no revoke on the current session');
  assert.match(await current.locator('h3').innerText(), /^Windows PC — Chrome$/);
  const phone = page.locator('[data-session-id="e2e-phone"]');
  // The auth service named the phone when it trusted it ("My laptop"): that name first.
  assert.match(await phone.locator('h3').innerText(), /^My laptop \(iPhone — Safari\)$/);
  assert.match(await phone.innerText(), /Trusted device/);
  assert.match(await phone.innerText(), /Last active 3 hours ago/);
  assert.match(await phone.innerText(), /London, United Kingdom/);
  assert.match(await page.locator('[data-session-id="e2e-mac"] h3').innerText(), /^Mac — Safari$/);
  assert.match(await page.locator('[data-session-id="e2e-android"] h3').innerText(), /^Android phone — Chrome$/);
  // Times carry the viewer's time zone.
  assert.match(await current.locator('time').first().getAttribute('title'), /America\/New_York/);
  // Security notices: what /api/v1/auth/alerts says, among them the sign-ins from new devices.
  await page.waitForSelector('#notices-body[data-state="ready"]');
  const notices = await api('GET', '/api/v1/auth/alerts?limit=20', USER_TOKEN);
  assert.equal(notices.status, 200);
  const shown = await page.$$eval('#notice-list [data-notice-id]', (els) => els.map((e) => e.dataset.noticeId));
  assert.deepEqual(shown, notices.body.items.map((n) => n.id));
  assert.ok(notices.body.items.some((n) => n.kind === 'new_device'), JSON.stringify(notices.body));
  // Every control has an accessible name.
  for (const b of await page.locator('button').all()) {
    if (!(await b.isVisible())) continue;
    const name = (await b.getAttribute('aria-label')) || (await b.innerText());
    assert.ok(name.trim(), 'a button without a name');
  }
  await shot(page, 'sessions-desktop');
  await ctx.close();

  const m = await open(PHONE, USER_TOKEN, 'sessions');
  await m.page.waitForSelector('#sessions-body[data-state="ready"]');
  await noHorizontalScroll(m.page);
  await shot(m.page, 'sessions-phone');
  await m.ctx.close();
});

await step('a user names a device and trusts it, then not, from the Active sessions page', async () => {
  const { ctx, page } = await open(DESKTOP, USER_TOKEN, 'sessions');
  await page.waitForSelector('#sessions-body[data-state="ready"]');
  // The header names the person by their sign-in identifier, not by the user id.
  await page.waitForFunction(() => document.querySelector('#who .whoami-name')?.textContent === 'e2e-user@example.com');
  const card = page.locator('[data-session-id="e2e-mac"]');
  await card.getByRole('button', { name: 'Rename Mac — Safari' }).click();
  const input = card.getByLabel('Device name');
  await input.fill('Work Mac');
  await input.press('Enter');
  await page.waitForFunction(() => /^Work Mac/.test(document.querySelector('[data-session-id="e2e-mac"] h3')?.textContent || ''));
  assert.match(await card.locator('h3').innerText(), /^Work Mac \(Mac — Safari\)$/);
  let s = await api('GET', '/api/v1/auth/sessions/e2e-mac', USER_TOKEN);
  assert.equal(s.body.custom_name, 'Work Mac');
  assert.equal(s.body.trusted_device, false);
  assert.match(await page.locator('#status').innerText(), /renamed to Work Mac/);
  await card.getByRole('button', { name: 'Trust Work Mac' }).click();
  await card.getByText('Trusted device').waitFor();
  s = await api('GET', '/api/v1/auth/sessions/e2e-mac', USER_TOKEN);
  assert.equal(s.body.trusted_device, true);
  await shot(page, 'sessions-trusted-desktop');
  await card.getByRole('button', { name: 'Stop trusting Work Mac' }).click();
  await card.getByRole('button', { name: 'Trust Work Mac' }).waitFor();
  assert.equal(await card.getByText('Trusted device').count(), 0);
  s = await api('GET', '/api/v1/auth/sessions/e2e-mac', USER_TOKEN);
  assert.equal(s.body.trusted_device, false);
  assert.equal(s.body.custom_name, 'Work Mac', 'the name outlives the trust');
  await ctx.close();
});

await step('nothing is shown as happening in the future, even to a browser whose clock is behind', async () => {
  // Three hours behind: the sessions of the last three hours are "in the future" to it.
  const { ctx, page } = await open(DESKTOP, USER_TOKEN, 'sessions', { timeShift: -3 * 3600_000 });
  await page.waitForSelector('#sessions-body[data-state="ready"]');
  const rel = await page.$$eval('time[data-rel]', (els) => els.map((e) => e.textContent));
  assert.ok(rel.length > 0, 'no relative times on the page');
  for (const r of rel) assert.doesNotMatch(r, /^in /, `a time in the future: ${rel.join(', ')}`);
  assert.ok(rel.includes('just now'), rel.join(', '));
  await ctx.close();
});

await step('login history: newest first, paginated with the API cursors', async () => {
  const { ctx, page } = await open(DESKTOP, USER_TOKEN, 'history');
  await page.waitForSelector('#history-body[data-state="ready"] table');
  const first = await api('GET', '/api/v1/auth/login-history?limit=20', USER_TOKEN);
  const rows = () => page.$$eval('tr[data-attempt-id]', (els) => els.map((e) => e.dataset.attemptId));
  assert.deepEqual(await rows(), first.body.items.map((a) => a.id));
  const times = await page.$$eval('tr[data-attempt-id] time:first-of-type', (els) => els.map((e) => e.getAttribute('datetime')));
  assert.deepEqual([...times].sort().reverse(), times, 'newest first');
  assert.ok(first.body.next_cursor, 'the fixture user has more than one page of attempts');
  assert.match(await page.locator('tbody').innerText(), /Failed/);
  await shot(page, 'history-desktop');
  await page.getByRole('button', { name: 'Older →' }).click();
  await page.waitForFunction(() => document.getElementById('page-no').textContent === 'Page 2');
  await page.waitForSelector('#history-body[data-state="ready"] table');
  const second = await api('GET', `/api/v1/auth/login-history?limit=20&cursor=${encodeURIComponent(first.body.next_cursor)}`, USER_TOKEN);
  assert.deepEqual(await rows(), second.body.items.map((a) => a.id));
  await page.getByRole('button', { name: '← Newer' }).click();
  await page.waitForFunction(() => document.getElementById('page-no').textContent === 'Page 1');
  await ctx.close();

  const m = await open(PHONE, USER_TOKEN, 'history');
  await m.page.waitForSelector('#history-body[data-state="ready"] table');
  await noHorizontalScroll(m.page);
  await shot(m.page, 'history-phone');
  await m.ctx.close();
});

let admin;
await step('admin: every chart, panel and statistic renders with data; the feed is live', async () => {
  admin = await open(DESKTOP, ADMIN_TOKEN, 'admin');
  const page = admin.page;
  await page.waitForSelector('#admin-content:not([hidden])');
  await page.waitForSelector('#feed[data-state="ready"] li.event');
  await page.waitForSelector('#live[data-live="live"]');
  for (const id of ['chart-logins', 'chart-geo', 'chart-devices', 'chart-ips']) {
    await page.waitForSelector(`#${id}[data-rendered="true"]`);
    const points = Number(await page.getAttribute(`#${id}`, 'data-points'));
    assert.ok(points > 0, `${id} has no data`);
    const painted = await page.$eval(`#${id} canvas`, (c) => {
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
      return n;
    });
    assert.ok(painted > 500, `${id} drew nothing (${painted} pixels)`);
  }
  // Peak usage times: a weekday × hour grid in the viewer's zone, exactly the API's counts.
  await page.waitForSelector('#chart-peak[data-rendered="true"]');
  assert.equal(await page.getAttribute('#chart-peak', 'data-tz'), 'America/New_York');
  assert.match(await page.locator('#chart-peak figcaption').innerText(), /America\/New_York/);
  const cells = await page.$$eval('#chart-peak td[data-logins]', (els) =>
    els.map((e) => [Number(e.dataset.weekday), Number(e.dataset.hour), Number(e.dataset.logins)]),
  );
  assert.equal(cells.length, 7 * 24);
  const peak = await api('GET', '/api/v1/admin/stats/peak-hours?days=30&tz=America%2FNew_York', ADMIN_TOKEN);
  assert.equal(peak.status, 200);
  const want = peak.body.cells.filter((c) => c.logins > 0).map((c) => [c.weekday, c.hour, c.logins]);
  assert.ok(want.length > 0, 'no logins in the peak usage times');
  assert.deepEqual(cells.filter((c) => c[2] > 0), want);
  assert.ok(await page.locator('#chart-peak td.l4').count() > 0, 'the busiest hour is not the darkest');
  await page.waitForSelector('#session-stats[data-state="ready"]');
  assert.ok(Number(await page.locator('#st-active .v').innerText().then((t) => t.replace('+', ''))) > 0);
  // The statistics cover 30 days unless the viewer picks another period; the charts follow.
  await page.waitForSelector('#session-stats[data-days="30"]');
  assert.equal(await page.getAttribute('#chart-logins', 'data-days'), '30');
  await page.selectOption('#stats-days', '7');
  await page.waitForSelector('#session-stats[data-days="7"]');
  await page.waitForSelector('#chart-logins[data-days="7"]');
  assert.equal(await page.locator('#st-total .l').innerText(), 'Logins (7 days)');
  await page.waitForFunction(() => !document.querySelector('.panels [data-state="loading"]'));
  for (const id of ['panel-failed', 'panel-suspicious', 'panel-super']) {
    assert.ok(await page.locator(`#${id} li`).count() > 0, `${id} is empty`);
  }
  assert.match(await page.locator('#panel-super').innerText(), /Super-admin login — admin@example\.com \(OTP verified\)/);
  // The seed's wording in the feed, with severity icons.
  const feedText = await page.locator('#feed').innerText();
  assert.match(feedText, /Super-admin login — admin@example\.com \(OTP verified\)/);
  assert.match(feedText, /New device trusted/);
  assert.ok(await page.locator('#feed .sev[role="img"][aria-label]').count() > 0);
});

await step('admin: a brute-force burst published now appears in the live feed within seconds', async () => {
  const page = admin.page;
  const now = Date.now();
  const events = Array.from({ length: 5 }, (_, i) => ({
    specversion: '1.0',
    id: randomUUID(),
    source: '/e2e/brute-force',
    type: 'login.failed',
    time: new Date(now - (5 - i) * 1000).toISOString(),
    subject: 'e2e-victim',
    datacontenttype: 'application/json',
    schemaversion: 1,
    data: {
      identifier: 'brute-force@example.com',
      failure_reason: 'bad_password',
      login_method: 'password',
      ip: '81.2.69.160',
      user_agent: 'python-requests/2.31',
    },
  }));
  const t0 = Date.now();
  const r = await fetch(`${BASE}/v1/events`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/cloudevents-batch+json', 'X-API-Key': API_KEY },
    body: JSON.stringify(events),
  });
  assert.equal(r.status, 200, await r.text());
  // Each failure is a security event in the feed; the burst as a whole is one brute-force alert
  // (next step), not an event per failure.
  const item = page.locator('#feed li.event', { hasText: 'Failed login — brute-force@example.com' }).first();
  await item.waitFor({ timeout: 10_000 });
  const ms = Date.now() - t0;
  console.log(`     burst visible in the live feed ${ms} ms after the intake acknowledged it`);
  assert.ok(ms < 10_000);
  assert.match(await item.innerText(), /bad_password/);
  assert.equal(await page.locator('#feed li.event', { hasText: 'Failed login attempts' }).count(), 0);
  assert.equal(await item.getAttribute('data-severity'), 'warning');
  // Review it from the feed.
  await item.getByRole('button', { name: /Mark reviewed/ }).click();
  await item.locator('.badge.reviewed').waitFor();
  // Filters: warnings only, then unreviewed only (the reviewed burst disappears).
  await page.getByLabel('Severity').selectOption('warning');
  await page.waitForSelector('#feed[data-state="ready"] li.event');
  await page.waitForFunction(() => [...document.querySelectorAll('#feed li.event')].every((e) => e.dataset.severity === 'warning'));
  await page.getByLabel('Severity').selectOption('');
  await page.waitForFunction(() => [...document.querySelectorAll('#feed li.event')].some((e) => e.dataset.severity === 'info'));
  await shot(page, 'admin-desktop');
});

await step('admin: the burst raises a brute-force alert, live; its evidence is shown and it is reviewed', async () => {
  const page = admin.page;
  const row = page.locator('#alert-rows tr.alert[data-rule="brute_force"]', { hasText: 'e2e-victim' }).first();
  await row.waitFor({ timeout: T });
  assert.match(await row.locator('td[data-label="Count"]').innerText(), /^5$/);
  await row.getByRole('button', { name: /Evidence of/ }).click();
  const detail = page.locator('#alert-rows tr.detail .alert-detail[data-state="ready"]').first();
  await detail.waitFor({ timeout: T });
  assert.equal(await detail.locator('ol.evidence li').count(), 5);
  assert.match(await detail.innerText(), /Login failure/);
  await detail.getByRole('button', { name: 'Mark reviewed' }).click();
  await row.locator('.badge.reviewed').waitFor({ timeout: T });
  const one = await api('GET', `/api/v1/admin/alerts/${await row.getAttribute('data-alert-id')}`, ADMIN_TOKEN);
  assert.equal(one.body.status, 'reviewed');
  assert.equal(one.body.evidence.length, 5);
});

await step('admin: drill down from a failing IP and from a user, then force logout', async () => {
  const page = admin.page;
  // From the top failing IPs to that address's attempts.
  await page.locator('#ip-list a').first().click();
  await page.waitForSelector('#h-drill');
  assert.match(await page.locator('#h-drill').innerText(), /^Address /);
  await page.waitForSelector('#drill-history table, #drill-history [data-state="empty"]');
  await page.goBack();
  await page.waitForSelector('#admin-content:not([hidden])');
  // Keyboard: type a user id in the labelled look-up field and press Enter.
  await page.getByLabel('User id').fill(OTHER);
  await page.getByLabel('User id').press('Enter');
  await page.waitForSelector('#drill-sessions[data-state="ready"]');
  assert.equal(await page.locator('#drill-sessions [data-session-id]').count(), 2);
  await page.waitForSelector('#drill-history table');
  await shot(page, 'admin-user-desktop');
  {
    const m = await open(PHONE, ADMIN_TOKEN, `admin/user/${OTHER}`);
    await m.page.waitForSelector('#drill-sessions[data-state="ready"] [data-session-id]');
    await m.page.waitForSelector('#drill-history table');
    await noHorizontalScroll(m.page);
    await shot(m.page, 'admin-user-phone');
    await m.ctx.close();
  }
  await page.getByRole('button', { name: 'Force logout everywhere' }).click();
  await page.locator('#confirm-ok').click();
  await page.waitForSelector('#drill-sessions [data-state="empty"]');
  const left = await api('GET', `/api/v1/admin/users/${OTHER}/sessions?status=active`, ADMIN_TOKEN);
  assert.equal(left.body.items.length, 0);
  await admin.ctx.close();

  const m = await open(PHONE, ADMIN_TOKEN, 'admin');
  await m.page.waitForSelector('#chart-ips[data-rendered="true"]');
  await m.page.waitForSelector('#session-stats[data-state="ready"]');
  await m.page.waitForFunction(() => !document.querySelector('.panels [data-state="loading"]'));
  await noHorizontalScroll(m.page);
  await shot(m.page, 'admin-phone');
  await m.ctx.close();
});

await step('a user revokes one session (keyboard, with confirmation) and it is gone', async () => {
  const { ctx, page } = await open(DESKTOP, USER_TOKEN, 'sessions');
  await page.waitForSelector('#sessions-body[data-state="ready"]');
  const revoke = page.locator('[data-session-id="e2e-android"] button[data-action="revoke"]');
  await revoke.focus();
  await page.keyboard.press('Enter');
  await page.waitForSelector('#confirm[open]');
  assert.match(await page.locator('#confirm-text').innerText(), /Android phone — Chrome will be signed out/);
  // Focus starts on Cancel; Tab moves to the confirming button.
  assert.equal(await page.evaluate(() => document.activeElement.id), 'confirm-cancel');
  await page.keyboard.press('Tab');
  await page.keyboard.press('Enter');
  await page.waitForSelector('[data-session-id="e2e-android"]', { state: 'detached' });
  await page.waitForSelector('#sessions-body[data-state="ready"] #session-list');
  const fromApi = await api('GET', '/api/v1/auth/sessions', USER_TOKEN);
  const want = fromApi.body.items.map((s) => s.session_id).sort();
  assert.ok(!want.includes('e2e-android'), 'the API still lists the revoked session');
  assert.deepEqual((await cardIds(page)).sort(), want);
  assert.equal(want.length, 3);
  // Cancelling changes nothing.
  await page.locator('[data-session-id="e2e-mac"] button[data-action="revoke"]').click();
  await page.locator('#confirm-cancel').click();
  assert.equal(await page.locator('[data-session-id="e2e-mac"]').count(), 1);
  await ctx.close();
});

await step('"Sign out all other sessions" leaves only the current one', async () => {
  const { ctx, page } = await open(DESKTOP, USER_TOKEN, 'sessions');
  await page.waitForSelector('#sessions-body[data-state="ready"]');
  await page.getByRole('button', { name: 'Sign out all other sessions' }).click();
  await page.locator('#confirm-ok').click();
  await page.waitForFunction(() => document.querySelectorAll('#session-list [data-session-id]').length === 1);
  assert.deepEqual(await cardIds(page), [CURRENT]);
  assert.ok(await page.locator('#revoke-others').isHidden(), 'nothing left to sign out');
  const fromApi = await api('GET', '/api/v1/auth/sessions', USER_TOKEN);
  assert.deepEqual(fromApi.body.items.map((s) => s.session_id), [CURRENT]);
  await ctx.close();
});

await step('a user cannot open the admin page: the API refuses and the page says so', async () => {
  const direct = await api('GET', '/api/v1/admin/security-events', USER_TOKEN);
  assert.equal(direct.status, 403);
  // The browser logs the refused request itself; that one error is expected here.
  const { ctx, page } = await open(DESKTOP, USER_TOKEN, 'admin', { allow: [/status of 403/] });
  await page.waitForSelector('#admin-gate [data-state="forbidden"]');
  assert.match(await page.locator('#admin-gate').innerText(), /You don't have access to security monitoring/);
  assert.ok(await page.locator('#admin-content').isHidden());
  assert.equal(await page.locator('#nav a', { hasText: 'Security monitoring' }).count(), 0);
  await shot(page, 'admin-refused-desktop');
  await ctx.close();
});

await step('an invalid token gets the error state, not a broken page', async () => {
  // Well-formed, but its signature is wrong: the API answers 401.
  const forged = USER_TOKEN.slice(0, -6) + (USER_TOKEN.endsWith('AAAAAA') ? 'BBBBBB' : 'AAAAAA');
  const { ctx, page } = await open(PHONE, forged, 'sessions', { allow: [/status of 401/] });
  await page.waitForSelector('#sessions-body [data-state="unauthenticated"]');
  assert.match(await page.locator('#sessions-body').innerText(), /Your sign-in is not valid any more/);
  assert.ok(await page.locator('#revoke-others').isHidden());
  await ctx.close();
});

await step('demo sign-in (server demo flag on): act as admin, then as a simulated user', async () => {
  const { ctx, page } = await open(DESKTOP, null, 'signin');
  await page.waitForSelector('#demo-box .demo');
  assert.match(await page.locator('#demo-box').innerText(), /DEMO/);
  await page.waitForSelector('#demo-user option, #demo-users [data-state="error"], #demo-users .empty', { state: 'attached' });
  assert.ok(await page.locator('#demo-user option').count() > 0, `no simulated users offered: ${await page.locator('#demo-box').innerText()}`);
  await shot(page, 'signin-desktop');
  {
    const m = await open(PHONE, null, 'signin');
    await m.page.waitForSelector('#demo-user option', { state: 'attached' });
    await noHorizontalScroll(m.page);
    await shot(m.page, 'signin-phone');
    await m.ctx.close();
  }
  await page.getByRole('button', { name: 'Continue as admin' }).click();
  await page.waitForSelector('#admin-content:not([hidden])');
  // Sign out, then act as a simulated user: their most recent session is the current one.
  await page.getByRole('button', { name: 'Sign out', exact: true }).click();
  await page.waitForSelector('#demo-user option', { state: 'attached' });
  // The header names them by their identifier (the option's label), once it is looked up.
  const chosen = (await page.locator('#demo-user option:checked').innerText()).replace(/ \(\d+ active sessions?\)$/, '');
  await page.getByRole('button', { name: 'Continue as this user' }).click();
  await page.waitForSelector('#sessions-body[data-state="ready"] #session-list');
  await page.waitForFunction((name) => document.querySelector('#who .whoami-name')?.textContent === name, chosen);
  assert.match(await page.locator('[data-current="true"]').innerText(), /Active now \(Current session\)/);
  await ctx.close();
});

// The server lists http://portal.localhost in web.token_origins and lets it and
// http://evil.localhost frame the dashboard (tests/web_e2e.rs); the browser context serves both
// host pages itself.
await step('a token posted from an unlisted origin is ignored; one from web.token_origins signs in', async () => {
  // A browser of its own: host pages this context serves count as public to Chromium, whose
  // local network checks would otherwise block their frame of the loopback server.
  const own = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu', '--disable-features=LocalNetworkAccessChecks'],
  });
  const ctx = await own.newContext({ viewport: DESKTOP });
  const page = await ctx.newPage();
  page.setDefaultTimeout(T);
  page.on('pageerror', (e) => consoleErrors.push(`[postMessage] ${e.message}`));
  const host = `<!doctype html><title>host</title><iframe id="f" src="${BASE}/ui/#/sessions" width="1200" height="800"></iframe>`;
  await ctx.route(/^http:\/\/(portal|evil)\.localhost\//, (route) => route.fulfill({ contentType: 'text/html', body: host }));
  for (const [origin, accepted] of [
    ['http://evil.localhost', false],
    ['http://portal.localhost', true],
  ]) {
    await page.goto(`${origin}/`);
    const frame = await (await page.waitForSelector('#f')).contentFrame();
    await frame.waitForSelector('#token-form');
    await page.evaluate(
      (t) => document.getElementById('f').contentWindow.postMessage({ type: 'authtrail:token', token: t }, '*'),
      USER_TOKEN,
    );
    // The page counts every message it decided on: wait for that, not for time to pass.
    await frame.waitForFunction(() => document.documentElement.dataset.tokenMessages === '1');
    if (accepted) {
      await frame.waitForSelector('#sessions-body[data-state="ready"] #session-list');
      assert.equal(await frame.evaluate(() => localStorage.getItem('authtrail.token')), null, 'token in localStorage');
    } else {
      assert.equal(await frame.evaluate(() => location.hash), '#/signin', `${origin} signed the page in`);
      assert.equal(await frame.evaluate(() => sessionStorage.getItem('authtrail.token')), null);
      assert.equal(await frame.locator('#token-form').count(), 1);
    }
  }
  await own.close();
});

await browser.close();
if (consoleErrors.length) {
  console.log(`FAIL console errors:\n  ${consoleErrors.join('\n  ')}`);
  process.exit(1);
}
console.log(`ok   no console errors\n${results.length} scenarios passed; screenshots in ${SHOTS}`);
