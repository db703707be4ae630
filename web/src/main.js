// authtrail dashboard: hash routes, the bearer token, and the pages.
//
// Token: the host application provides it as `#token=<jwt>` (removed from the address at once),
// or by `postMessage({type: 'authtrail:token', token})` from the embedding window when its origin
// is one of `web.token_origins` (src/inbox.js); it is kept in memory and sessionStorage
// ('authtrail.token', this tab only). With the server's demo flag on, a demo sign-in can mint one.

import './style.css';
import { api, claims, getToken, isAdmin, pageConfig, setToken } from './api.js';
import { tokenInbox } from './inbox.js';
import { esc, refreshRelativeTimes } from './format.js';
import { renderSessions } from './pages/sessions.js';
import { renderHistory } from './pages/history.js';
import { renderAdmin } from './pages/admin.js';
import { renderUser, renderIp } from './pages/drill.js';
import { renderSignin } from './pages/signin.js';

const main = document.getElementById('main');
let cleanup = null;

function takeTokenFromAddress() {
  const h = location.hash.replace(/^#/, '');
  if (!h.startsWith('token=') && !h.includes('&token=')) return;
  const params = new URLSearchParams(h);
  const t = params.get('token');
  const next = params.get('page');
  if (t) setToken(t);
  history.replaceState(null, '', location.pathname + location.search + (next ? `#/${next}` : '#/sessions'));
}

// Every decided message is counted on <html data-token-messages> (the end-to-end test waits on it).
const decided = () => {
  const el = document.documentElement;
  el.dataset.tokenMessages = String(Number(el.dataset.tokenMessages || 0) + 1);
};
const inbox = tokenInbox({
  parent: window.parent,
  self: window,
  onToken: (token) => {
    setToken(token);
    decided();
    // Signed in from the sign-in page: on to the sessions (hashchange routes).
    if (location.hash === '#/signin') location.hash = '#/sessions';
    else route();
  },
  onRefused: (origin) => {
    console.warn(`authtrail: ignored a token posted from ${origin}, which is not in web.token_origins`);
    decided();
  },
});
window.addEventListener('message', (ev) => inbox.receive(ev));
pageConfig().then((cfg) => inbox.configure(cfg.token_origins));

function renderNav(c) {
  const links = [
    ['#/sessions', 'Active sessions'],
    ['#/history', 'Login history'],
  ];
  if (isAdmin(c)) links.push(['#/admin', 'Security monitoring']);
  const here = location.hash.split('/').slice(0, 2).join('/');
  document.getElementById('nav').innerHTML = c
    ? links
        .map(([href, label]) => `<a href="${href}"${href === here ? ' aria-current="page"' : ''}>${esc(label)}</a>`)
        .join('')
    : '';
  const name = c ? c.email || identifiers.get(c.sub) || c.sub : '';
  document.getElementById('who').innerHTML = c
    ? `<span class="whoami" title="Signed in as ${esc(name)} (${esc(c.role)}; user id ${esc(c.sub)})"><span class="whoami-name">${esc(name)}</span> · ${esc(c.role)}</span>
       <button type="button" id="signout" class="link">Sign out</button>`
    : '';
  if (c && !c.email && !identifiers.has(c.sub)) showIdentifier(c.sub);
  const so = document.getElementById('signout');
  if (so)
    so.addEventListener('click', () => {
      setToken(null);
      location.hash = '#/signin';
    });
}

// The header names the person by what they sign in with (the identifier their logins carry),
// not by the user id: looked up once per user from their latest session.
const identifiers = new Map();
async function showIdentifier(sub) {
  identifiers.set(sub, null);
  try {
    const page = await api.get('/api/v1/auth/sessions', { status: 'all', limit: 1 });
    const id = page.items[0] && page.items[0].identifier;
    if (!id) return;
    identifiers.set(sub, id);
    const c = getToken() ? claims() : null;
    const el = document.querySelector('#who .whoami-name');
    if (c && c.sub === sub && el) {
      el.textContent = id;
      el.parentElement.title = `Signed in as ${id} (${c.role}; user id ${sub})`;
    }
  } catch {
    identifiers.delete(sub);
  }
}

async function route() {
  takeTokenFromAddress();
  if (cleanup) {
    try {
      cleanup();
    } catch {
      /* ignore */
    }
    cleanup = null;
  }
  const c = getToken() ? claims() : null;
  let path = location.hash.replace(/^#/, '') || '/';
  if (!c && path !== '/signin') {
    path = '/signin';
    history.replaceState(null, '', '#/signin');
  }
  if (path === '/') {
    path = '/sessions';
    history.replaceState(null, '', '#/sessions');
  }
  renderNav(c);
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  main.innerHTML = '';
  let page;
  switch (parts[0]) {
    case 'signin':
      page = renderSignin(main, { onSignedIn: (to) => (location.hash = to) });
      document.title = 'Sign in — authtrail';
      break;
    case 'history':
      page = renderHistory(main);
      document.title = 'Login history — authtrail';
      break;
    case 'admin':
      if (parts[1] === 'user' && parts[2]) {
        page = renderUser(main, parts[2]);
        document.title = `User ${parts[2]} — authtrail`;
      } else if (parts[1] === 'ip' && parts[2]) {
        page = renderIp(main, parts[2]);
        document.title = `Address ${parts[2]} — authtrail`;
      } else {
        page = renderAdmin(main);
        document.title = 'Security monitoring — authtrail';
      }
      break;
    case 'sessions':
    default:
      page = renderSessions(main);
      document.title = 'Active sessions — authtrail';
  }
  cleanup = page && page.cleanup;
  main.focus({ preventScroll: true });
}

window.addEventListener('hashchange', route);
setInterval(() => refreshRelativeTimes(main), 30_000);
route();
