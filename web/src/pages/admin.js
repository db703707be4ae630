// Admin Dashboard → Security Monitoring: live feed, panels, charts, session statistics.
import { api, claims, streamEvents } from '../api.js';
import { EVENT_TYPES, SEVERITIES, esc, eventIcon, humanType, timeHtml, timeZone, deviceIcon } from '../format.js';
import { announce, emptyHtml, errorHtml, loadingHtml } from '../ui.js';
import { barChart, doughnutChart, destroyCharts, heatmap } from '../charts.js';
import { alertsPanel } from './alerts.js';

const FEED_MAX = 100;
const regionNames = new Intl.DisplayNames(undefined, { type: 'region' });
function countryName(code) {
  if (!code) return 'Unknown';
  try {
    return regionNames.of(code) || code;
  } catch {
    return code;
  }
}

export function eventItem(e) {
  const [icon, label] = eventIcon(e);
  const who = e.user_id
    ? `<a href="#/admin/user/${encodeURIComponent(e.user_id)}" aria-label="Sessions and history of ${esc(e.user_id)}">${esc(e.user_id)}</a>`
    : '';
  const ip = e.ip ? `<a href="#/admin/ip/${encodeURIComponent(e.ip)}" aria-label="Sessions and history from ${esc(e.ip)}">${esc(e.ip)}</a>` : '';
  return `<li class="event sev-${esc(e.severity)}${e.reviewed ? ' reviewed' : ''}" data-event-id="${esc(e.id)}" data-type="${esc(e.event_type)}" data-severity="${esc(e.severity)}">
    <span class="sev" role="img" aria-label="${esc(label)}, ${esc(e.severity)}">${icon}</span>
    <div class="body">
      <p class="desc">${esc(e.description)}</p>
      <p class="meta muted">${timeHtml(e.occurred_at)} · ${esc(humanType(e.event_type))}${who ? ` · user ${who}` : ''}${ip ? ` · ${ip}` : ''}${e.location ? ` · ${esc(e.location)}` : ''}${e.metadata && e.metadata.publisher ? ` · <span class="publisher" title="The credential that appended the event this was derived from">via ${esc(e.metadata.publisher)}</span>` : ''}</p>
    </div>
    <div class="act">${
      e.reviewed
        ? `<span class="badge reviewed" title="${esc(e.reviewed_at || '')}">✔ Reviewed${e.reviewed_by ? ` by ${esc(e.reviewed_by)}` : ''}</span>`
        : `<button type="button" data-action="review" data-id="${esc(e.id)}" aria-label="Mark reviewed: ${esc(e.description)}">Mark reviewed</button>`
    }</div>
  </li>`;
}

function stat(label, value, id) {
  return `<div class="stat" id="${id}"><span class="v">${esc(value)}</span><span class="l">${esc(label)}</span></div>`;
}

export function renderAdmin(main) {
  main.innerHTML = `<section aria-labelledby="h-admin" class="admin">
    <p class="crumbs">Admin Dashboard</p>
    <h1 id="h-admin">Security monitoring</h1>
    <div id="admin-gate">${loadingHtml('security monitoring')}</div>
    <div id="admin-content" hidden>
      <form class="lookup" id="lookup" aria-label="Look up a user or an address">
        <label>User id <input name="user" id="lookup-user" autocomplete="off" placeholder="user-0001"></label>
        <label>IP address <input name="ip" id="lookup-ip" autocomplete="off" placeholder="203.0.113.7"></label>
        <button type="submit">Look up</button>
      </form>

      <section aria-labelledby="h-stats" class="block">
        <h2 id="h-stats">Session statistics
          <label class="small muted">over the last <select id="stats-days" aria-label="Statistics period">
            <option value="1">day</option><option value="7">7 days</option><option value="30" selected>30 days</option><option value="90">90 days</option>
          </select></label></h2>
        <div class="stats" id="session-stats">${loadingHtml('statistics')}</div>
      </section>

      <section aria-labelledby="h-feed" class="block">
        <h2 id="h-feed">Recent security events <span id="live" class="live" data-live="connecting">connecting…</span></h2>
        <form class="filters" id="filters" aria-label="Filter security events">
          <label>Severity <select name="severity" id="f-severity"><option value="">Any</option>${SEVERITIES.map((s) => `<option value="${s}">${humanType(s)}</option>`).join('')}</select></label>
          <label>Type <select name="type" id="f-type"><option value="">All but admin actions</option><option value="*">Everything</option>${EVENT_TYPES.map((t) => `<option value="${t}">${humanType(t)}</option>`).join('')}</select></label>
          <label class="check"><input type="checkbox" name="unreviewed" id="f-unreviewed"> Unreviewed only</label>
        </form>
        <ul class="feed" id="feed" aria-live="polite" aria-relevant="additions">${loadingHtml('security events')}</ul>
      </section>

      <section aria-labelledby="h-alerts" class="block">
        <h2 id="h-alerts">🚨 Alerts</h2>
        <div id="alerts-panel">${loadingHtml('alerts')}</div>
      </section>

      <div class="panels">
        <section aria-labelledby="h-failed" class="block panel"><h2 id="h-failed">🔒 Failed logins</h2><div id="panel-failed">${loadingHtml('failed logins')}</div></section>
        <section aria-labelledby="h-susp" class="block panel"><h2 id="h-susp">⚠️ Suspicious logins</h2><div id="panel-suspicious">${loadingHtml('suspicious logins')}</div></section>
        <section aria-labelledby="h-super" class="block panel"><h2 id="h-super">✅ Super-admin activity</h2><div id="panel-super">${loadingHtml('super-admin activity')}</div></section>
      </div>

      <div class="charts">
        <figure class="block chart" id="chart-logins" data-points="0"><figcaption>Logins per day by outcome</figcaption><div class="canvas"><canvas role="img" aria-label="Logins per day by outcome"></canvas></div></figure>
        <figure class="block chart" id="chart-geo" data-points="0"><figcaption>Logins by country</figcaption><div class="canvas"><canvas role="img" aria-label="Logins by country"></canvas></div></figure>
        <figure class="block chart" id="chart-devices" data-points="0"><figcaption>Device types</figcaption><div class="canvas"><canvas role="img" aria-label="Logins by device type"></canvas></div></figure>
        <figure class="block chart" id="chart-ips" data-points="0"><figcaption>Top failing IP addresses</figcaption><div class="canvas"><canvas role="img" aria-label="IP addresses with the most failed logins"></canvas></div><ol class="ip-list" id="ip-list"></ol></figure>
        <figure class="block chart wide" id="chart-peak" data-points="0"><figcaption>Peak usage times: logins by hour and weekday, last 30 days <span class="muted" id="peak-tz"></span></figcaption><div class="canvas grid">${loadingHtml('peak usage times')}</div></figure>
      </div>
    </div>
  </section>`;

  const $ = (s) => main.querySelector(s);
  const me = claims();
  const abort = new AbortController();
  let gone = false;
  const feed = $('#feed');
  const seen = new Set();
  const filters = { severity: '', type: '', unreviewed: false };
  let alerts = null;

  function matches(e) {
    if (filters.severity && e.severity !== filters.severity) return false;
    if (filters.type === '' && e.event_type === 'admin_action') return false;
    if (filters.type && filters.type !== '*' && e.event_type !== filters.type) return false;
    if (filters.unreviewed && e.reviewed) return false;
    return true;
  }

  async function loadFeed() {
    feed.innerHTML = loadingHtml('security events');
    seen.clear();
    try {
      const q = {
        severity: filters.severity,
        type: filters.type && filters.type !== '*' ? filters.type : undefined,
        unreviewed_only: filters.unreviewed,
        limit: 100,
      };
      const page = await api.get('/api/v1/admin/security-events', q);
      if (gone) return;
      const items = page.items.filter(matches).slice(0, 50);
      items.forEach((e) => seen.add(e.id));
      feed.innerHTML = items.length ? items.map(eventItem).join('') : `<li class="none">${emptyHtml('No security events match these filters.')}</li>`;
      feed.dataset.state = 'ready';
    } catch (e) {
      if (!gone) feed.innerHTML = `<li>${errorHtml(e, e.status === 403 ? 'security monitoring' : 'security events')}</li>`;
    }
  }

  function onLive(type, e) {
    if (type === 'alert') return alerts?.onLive(e);
    if (type !== 'security_event' || seen.has(e.id) || !matches(e)) return;
    seen.add(e.id);
    feed.querySelector('li.none')?.remove();
    feed.insertAdjacentHTML('afterbegin', eventItem(e).replace('class="event ', 'class="event fresh '));
    while (feed.children.length > FEED_MAX) feed.lastElementChild.remove();
  }

  function setLive(state, status) {
    // The stream starts at the projection's position when it connects: whatever was projected
    // between the list's query and then (or while it was down) comes from reloading the list.
    if (state === 'live') {
      loadFeed();
      alerts?.load();
    }
    const el = $('#live');
    el.dataset.live = state;
    el.textContent = { connecting: 'connecting…', live: '● live', retrying: 'reconnecting…', denied: `refused (${status})` }[state];
  }

  async function loadPanels() {
    const [failed, susp, sup] = await Promise.allSettled([
      api.get('/api/v1/admin/login-history', { success: false, limit: 8 }),
      api.get('/api/v1/admin/security/suspicious', { limit: 8 }),
      api.get('/api/v1/admin/security-events', { type: 'login_success', limit: 200 }),
    ]);
    if (gone) return;
    const attempts = (r, what, none) =>
      r.status === 'rejected'
        ? errorHtml(r.reason, what)
        : r.value.items.length
          ? `<ul class="mini">${r.value.items
              .map(
                (a) => `<li><span class="muted">${timeHtml(a.attempted_at)}</span> ${a.user_id ? `<a href="#/admin/user/${encodeURIComponent(a.user_id)}">${esc(a.identifier || a.user_id)}</a>` : esc(a.identifier || 'unknown')}
                  ${a.ip ? ` from <a href="#/admin/ip/${encodeURIComponent(a.ip)}">${esc(a.ip)}</a>` : ''}${a.country ? ` (${esc(a.country)})` : ''}
                  <br><span class="small">${esc(a.suspicious_reason || (a.failure_reason || '').replace(/_/g, ' '))}</span></li>`,
              )
              .join('')}</ul>`
          : emptyHtml(none);
    $('#panel-failed').innerHTML = attempts(failed, 'failed logins', 'No failed logins.');
    $('#panel-suspicious').innerHTML = attempts(susp, 'suspicious logins', 'No suspicious logins.');
    if (sup.status === 'rejected') $('#panel-super').innerHTML = errorHtml(sup.reason, 'super-admin activity');
    else {
      const items = sup.value.items.filter((e) => (e.description || '').startsWith('Super-admin')).slice(0, 8);
      $('#panel-super').innerHTML = items.length
        ? `<ul class="mini">${items.map((e) => `<li><span class="muted">${timeHtml(e.occurred_at)}</span> ${esc(e.description)}${e.ip ? ` · <a href="#/admin/ip/${encodeURIComponent(e.ip)}">${esc(e.ip)}</a>` : ''}</li>`).join('')}</ul>`
        : emptyHtml('No super-admin logins among the recent ones.');
    }
  }

  async function loadStats() {
    // The period the statistics and charts cover (30 days unless the viewer picks another).
    const days = Number($('#stats-days').value) || 30;
    const [logins, geo, devices, ips, active, peak] = await Promise.allSettled([
      api.get('/api/v1/admin/stats/logins', { days }),
      api.get('/api/v1/admin/stats/geo', { days }),
      api.get('/api/v1/admin/stats/devices', { days }),
      api.get('/api/v1/admin/stats/top-failing-ips', { days, limit: 10 }),
      api.all('/api/v1/admin/sessions', { status: 'active' }, 4),
      peakHours(),
    ]);
    if (gone) return;
    const box = $('#session-stats');
    if (logins.status === 'fulfilled' && active.status === 'fulfilled') {
      const l = logins.value;
      const s = active.value.items;
      const users = new Set(s.map((x) => x.user_id)).size;
      const trusted = s.length ? Math.round((100 * s.filter((x) => x.trusted_device).length) / s.length) : 0;
      const more = active.value.complete ? '' : '+';
      box.innerHTML = [
        stat('Active sessions', `${s.length}${more}`, 'st-active'),
        stat('Users signed in', `${users}${more}`, 'st-users'),
        stat('On trusted devices', `${trusted}%`, 'st-trusted'),
        stat('Suspicious active sessions', s.filter((x) => x.suspicious).length, 'st-susp-sessions'),
        stat(`Logins (${days === 1 ? 'day' : `${days} days`})`, l.total, 'st-total'),
        stat('Successful', l.successful, 'st-ok'),
        stat('Failed', l.failed, 'st-failed'),
        stat('Suspicious', l.suspicious, 'st-suspicious'),
      ].join('');
      box.dataset.state = 'ready';
      box.dataset.days = String(days);
    } else {
      box.innerHTML = errorHtml(logins.reason || active.reason, 'statistics');
    }

    const fig = (id) => $(`#${id}`);
    const fail = (id, r, what) => {
      fig(id).querySelector('.canvas').innerHTML = errorHtml(r.reason, what);
    };
    if (logins.status === 'fulfilled') {
      const perDay = logins.value.per_day;
      const labels = perDay.map((d) => new Date(`${d.day}T00:00:00Z`).toLocaleDateString(undefined, { month: 'short', day: 'numeric', timeZone: 'UTC' }));
      barChart(fig('chart-logins'), labels, [
        { label: 'Successful', data: perDay.map((d) => d.successful), backgroundColor: '#2e7d32' },
        { label: 'Failed', data: perDay.map((d) => d.failed), backgroundColor: '#c62828' },
        { label: 'Suspicious', data: perDay.map((d) => d.suspicious), backgroundColor: '#ef8f00' },
      ], { stacked: false });
      fig('chart-logins').dataset.days = String(perDay.length);
    } else fail('chart-logins', logins, 'logins per day');
    if (geo.status === 'fulfilled') {
      const g = geo.value.groups.slice(0, 12);
      barChart(fig('chart-geo'), g.map((x) => countryName(x.key)), [
        { label: 'Successful', data: g.map((x) => x.successful), backgroundColor: '#1565c0' },
        { label: 'Failed', data: g.map((x) => x.failed), backgroundColor: '#c62828' },
      ], { horizontal: true, stacked: true });
    } else fail('chart-geo', geo, 'logins by country');
    if (devices.status === 'fulfilled') {
      const d = devices.value.groups;
      doughnutChart(fig('chart-devices'), d.map((x) => `${deviceIcon(x.key)} ${humanType(x.key || 'unknown')}`), d.map((x) => x.total));
    } else fail('chart-devices', devices, 'device types');
    if (ips.status === 'fulfilled') {
      const list = ips.value.ips;
      barChart(fig('chart-ips'), list.map((x) => x.ip), [{ label: 'Failed logins', data: list.map((x) => x.failures), backgroundColor: '#c62828' }], { horizontal: true });
      $('#ip-list').innerHTML = list
        .map((x) => `<li><a href="#/admin/ip/${encodeURIComponent(x.ip)}">${esc(x.ip)}</a> — ${x.failures} failures on ${x.accounts} account${x.accounts === 1 ? '' : 's'}, last ${timeHtml(x.last_failure_at)}</li>`)
        .join('');
    } else fail('chart-ips', ips, 'top failing addresses');
    if (peak.status === 'fulfilled') {
      $('#peak-tz').textContent = `(${peak.value.tz} time)`;
      fig('chart-peak').dataset.tz = peak.value.tz;
      heatmap(fig('chart-peak'), peak.value.cells);
    } else fail('chart-peak', peak, 'peak usage times');
  }

  // In the viewer's time zone; UTC when the server does not know the browser's zone name.
  async function peakHours() {
    try {
      return await api.get('/api/v1/admin/stats/peak-hours', { days: 30, tz: timeZone });
    } catch (e) {
      if (e.status !== 400 || timeZone === 'UTC') throw e;
      return api.get('/api/v1/admin/stats/peak-hours', { days: 30, tz: 'UTC' });
    }
  }

  feed.addEventListener('click', async (ev) => {
    const b = ev.target.closest('button');
    if (!b) return;
    if (b.dataset.action === 'retry') return loadFeed();
    if (b.dataset.action !== 'review') return;
    b.disabled = true;
    b.textContent = 'Saving…';
    try {
      await api.post(`/api/v1/admin/security-events/${encodeURIComponent(b.dataset.id)}/review`, undefined, { wait: true });
      const li = b.closest('li');
      li.classList.add('reviewed');
      b.outerHTML = `<span class="badge reviewed">✔ Reviewed by ${esc(me?.sub || 'you')}</span>`;
      announce('Marked reviewed.');
      if (filters.unreviewed) li.remove();
    } catch (e) {
      b.disabled = false;
      b.textContent = 'Mark reviewed';
      announce(`Could not mark reviewed: ${e.message}`);
    }
  });

  $('#stats-days').addEventListener('change', () => loadStats());
  $('#filters').addEventListener('change', (ev) => {
    const f = ev.currentTarget;
    filters.severity = f.severity.value;
    filters.type = f.type.value;
    filters.unreviewed = f.unreviewed.checked;
    loadFeed();
  });
  $('#lookup').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const u = $('#lookup-user').value.trim();
    const ip = $('#lookup-ip').value.trim();
    if (u) location.hash = `#/admin/user/${encodeURIComponent(u)}`;
    else if (ip) location.hash = `#/admin/ip/${encodeURIComponent(ip)}`;
  });

  // The first request decides whether this caller may see the page at all.
  (async () => {
    await loadFeed();
    if (gone) return;
    const refused = feed.querySelector('[data-state="forbidden"],[data-state="unauthenticated"]');
    if (refused) {
      $('#admin-gate').innerHTML = refused.outerHTML;
      return;
    }
    $('#admin-gate').innerHTML = '';
    $('#admin-gate').hidden = true;
    $('#admin-content').hidden = false;
    alerts = alertsPanel($('#alerts-panel'), () => gone);
    streamEvents('/api/v1/admin/security-events/stream', { onEvent: onLive, onState: setLive, signal: abort.signal });
    loadPanels();
    loadStats();
  })();

  return {
    cleanup() {
      gone = true;
      abort.abort();
      destroyCharts(main);
    },
  };
}
