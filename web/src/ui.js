import { esc } from './format.js';

/** Tells screen readers (and tests) what just happened. */
export function announce(msg) {
  const el = document.getElementById('status');
  el.textContent = '';
  // A new text node each time, so the same message is announced twice.
  setTimeout(() => (el.textContent = msg), 10);
}

export function loadingHtml(what) {
  return `<p class="loading" data-state="loading" aria-busy="true"><span class="spinner" aria-hidden="true"></span> Loading ${esc(what)}…</p>`;
}

export function emptyHtml(msg) {
  return `<p class="empty" data-state="empty">${esc(msg)}</p>`;
}

/** An error as the page shows it: 401 and 403 say what the API refused. */
export function errorHtml(err, what) {
  if (err && err.status === 403) {
    return `<div class="error" role="alert" data-state="forbidden">
      <strong>You don't have access to ${esc(what)}.</strong>
      <p>The API refused this request (403 Forbidden): it needs an admin account.</p></div>`;
  }
  if (err && err.status === 401) {
    return `<div class="error" role="alert" data-state="unauthenticated">
      <strong>Your sign-in is not valid any more.</strong>
      <p>The API answered 401. <a href="#/signin">Sign in again</a>.</p></div>`;
  }
  const detail = (err && err.message) || 'unknown error';
  return `<div class="error" role="alert" data-state="error"><strong>Could not load ${esc(what)}.</strong>
    <p>${esc(detail)}${err && err.status ? ` (HTTP ${err.status})` : ''}</p>
    <button type="button" data-action="retry">Try again</button></div>`;
}

/** A confirmation dialog; resolves true when the person confirms. */
export function confirmDialog(title, text, okLabel) {
  const dlg = document.getElementById('confirm');
  document.getElementById('confirm-title').textContent = title;
  document.getElementById('confirm-text').textContent = text;
  document.getElementById('confirm-ok').textContent = okLabel;
  const before = document.activeElement;
  return new Promise((resolve) => {
    dlg.addEventListener(
      'close',
      () => {
        resolve(dlg.returnValue === 'ok');
        if (before && before.focus) before.focus();
      },
      { once: true },
    );
    dlg.returnValue = 'cancel';
    dlg.showModal();
    document.getElementById('confirm-cancel').focus();
  });
}
