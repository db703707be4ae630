// Account Settings → Security → Active Sessions: one card per active session of mine.
import { api } from '../api.js';
import { deviceIcon, deviceLabel, esc, place, timeHtml } from '../format.js';
import { announce, confirmDialog, emptyHtml, errorHtml, loadingHtml } from '../ui.js';
import { noticesPanel } from './alerts.js';

/** One session card (shared with the admin's drill-down, which passes `admin`). */
export function sessionCard(s, { admin = false } = {}) {
  const parsed = deviceLabel(s);
  const name = s.custom_name || parsed;
  const activity = s.current
    ? '<span class="now">Active now (Current session)</span>'
    : s.status === 'active'
      ? `Last active ${timeHtml(s.last_activity_at)}`
      : `${esc(s.status.replace('_', ' '))} · last active ${timeHtml(s.last_activity_at)}`;
  const badges = [];
  if (s.current) badges.push('<span class="badge current">This device</span>');
  if (s.trusted_device) badges.push('<span class="badge trusted">🔐 Trusted device</span>');
  if (s.suspicious)
    badges.push(
      `<span class="badge suspicious" title="${esc(s.suspicious_reason || '')}">⚠️ Suspicious${s.suspicious_reason ? `: ${esc(s.suspicious_reason)}` : ''}</span>`,
    );
  const canRevoke = s.status === 'active' && (admin || !s.current);
  const mine = !admin && s.status === 'active' && !!s.device_id;
  return `<li class="card session" data-session-id="${esc(s.session_id)}" data-status="${esc(s.status)}"${s.current ? ' data-current="true"' : ''}>
    <div class="icon" aria-hidden="true">${deviceIcon(s.device_type)}</div>
    <div class="body">
      <h3 class="name">${esc(name)}${s.custom_name && s.custom_name !== parsed ? ` <span class="parsed muted">(${esc(parsed)})</span>` : ''}</h3>
      <p class="where">📍 ${esc(place(s))}${s.ip ? ` <span class="muted">· ${admin ? `<a href="#/admin/ip/${encodeURIComponent(s.ip)}">${esc(s.ip)}</a>` : esc(s.ip)}</span>` : ''}</p>
      <p class="when">🕐 ${activity}</p>
      <p class="since muted">Signed in ${timeHtml(s.created_at, { rel: false })}${s.login_method ? ` with ${esc(s.login_method)}` : ''}${admin ? ` · user <a href="#/admin/user/${encodeURIComponent(s.user_id)}">${esc(s.identifier || s.user_id)}</a>` : ''}</p>
      ${badges.length ? `<p class="badges">${badges.join(' ')}</p>` : ''}
    </div>
    ${canRevoke || mine ? `<div class="act">${mine ? deviceControls(s, name) : ''}${canRevoke ? `<button type="button" class="danger" data-action="revoke" data-id="${esc(s.session_id)}" data-name="${esc(name)}" aria-label="Revoke access for ${esc(name)} in ${esc(place(s))}">Revoke access</button>` : ''}</div>` : ''}
  </li>`;
}

/** Rename and trust controls of my own device (`device_id`): commands on /api/v1/auth/devices. */
function deviceControls(s, name) {
  const d = esc(s.device_id);
  const trust = s.trusted_device
    ? `<button type="button" data-action="untrust" data-device="${d}" data-name="${esc(name)}" aria-label="Stop trusting ${esc(name)}">Stop trusting</button>`
    : `<button type="button" data-action="trust" data-device="${d}" data-name="${esc(name)}" aria-label="Trust ${esc(name)}">Trust this device</button>`;
  return `<button type="button" data-action="rename" data-device="${d}" aria-label="Rename ${esc(name)}">Rename</button>${trust}
    <form class="rename" data-device="${d}" hidden>
      <label>Device name <input name="name" maxlength="64" required value="${esc(s.custom_name || '')}" placeholder="${esc(name)}"></label>
      <button type="submit">Save</button> <button type="button" data-action="cancel-rename">Cancel</button>
    </form>`;
}

export function renderSessions(main) {
  main.innerHTML = `<section aria-labelledby="h-sessions">
    <p class="crumbs">Account Settings → Security</p>
    <h1 id="h-sessions">Active sessions</h1>
    <p class="lead">Devices where you are signed in. Revoke any you don't recognise.</p>
    <div class="toolbar"><button type="button" id="revoke-others" class="danger" hidden>Sign out all other sessions</button></div>
    <div id="sessions-body">${loadingHtml('your sessions')}</div>
    <h2 id="h-notices">Security notices</h2>
    <p class="lead">Sign-ins from a new device or place, password changes, and sessions ended by policy.</p>
    <div id="notices-body" aria-labelledby="h-notices">${loadingHtml('your security notices')}</div>
  </section>`;
  const body = main.querySelector('#sessions-body');
  const others = main.querySelector('#revoke-others');
  let gone = false;

  async function load() {
    try {
      const { items } = await api.all('/api/v1/auth/sessions', { status: 'active' });
      if (gone) return;
      // Current first, then most recently active.
      items.sort((a, b) => (b.current - a.current) || b.last_activity_at.localeCompare(a.last_activity_at));
      others.hidden = !items.some((s) => !s.current);
      body.innerHTML = items.length
        ? `<p class="count" data-count="${items.length}">${items.length} active session${items.length === 1 ? '' : 's'}</p>
           <ul class="cards" id="session-list">${items.map((s) => sessionCard(s)).join('')}</ul>`
        : emptyHtml('No active sessions.');
      body.dataset.state = 'ready';
    } catch (e) {
      if (gone) return;
      others.hidden = true;
      body.innerHTML = errorHtml(e, 'your sessions');
    }
  }

  body.addEventListener('click', async (ev) => {
    const b = ev.target.closest('button');
    if (!b) return;
    if (b.dataset.action === 'retry') {
      body.innerHTML = loadingHtml('your sessions');
      return load();
    }
    if (b.dataset.action === 'rename' || b.dataset.action === 'cancel-rename') {
      const form = b.closest('li').querySelector('form.rename');
      form.hidden = b.dataset.action === 'cancel-rename';
      if (!form.hidden) form.elements.name.focus();
      return;
    }
    if (b.dataset.action === 'trust' || b.dataset.action === 'untrust') return setTrust(b);
    if (b.dataset.action !== 'revoke') return;
    const ok = await confirmDialog(
      'Revoke access?',
      `${b.dataset.name} will be signed out and will need to sign in again.`,
      'Revoke access',
    );
    if (!ok) return;
    b.disabled = true;
    b.textContent = 'Revoking…';
    try {
      // wait=true: answered once the projection shows it revoked (read-your-writes).
      await api.del(`/api/v1/auth/sessions/${encodeURIComponent(b.dataset.id)}`, { wait: true });
      announce(`Revoked access for ${b.dataset.name}.`);
    } catch (e) {
      announce(`Could not revoke: ${e.message}`);
    }
    await load();
  });

  const devicePath = (id, what) => `/api/v1/auth/devices/${encodeURIComponent(id)}/${what}`;

  async function setTrust(b) {
    const trust = b.dataset.action === 'trust';
    b.disabled = true;
    try {
      // wait=true: answered once the projection shows it (read-your-writes).
      if (trust) await api.put(devicePath(b.dataset.device, 'trust'), undefined, { wait: true });
      else await api.del(devicePath(b.dataset.device, 'trust'), { wait: true });
      announce(trust ? `${b.dataset.name} is now a trusted device.` : `${b.dataset.name} is no longer trusted.`);
    } catch (e) {
      announce(`Could not change trust: ${e.message}`);
    }
    await load();
  }

  body.addEventListener('submit', async (ev) => {
    const form = ev.target.closest('form.rename');
    if (!form) return;
    ev.preventDefault();
    const name = form.elements.name.value.trim();
    if (!name) return;
    form.querySelectorAll('button, input').forEach((el) => (el.disabled = true));
    try {
      await api.put(devicePath(form.dataset.device, 'name'), { name }, { wait: true });
      announce(`Device renamed to ${name}.`);
    } catch (e) {
      announce(`Could not rename: ${e.message}`);
    }
    await load();
  });

  others.addEventListener('click', async () => {
    const ok = await confirmDialog(
      'Sign out all other sessions?',
      'Every device except this one will be signed out.',
      'Sign out others',
    );
    if (!ok) return;
    others.disabled = true;
    try {
      await api.del('/api/v1/auth/sessions', { wait: true });
      announce('Signed out all other sessions.');
    } catch (e) {
      announce(`Could not sign out other sessions: ${e.message}`);
    }
    others.disabled = false;
    await load();
  });

  load();
  noticesPanel(main.querySelector('#notices-body'), () => gone);
  return { cleanup: () => (gone = true) };
}
