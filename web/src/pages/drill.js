// Admin drill-downs: one user's or one address's sessions and login history, with force-logout.
import { api } from '../api.js';
import { esc } from '../format.js';
import { announce, confirmDialog, emptyHtml, errorHtml, loadingHtml } from '../ui.js';
import { sessionCard } from './sessions.js';
import { attemptsTable } from './history.js';

function drill(main, { title, crumbs, sessionsPath, sessionsQuery, historyQuery, forceLogoutPath }) {
  main.innerHTML = `<section aria-labelledby="h-drill">
    <p class="crumbs"><a href="#/admin">Security monitoring</a> → ${esc(crumbs)}</p>
    <h1 id="h-drill">${esc(title)}</h1>
    <div class="toolbar">
      <label class="check"><input type="checkbox" id="show-ended"> Show ended sessions</label>
      ${forceLogoutPath ? '<button type="button" class="danger" id="force-logout">Force logout everywhere</button>' : ''}
    </div>
    <h2>Sessions</h2>
    <div id="drill-sessions">${loadingHtml('sessions')}</div>
    <h2>Login history</h2>
    <div id="drill-history">${loadingHtml('login history')}</div>
  </section>`;
  const $ = (s) => main.querySelector(s);
  let gone = false;

  async function loadSessions() {
    try {
      const status = $('#show-ended').checked ? 'all' : 'active';
      const { items, complete } = await api.all(sessionsPath, { ...sessionsQuery, status }, 2);
      if (gone) return;
      $('#drill-sessions').innerHTML = items.length
        ? `<p class="count" data-count="${items.length}">${items.length}${complete ? '' : '+'} session${items.length === 1 ? '' : 's'}</p><ul class="cards">${items.map((s) => sessionCard(s, { admin: true })).join('')}</ul>`
        : emptyHtml(status === 'active' ? 'No active sessions.' : 'No sessions.');
      $('#drill-sessions').dataset.state = 'ready';
    } catch (e) {
      if (!gone) $('#drill-sessions').innerHTML = errorHtml(e, 'sessions');
    }
  }
  async function loadHistory() {
    try {
      const page = await api.get('/api/v1/admin/login-history', { ...historyQuery, limit: 50 });
      if (gone) return;
      $('#drill-history').innerHTML = page.items.length
        ? attemptsTable(page.items, { admin: true }) + (page.next_cursor ? '<p class="muted">Showing the latest 50 attempts.</p>' : '')
        : emptyHtml('No login attempts.');
    } catch (e) {
      if (!gone) $('#drill-history').innerHTML = errorHtml(e, 'login history');
    }
  }

  $('#show-ended').addEventListener('change', loadSessions);
  // On this page's own section: `main` outlives the page, and its listeners would pile up.
  main.querySelector('section').addEventListener('click', async (ev) => {
    const b = ev.target.closest('button');
    if (!b) return;
    if (b.dataset.action === 'retry') return Promise.all([loadSessions(), loadHistory()]);
    if (b.dataset.action === 'revoke') {
      if (!(await confirmDialog('Revoke this session?', `${b.dataset.name} will be signed out.`, 'Revoke session'))) return;
      b.disabled = true;
      try {
        await api.del(`/api/v1/admin/sessions/${encodeURIComponent(b.dataset.id)}`, { wait: true });
        announce('Session revoked.');
      } catch (e) {
        announce(`Could not revoke: ${e.message}`);
      }
      return loadSessions();
    }
    if (b.id === 'force-logout') {
      if (!(await confirmDialog('Force logout everywhere?', 'Every session of this user will be revoked.', 'Force logout'))) return;
      b.disabled = true;
      try {
        await api.del(forceLogoutPath, { wait: true });
        announce('All sessions of this user were revoked.');
      } catch (e) {
        announce(`Could not force logout: ${e.message}`);
      }
      b.disabled = false;
      return loadSessions();
    }
  });
  loadSessions();
  loadHistory();
  return { cleanup: () => (gone = true) };
}

export function renderUser(main, user) {
  const u = encodeURIComponent(user);
  return drill(main, {
    title: `User ${user}`,
    crumbs: `User ${user}`,
    sessionsPath: `/api/v1/admin/users/${u}/sessions`,
    sessionsQuery: {},
    historyQuery: { user },
    forceLogoutPath: `/api/v1/admin/users/${u}/sessions`,
  });
}

export function renderIp(main, ip) {
  return drill(main, {
    title: `Address ${ip}`,
    crumbs: `Address ${ip}`,
    sessionsPath: '/api/v1/admin/sessions',
    sessionsQuery: { ip },
    historyQuery: { ip },
    forceLogoutPath: null,
  });
}
