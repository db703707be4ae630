// Unit tests of what people read: device names, places, relative times, feed icons.
// Run with `npm test` (node --test); tests/web_e2e.rs runs them too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deviceIcon, deviceLabel, esc, eventIcon, place, relative } from './format.js';

test('device names as in the seed: "iPhone — Safari", "Windows PC — Chrome"', () => {
  assert.equal(deviceLabel({ os: 'iOS', browser: 'Mobile Safari', device_type: 'mobile' }), 'iPhone — Safari');
  assert.equal(deviceLabel({ os: 'iOS', browser: 'Mobile Safari', device_type: 'tablet' }), 'iPad — Safari');
  assert.equal(deviceLabel({ os: 'Windows', browser: 'Chrome', device_type: 'desktop' }), 'Windows PC — Chrome');
  assert.equal(deviceLabel({ os: 'Mac OS X', browser: 'Safari', device_type: 'desktop' }), 'Mac — Safari');
  assert.equal(deviceLabel({ os: 'Android', browser: 'Chrome Mobile', device_type: 'mobile' }), 'Android phone — Chrome');
  assert.equal(deviceLabel({ os: 'Ubuntu', browser: 'Firefox', device_type: 'desktop' }), 'Linux PC — Firefox');
  assert.equal(deviceLabel({ device_name: 'curl' }), 'curl');
  assert.equal(deviceLabel({}), 'Unknown device');
});

test('device icons by type', () => {
  assert.equal(deviceIcon('mobile'), '📱');
  assert.equal(deviceIcon('desktop'), '💻');
  assert.equal(deviceIcon(null), '🖥️');
});

test('places', () => {
  assert.equal(place({ city: 'London', country: 'United Kingdom' }), 'London, United Kingdom');
  assert.equal(place({ country_code: 'SE' }), 'SE');
  assert.equal(place({}), 'Unknown location');
});

test('relative times', () => {
  const now = Date.parse('2026-01-01T12:00:00Z');
  assert.equal(relative('2026-01-01T11:59:50Z', now), 'just now');
  assert.equal(relative('2026-01-01T10:00:00Z', now), '2 hours ago');
  assert.equal(relative('2026-01-01T11:55:00Z', now), '5 minutes ago');
  assert.equal(relative('2025-12-29T12:00:00Z', now), '3 days ago');
  assert.equal(relative(null, now), '');
  // Nothing is shown as happening in the future.
  assert.equal(relative('2026-01-01T12:45:00Z', now), 'just now');
  assert.equal(relative('2026-01-03T12:00:00Z', now), 'just now');
});

test('feed icons follow the seed: ⚠️ suspicious, ✅ super-admin, 🔒 failed attempts, 📱 device trust', () => {
  const e = (event_type, severity, description) => eventIcon({ event_type, severity, description })[0];
  assert.equal(e('suspicious_activity', 'warning', 'Suspicious login — john@example.com from Russia'), '⚠️');
  assert.equal(e('login_success', 'info', 'Super-admin login — admin@x (OTP verified)'), '✅');
  assert.equal(e('suspicious_activity', 'warning', 'Failed login attempts — jane@example.com (3 attempts)'), '🔒');
  assert.equal(e('device_trusted', 'info', 'New device trusted — mike'), '📱');
  assert.equal(e('account_locked', 'critical', 'Account locked'), '🛑');
});

test('escaping', () => {
  assert.equal(esc('<img src=x onerror="a">&\''), '&lt;img src=x onerror=&quot;a&quot;&gt;&amp;&#39;');
});
