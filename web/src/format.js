// Names, icons and times as people read them.

/** Escapes text for HTML. */
export function esc(s) {
  return String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
}

const absolute = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
export const timeZone = Intl.DateTimeFormat().resolvedOptions().timeZone;

/** "Nov 25, 2026, 1:05 PM" in the viewer's time zone. */
export function localTime(iso) {
  return iso ? absolute.format(new Date(iso)) : '';
}

/**
 * "2 hours ago", "just now". Never in the future: a time ahead of this browser's clock (a
 * publisher's or this machine's clock running fast) reads "just now", not "in 45 minutes".
 */
export function relative(iso, now = Date.now()) {
  if (!iso) return '';
  const s = Math.min(0, Math.round((new Date(iso).getTime() - now) / 1000));
  const a = Math.abs(s);
  if (a < 45) return 'just now';
  if (a < 3600) return rtf.format(Math.round(s / 60), 'minute');
  if (a < 86400) return rtf.format(Math.round(s / 3600), 'hour');
  if (a < 86400 * 30) return rtf.format(Math.round(s / 86400), 'day');
  if (a < 86400 * 365) return rtf.format(Math.round(s / (86400 * 30)), 'month');
  return rtf.format(Math.round(s / (86400 * 365)), 'year');
}

/** <time> with the local time visible and the relative one beside it (or the other way). */
export function timeHtml(iso, { rel = true } = {}) {
  if (!iso) return '<span class="muted">—</span>';
  const r = relative(iso);
  return `<time datetime="${esc(iso)}"${rel ? ' data-rel' : ''} title="${esc(localTime(iso))} (${esc(timeZone)})">${rel ? esc(r) : esc(localTime(iso))}</time>`;
}

/** Keeps relative times true while a page stays open ("just now" becomes "5 minutes ago"). */
export function refreshRelativeTimes(root = document) {
  const now = Date.now();
  root.querySelectorAll('time[data-rel]').forEach((t) => {
    const r = relative(t.getAttribute('datetime'), now);
    if (t.textContent !== r) t.textContent = r;
  });
}

export function deviceIcon(type) {
  switch (type) {
    case 'mobile':
      return '📱';
    case 'tablet':
      return '📲';
    case 'desktop':
      return '💻';
    case 'bot':
      return '🤖';
    default:
      return '🖥️';
  }
}

function browserName(b) {
  if (!b) return null;
  return b
    .replace(/^Mobile Safari( UI\/WKWebView)?$/, 'Safari')
    .replace(/^Chrome Mobile( iOS| WebView)?$/, 'Chrome')
    .replace(/^Firefox (Mobile|iOS)$/, 'Firefox')
    .replace(/^Edge Mobile$/, 'Edge');
}

function machineName(os, type) {
  if (!os) return null;
  if (os === 'iOS') return type === 'tablet' ? 'iPad' : 'iPhone';
  if (os === 'iPadOS') return 'iPad';
  if (os === 'Mac OS X' || os === 'macOS') return 'Mac';
  if (os.startsWith('Windows')) return 'Windows PC';
  if (os === 'Android') return type === 'tablet' ? 'Android tablet' : 'Android phone';
  if (os === 'Chrome OS') return 'Chromebook';
  if (['Linux', 'Ubuntu', 'Fedora', 'Debian'].includes(os)) return 'Linux PC';
  return os;
}

/** "iPhone — Safari", "Windows PC — Chrome", from what enrichment parsed out of the user agent. */
export function deviceLabel(x) {
  const m = machineName(x.os, x.device_type);
  const b = browserName(x.browser);
  if (m && b) return `${m} — ${b}`;
  return m || b || x.device_name || 'Unknown device';
}

export function place(x) {
  const parts = [x.city, x.country || x.country_code].filter(Boolean);
  return parts.length ? parts.join(', ') : 'Unknown location';
}

/** Severity and type of a security event as an icon with a text label for assistive tech. */
export function eventIcon(e) {
  const d = e.description || '';
  if (e.event_type === 'device_trusted') return ['📱', 'Device trusted'];
  if (d.startsWith('Super-admin login')) return ['✅', 'Super-admin login'];
  if (d.startsWith('Failed login attempts')) return ['🔒', 'Repeated failed logins'];
  if (e.event_type === 'login_failure') return ['🔒', 'Failed login'];
  if (e.severity === 'critical') return ['🛑', 'Critical'];
  if (e.severity === 'error') return ['❗', 'Error'];
  if (e.severity === 'warning') return ['⚠️', 'Warning'];
  if (e.event_type === 'login_success') return ['✅', 'Login'];
  return ['ℹ️', 'Information'];
}

export const SEVERITIES = ['info', 'warning', 'error', 'critical'];
export const EVENT_TYPES = [
  'login_success',
  'login_failure',
  'otp_sent',
  'otp_verified',
  'otp_failed',
  'session_revoked',
  'device_trusted',
  'device_revoked',
  'password_changed',
  'account_locked',
  'account_unlocked',
  'suspicious_activity',
  'admin_action',
];

export function humanType(t) {
  const s = t.replace(/_/g, ' ');
  return s.charAt(0).toUpperCase() + s.slice(1);
}
