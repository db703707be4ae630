// Login history: my attempts, newest first, a page at a time (the API's cursors).
import { api } from '../api.js';
import { deviceIcon, deviceLabel, esc, place, timeHtml, localTime } from '../format.js';
import { emptyHtml, errorHtml, loadingHtml } from '../ui.js';

const PAGE = 20;

/** Rows of login attempts (shared with the admin drill-downs). */
export function attemptsTable(items, { admin = false, caption = 'Login attempts' } = {}) {
  return `<table class="attempts">
    <caption class="sr-only">${esc(caption)}</caption>
    <thead><tr><th scope="col">When</th><th scope="col">Result</th>${admin ? '<th scope="col">Account</th>' : ''}<th scope="col">Method</th><th scope="col">Device</th><th scope="col">Location</th><th scope="col">Flag</th></tr></thead>
    <tbody>${items
      .map(
        (a) => `<tr data-attempt-id="${esc(a.id)}" class="${a.success ? 'ok' : 'fail'}${a.suspicious ? ' suspicious' : ''}">
      <td data-label="When">${timeHtml(a.attempted_at, { rel: false })}<br><span class="muted">${timeHtml(a.attempted_at)}</span></td>
      <td data-label="Result">${a.success ? '<span class="res ok">✅ Success</span>' : `<span class="res fail">❌ Failed</span>${a.failure_reason ? ` <span class="muted">(${esc(a.failure_reason.replace(/_/g, ' '))})</span>` : ''}`}</td>
      ${admin ? `<td data-label="Account">${a.user_id ? `<a href="#/admin/user/${encodeURIComponent(a.user_id)}">${esc(a.identifier || a.user_id)}</a>` : esc(a.identifier || '—')}</td>` : ''}
      <td data-label="Method">${esc(a.login_method || '—')}</td>
      <td data-label="Device"><span aria-hidden="true">${deviceIcon(a.device_type)}</span> ${esc(deviceLabel(a))}</td>
      <td data-label="Location">${esc(place(a))}${a.ip ? `<br><span class="muted">${admin ? `<a href="#/admin/ip/${encodeURIComponent(a.ip)}">${esc(a.ip)}</a>` : esc(a.ip)}</span>` : ''}</td>
      <td data-label="Flag">${a.suspicious ? `<span class="badge suspicious">⚠️ ${esc(a.suspicious_reason || 'Suspicious')}</span>` : ''}</td>
    </tr>`,
      )
      .join('')}</tbody></table>`;
}

export function renderHistory(main) {
  main.innerHTML = `<section aria-labelledby="h-history">
    <p class="crumbs">Account Settings → Security</p>
    <h1 id="h-history">Login history</h1>
    <p class="lead">Every sign-in attempt on your account, newest first. Times are in your time zone.</p>
    <div id="history-body">${loadingHtml('your login history')}</div>
    <nav class="pager" aria-label="Login history pages">
      <button type="button" id="newer" disabled>← Newer</button>
      <span id="page-no" aria-live="polite">Page 1</span>
      <button type="button" id="older" disabled>Older →</button>
    </nav>
  </section>`;
  const body = main.querySelector('#history-body');
  const newer = main.querySelector('#newer');
  const older = main.querySelector('#older');
  const pageNo = main.querySelector('#page-no');
  // cursors[i] is the cursor that fetches page i (undefined for the first).
  const cursors = [undefined];
  let at = 0;
  let gone = false;

  async function load() {
    newer.disabled = older.disabled = true;
    try {
      const page = await api.get('/api/v1/auth/login-history', { limit: PAGE, cursor: cursors[at] });
      if (gone) return;
      cursors[at + 1] = page.next_cursor || null;
      body.innerHTML = page.items.length
        ? attemptsTable(page.items, { caption: `Login attempts, page ${at + 1}` })
        : emptyHtml(at === 0 ? 'No sign-in attempts yet.' : 'No older attempts.');
      body.dataset.state = 'ready';
      pageNo.textContent = `Page ${at + 1}`;
      newer.disabled = at === 0;
      older.disabled = !page.next_cursor;
    } catch (e) {
      if (!gone) body.innerHTML = errorHtml(e, 'your login history');
    }
  }
  older.addEventListener('click', () => {
    at += 1;
    load();
  });
  newer.addEventListener('click', () => {
    at = Math.max(0, at - 1);
    load();
  });
  body.addEventListener('click', (ev) => {
    if (ev.target.closest('[data-action="retry"]')) load();
  });
  load();
  return { cleanup: () => (gone = true) };
}

export { localTime };
