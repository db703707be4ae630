// The postMessage sign-in: the embedding application hands the dashboard its token with
// `iframe.contentWindow.postMessage({type: 'authtrail:token', token}, '<dashboard origin>')`.
//
// A message is accepted only from the embedding window (`parent`, never the page itself) and only
// from an origin the server lists (`web.token_origins`, served by GET /ui/config): any other page
// that manages to frame or open the dashboard cannot sign it in as someone of its choosing. An
// empty list (the default) turns this sign-in off. Messages that arrive before the list is known
// wait (at most MAX_WAITING), then pass the same check.
//
// Pure (no DOM access) so that `node --test` can check it: src/inbox.test.js.

const MAX_WAITING = 4;

/**
 * @param {{parent: unknown, self: unknown, onToken: (token: string) => void, onRefused?: (origin: string) => void}} opts
 * @returns {{configure: (origins: unknown) => void, receive: (ev: MessageEvent) => void}}
 */
export function tokenInbox({ parent, self, onToken, onRefused = () => {} }) {
  let origins = null;
  const waiting = [];
  const decide = (origin, token) => {
    if (origins.includes(origin)) onToken(token);
    else onRefused(origin);
  };
  return {
    /** The allowed origins (anything but a list of strings allows none). */
    configure(list) {
      origins = Array.isArray(list) ? list.filter((o) => typeof o === 'string' && o !== 'null') : [];
      for (const m of waiting.splice(0)) decide(m.origin, m.token);
    },
    receive(ev) {
      if (!ev || ev.source !== parent || ev.source === self) return;
      const d = ev.data;
      if (!d || d.type !== 'authtrail:token' || typeof d.token !== 'string') return;
      const origin = String(ev.origin);
      if (origins === null) {
        if (waiting.length < MAX_WAITING) waiting.push({ origin, token: d.token });
        return;
      }
      decide(origin, d.token);
    },
  };
}
