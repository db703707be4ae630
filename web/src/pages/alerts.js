// Alerts: the admin's "Alerts" panel (detection's alerts, their evidence, the review command)
// and a person's "Security notices" (alerts about their account and events they should know of).
import { api, claims } from '../api.js';
import { esc, humanType, timeHtml } from '../format.js';
import { announce, emptyHtml, errorHtml, loadingHtml } from '../ui.js';

const SEV_ICON = { info: 'ℹ️', warning: '⚠️', error: '❗', critical: '🛑' };

function sev(s) {
  return `<span class="sev" role="img" aria-label="${esc(s)}">${SEV_ICON[s] || 'ℹ️'}</span> ${esc(humanType(s))}`;
}

function subjectHtml(a) {
  if (a.user_id) return `<a href="#/admin/user/${encodeURIComponent(a.user_id)}">${esc(a.user_id)}</a>`;
  if (a.ip) return `<a href="#/admin/ip/${encodeURIComponent(a.ip)}">${esc(a.ip)}</a>`;
  return esc(a.subject === '*' ? 'everyone' : a.subject);
}

function statusHtml(a) {
  return a.status === 'reviewed'
    ? `<span class="badge reviewed" title="${esc(a.reviewed_at || '')}">✔ Reviewed${a.reviewed_by ? ` by ${esc(a.reviewed_by)}` : ''}</span>`
    : '<span class="badge suspicious">Open</span>';
}

function alertRow(a) {
  return `<tr data-alert-id="${esc(a.id)}" data-rule="${esc(a.rule)}" data-status="${esc(a.status)}" class="alert sev-${esc(a.severity)}">
    <td data-label="Rule"><strong>${esc(humanType(a.rule))}</strong><br><span class="small muted">${esc(a.title)}</span></td>
    <td data-label="Severity">${sev(a.severity)}</td>
    <td data-label="Subject">${subjectHtml(a)}</td>
    <td data-label="Count" class="num">${esc(a.count)}</td>
    <td data-label="First seen">${timeHtml(a.first_seen)}</td>
    <td data-label="Last seen">${timeHtml(a.last_seen)}</td>
    <td data-label="Status">${statusHtml(a)}</td>
    <td><button type="button" data-action="details" data-id="${esc(a.id)}" aria-expanded="false" aria-label="Evidence of ${esc(a.title)}">Details</button></td>
  </tr>`;
}

function evidenceHtml(d, me) {
  const rows = d.evidence
    .map(
      (e) => `<li data-event-id="${esc(e.event_id)}"><span class="muted">${e.occurred_at ? timeHtml(e.occurred_at) : 'time unknown'}</span>
        ${esc(e.kind ? humanType(e.kind) : 'Event')}${e.user_id ? ` · user ${esc(e.user_id)}` : ''}${e.ip ? ` · ${esc(e.ip)}` : ''}${e.location ? ` · ${esc(e.location)}` : ''}
        ${e.description ? `<br><span class="small">${esc(e.description)}</span>` : ''}${e.user_agent ? `<br><span class="small muted">${esc(e.user_agent)}</span>` : ''}</li>`,
    )
    .join('');
  const own = me && d.user_id === me.sub;
  const review =
    d.status === 'reviewed'
      ? statusHtml(d)
      : own
        ? '<span class="muted small">An alert about you is someone else\'s to review.</span>'
        : `<button type="button" data-action="review-alert" data-id="${esc(d.id)}">Mark reviewed</button>`;
  return `<div class="alert-detail" data-state="ready">
    <p>${esc(d.description)}</p>
    <p class="small muted">${d.accounts} account${d.accounts === 1 ? '' : 's'} · ${d.ips} address${d.ips === 1 ? '' : 'es'} · ${d.count} event${d.count === 1 ? '' : 's'}${d.evidence.length < d.count ? ` (the first ${d.evidence.length} shown)` : ''}</p>
    <ol class="mini evidence">${rows || '<li>No evidence recorded.</li>'}</ol>
    <p class="act">${review}</p></div>`;
}

/** The admin's alerts panel in `box`; `onLive(alert)` merges one from the event stream. */
export function alertsPanel(box, isGone) {
  box.innerHTML = `<form class="filters" id="alert-filters" aria-label="Filter alerts">
      <label>Status <select name="status" id="af-status"><option value="open">Open</option><option value="">All</option><option value="reviewed">Reviewed</option></select></label>
    </form>
    <div id="alert-list">${loadingHtml('alerts')}</div>`;
  const list = box.querySelector('#alert-list');
  const me = claims();
  let status = 'open';

  async function load() {
    list.innerHTML = loadingHtml('alerts');
    try {
      const page = await api.get('/api/v1/admin/alerts', { status, limit: 50 });
      if (isGone()) return;
      list.innerHTML = page.items.length
        ? `<table class="attempts alerts"><caption class="sr-only">Alerts</caption>
            <thead><tr><th scope="col">Rule</th><th scope="col">Severity</th><th scope="col">Subject</th><th scope="col">Count</th><th scope="col">First seen</th><th scope="col">Last seen</th><th scope="col">Status</th><th scope="col"><span class="sr-only">Evidence</span></th></tr></thead>
            <tbody id="alert-rows">${page.items.map(alertRow).join('')}</tbody></table>`
        : emptyHtml(status === 'open' ? 'No open alerts.' : 'No alerts.');
      list.dataset.state = 'ready';
    } catch (e) {
      if (!isGone()) list.innerHTML = errorHtml(e, 'alerts');
    }
  }

  function onLive(a) {
    if (status && a.status !== status) return;
    const rows = list.querySelector('#alert-rows');
    if (!rows) return load();
    const old = rows.querySelector(`tr[data-alert-id="${CSS.escape(a.id)}"]`);
    if (old) {
      if (old.nextElementSibling?.classList.contains('detail')) old.nextElementSibling.remove();
      old.remove();
    }
    rows.insertAdjacentHTML('afterbegin', alertRow(a).replace('class="alert ', 'class="alert fresh '));
  }

  box.querySelector('#alert-filters').addEventListener('change', (ev) => {
    status = ev.currentTarget.status.value;
    load();
  });
  box.addEventListener('click', async (ev) => {
    const b = ev.target.closest('button');
    if (!b) return;
    if (b.dataset.action === 'retry') return load();
    if (b.dataset.action === 'details') {
      const tr = b.closest('tr');
      const open = tr.nextElementSibling?.classList.contains('detail');
      if (open) {
        tr.nextElementSibling.remove();
        b.setAttribute('aria-expanded', 'false');
        return;
      }
      b.setAttribute('aria-expanded', 'true');
      tr.insertAdjacentHTML('afterend', `<tr class="detail"><td colspan="8">${loadingHtml('evidence')}</td></tr>`);
      const cell = tr.nextElementSibling.firstElementChild;
      try {
        const d = await api.get(`/api/v1/admin/alerts/${encodeURIComponent(b.dataset.id)}`);
        if (!isGone()) cell.innerHTML = evidenceHtml(d, me);
      } catch (e) {
        if (!isGone()) cell.innerHTML = errorHtml(e, 'the evidence');
      }
      return;
    }
    if (b.dataset.action === 'review-alert') {
      b.disabled = true;
      b.textContent = 'Saving…';
      try {
        await api.post(`/api/v1/admin/alerts/${encodeURIComponent(b.dataset.id)}/review`, undefined, { wait: true });
        const row = box.querySelector(`tr[data-alert-id="${CSS.escape(b.dataset.id)}"]`);
        const done = `<span class="badge reviewed">✔ Reviewed by ${esc(me?.sub || 'you')}</span>`;
        if (row) {
          row.dataset.status = 'reviewed';
          row.querySelector('td[data-label="Status"]').innerHTML = done;
        }
        b.outerHTML = done;
        announce('Alert marked reviewed.');
      } catch (e) {
        b.disabled = false;
        b.textContent = 'Mark reviewed';
        announce(`Could not mark reviewed: ${e.message}`);
      }
    }
  });
  load();
  return { load, onLive };
}

const NOTICE_ICON = { new_device: '📱', new_country: '🌍', impossible_travel: '✈️', session_hijack: '🛑', password_changed: '🔑', session_revoked: '🚪' };

/** A person's security notices in `box`: the latest 20. */
export async function noticesPanel(box, isGone) {
  box.onclick = (ev) => {
    if (ev.target.closest('[data-action="retry"]')) noticesPanel(box, isGone);
  };
  box.innerHTML = loadingHtml('your security notices');
  try {
    const page = await api.get('/api/v1/auth/alerts', { limit: 20 });
    if (isGone()) return;
    box.innerHTML = page.items.length
      ? `<ul class="feed notices" id="notice-list">${page.items
          .map(
            (n) => `<li class="event sev-${esc(n.severity)}" data-notice-id="${esc(n.id)}" data-kind="${esc(n.kind)}">
          <span class="sev" aria-hidden="true">${NOTICE_ICON[n.kind] || 'ℹ️'}</span>
          <div class="body"><p class="desc"><strong>${esc(n.title)}</strong></p><p>${esc(n.description)}</p>
          <p class="meta muted">${timeHtml(n.occurred_at)}${n.location ? ` · ${esc(n.location)}` : ''}${n.ip ? ` · ${esc(n.ip)}` : ''}${n.count > 1 ? ` · ${n.count} times since ${timeHtml(n.first_seen)}` : ''}</p></div></li>`,
          )
          .join('')}</ul>`
      : emptyHtml('No security notices. We will tell you here about sign-ins from new devices or places and changes to your account.');
    box.dataset.state = 'ready';
  } catch (e) {
    if (!isGone()) box.innerHTML = errorHtml(e, 'your security notices');
  }
}
