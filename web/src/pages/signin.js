// Sign-in: the host application's token, or (only with the server's demo flag) a demo sign-in.
import { api, demoConfig, demoToken, setToken } from '../api.js';
import { esc } from '../format.js';
import { errorHtml, loadingHtml } from '../ui.js';

export function renderSignin(main, { onSignedIn }) {
  main.innerHTML = `<section aria-labelledby="h-signin" class="signin">
    <h1 id="h-signin">Sign in</h1>
    <p class="lead">This dashboard shows your sessions and sign-in history from authtrail. Your application
      normally opens it with your access token (<code>/ui/#token=…</code> or <code>postMessage</code>).</p>
    <div id="demo-box"></div>
    <form id="token-form" class="block">
      <h2>Use an access token</h2>
      <label for="token-input">Bearer token (JWT)</label>
      <textarea id="token-input" rows="3" required spellcheck="false" autocomplete="off"></textarea>
      <button type="submit">Use this token</button>
    </form>
  </section>`;
  const $ = (s) => main.querySelector(s);
  let gone = false;

  $('#token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const t = $('#token-input').value.trim();
    if (!t) return;
    setToken(t);
    onSignedIn('#/sessions');
  });

  (async () => {
    const cfg = await demoConfig();
    if (gone || !cfg.demo) return;
    const box = $('#demo-box');
    box.innerHTML = `<div class="block demo" role="region" aria-labelledby="h-demo">
      <h2 id="h-demo"><span class="badge demo-badge">DEMO</span> Demo sign-in</h2>
      <p>This server runs with the <strong>demo flag</strong> (<code>web.demo</code>): it mints tokens for anyone who
        asks. Never enable it outside a local demo.</p>
      <div class="demo-actions">
        <button type="button" id="demo-admin">Continue as admin</button>
      </div>
      <div id="demo-users">${loadingHtml('simulated users')}</div>
    </div>`;
    $('#demo-admin').addEventListener('click', async () => {
      try {
        setToken(await demoToken({ role: 'admin' }));
        onSignedIn('#/admin');
      } catch (e) {
        $('#demo-users').innerHTML = errorHtml(e, 'the demo sign-in');
      }
    });
    try {
      // Which users have active sessions: asked of the public API with a demo admin token.
      const admin = await demoToken({ role: 'admin' });
      setToken(admin);
      const { items } = await api.all('/api/v1/admin/sessions', { status: 'active' }, 2);
      setToken(null);
      if (gone) return;
      const users = new Map();
      for (const s of items) {
        const u = users.get(s.user_id);
        if (!u || s.last_activity_at > u.last_activity_at) users.set(s.user_id, { ...s, n: (u?.n || 0) + 1 });
        else u.n += 1;
      }
      const list = [...users.values()].sort((a, b) => b.n - a.n || a.user_id.localeCompare(b.user_id));
      $('#demo-users').innerHTML = list.length
        ? `<form id="demo-user-form" class="row">
            <label for="demo-user">Act as a simulated user</label>
            <select id="demo-user">${list
              .map((u) => `<option value="${esc(u.user_id)}" data-sid="${esc(u.session_id)}">${esc(u.identifier || u.user_id)} (${u.n} active session${u.n === 1 ? '' : 's'})</option>`)
              .join('')}</select>
            <button type="submit">Continue as this user</button>
          </form>
          <p class="muted small">You get a token for that user whose current session is their most recently active one.</p>`
        : '<p class="empty">No simulated user has an active session yet: wait for the simulator, then reload.</p>';
      const f = $('#demo-user-form');
      if (f)
        f.addEventListener('submit', async (ev) => {
          ev.preventDefault();
          const opt = $('#demo-user').selectedOptions[0];
          setToken(await demoToken({ role: 'user', sub: opt.value, sid: opt.dataset.sid }));
          onSignedIn('#/sessions');
        });
    } catch (e) {
      setToken(null);
      if (!gone) $('#demo-users').innerHTML = errorHtml(e, 'simulated users');
    }
  })();
  return { cleanup: () => (gone = true) };
}
