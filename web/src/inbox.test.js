// The postMessage sign-in accepts tokens only from the embedding window and only from the
// origins the server lists (web.token_origins). Run with `npm test`; tests/security/browser.rs
// runs this file too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tokenInbox } from './inbox.js';

const parent = { name: 'parent' };
const self = { name: 'self' };

function inbox() {
  const got = [];
  const refused = [];
  const box = tokenInbox({ parent, self, onToken: (t) => got.push(t), onRefused: (o) => refused.push(o) });
  return { box, got, refused };
}

const msg = (origin, token = 'tok', source = parent) => ({ source, origin, data: { type: 'authtrail:token', token } });

test('a token posted from an unlisted origin does not sign in', () => {
  const { box, got, refused } = inbox();
  box.configure(['https://portal.example.com']);
  box.receive(msg('https://evil.example.com'));
  box.receive(msg('https://portal.example.com.evil.example'));
  box.receive(msg('http://portal.example.com'));
  box.receive(msg('null'));
  assert.deepEqual(got, []);
  assert.equal(refused.length, 4);
  box.receive(msg('https://portal.example.com', 'good'));
  assert.deepEqual(got, ['good']);
});

test('with no origins configured (the default) postMessage never signs in', () => {
  for (const list of [[], undefined, null, 'https://portal.example.com', [null, 'null']]) {
    const { box, got } = inbox();
    box.configure(list);
    box.receive(msg('https://portal.example.com'));
    box.receive(msg('null'));
    assert.deepEqual(got, [], `list ${JSON.stringify(list)}`);
  }
});

test('messages before the configuration is known wait, then pass the same check', () => {
  const { box, got } = inbox();
  box.receive(msg('https://evil.example.com', 'bad'));
  box.receive(msg('https://portal.example.com', 'good'));
  assert.deepEqual(got, []);
  box.configure(['https://portal.example.com']);
  assert.deepEqual(got, ['good']);
});

test('only the embedding window may post, never the page itself or another window', () => {
  const { box, got } = inbox();
  box.configure(['https://portal.example.com']);
  box.receive(msg('https://portal.example.com', 'from-self', self));
  box.receive(msg('https://portal.example.com', 'from-popup', { name: 'other' }));
  const top = tokenInbox({ parent: self, self, onToken: (t) => got.push(t) });
  top.configure(['https://portal.example.com']);
  top.receive(msg('https://portal.example.com', 'top-level', self));
  box.receive({ source: parent, origin: 'https://portal.example.com', data: { type: 'authtrail:token', token: 42 } });
  box.receive({ source: parent, origin: 'https://portal.example.com', data: 'authtrail:token' });
  assert.deepEqual(got, []);
});
