/** Unit tests: builders, validation, the bundled schemas, keys. No network. */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import * as sdk from "../dist/index.js";
import { AUTHTRAIL_ONLY, builderName, EVENTS_DIR, loadExamples, PACKAGE_ROOT } from "./helpers.js";
import { freshEvents, rebuild } from "./vectors.js";

const SOURCE = "/services/sdk-node-test";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe("bundled schemas", () => {
  it("are byte-identical to events/schema (npm run sync-schemas refreshes them)", () => {
    const repo = join(EVENTS_DIR, "schema");
    const bundled = join(PACKAGE_ROOT, "schema");
    const names = readdirSync(repo).filter((f) => f.endsWith(".schema.json")).sort();
    assert.ok(names.length > 0, `no schemas in ${repo}`);
    assert.deepEqual(readdirSync(bundled).filter((f) => f.endsWith(".schema.json")).sort(), names);
    for (const f of names) {
      assert.ok(readFileSync(join(bundled, f)).equals(readFileSync(join(repo, f))), `${f} differs; run npm run sync-schemas`);
    }
  });

  it("cover every publishable type and the authtrail-only ones", () => {
    const types = sdk.schemaTypes();
    for (const t of [...sdk.PUBLISHABLE_TYPES, ...sdk.AUTHTRAIL_ONLY_TYPES]) assert.ok(types.has(t), t);
    assert.equal(types.size, sdk.PUBLISHABLE_TYPES.length + sdk.AUTHTRAIL_ONLY_TYPES.length);
  });
});

describe("examples as test vectors", () => {
  const examples = loadExamples();
  it("there is an example of every publishable type", () => {
    const seen = new Set(examples.map((e) => e.event.type));
    for (const t of sdk.PUBLISHABLE_TYPES) assert.ok(seen.has(t), t);
  });
  for (const example of examples) {
    it(`${example.file} validates against the bundled schema`, () => {
      assert.deepEqual(sdk.eventViolations(example.event, { readOnly: true }), []);
    });
    if (AUTHTRAIL_ONLY.has(example.event.type)) {
      it(`${example.file} is refused from publishers`, () => {
        assert.equal(sdk.isValidEvent(example.event), false);
        assert.equal((sdk.builders as Record<string, unknown>)[builderName(example.event.type)], undefined);
      });
      continue;
    }
    it(`${example.file} is rebuilt from plain arguments`, () => {
      const built = rebuild(example);
      assert.deepEqual(built, example.event);
      // Same members in the same order as the example, too.
      assert.equal(JSON.stringify(built), JSON.stringify(example.event));
    });
  }
});

describe("builders", () => {
  it("fill in id, time, specversion, schemaversion, datacontenttype and never publisher", () => {
    const before = Date.now();
    const e = sdk.sessionLoggedOut({ source: SOURCE, userId: "u1", sessionId: "s1" });
    assert.match(e.id, UUID);
    assert.match(e.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
    assert.ok(Date.parse(e.time) >= before - 1 && Date.parse(e.time) <= Date.now());
    assert.equal(e.specversion, "1.0");
    assert.equal(e.schemaversion, 1);
    assert.equal(e.datacontenttype, "application/json");
    assert.equal(e.source, SOURCE);
    assert.equal(e.subject, "u1");
    assert.ok(!("publisher" in e));
    assert.notEqual(sdk.sessionLoggedOut({ source: SOURCE, userId: "u1", sessionId: "s1" }).id, e.id);
  });

  it("take Dates and write them as UTC RFC 3339 with Z", () => {
    const e = sdk.accountLocked({
      source: SOURCE,
      userId: "u1",
      reason: "too_many_failed_logins",
      time: new Date("2026-01-01T10:00:00+02:00"),
      until: new Date("2026-01-01T09:00:00Z"),
    });
    assert.equal(e.time, "2026-01-01T08:00:00.000Z");
    assert.equal(e.data.until, "2026-01-01T09:00:00.000Z");
  });

  it("leave optional fields out rather than null", () => {
    const e = sdk.loginSucceeded({ source: SOURCE, userId: "u", sessionId: "s", loginMethod: "sso", expiresAt: new Date(Date.now() + 1000) });
    assert.deepEqual(Object.keys(e.data), ["session_id", "login_method", "expires_at"]);
  });

  it("createEvents binds the source", () => {
    const e = sdk.createEvents(SOURCE).otpSent({ userId: "u", channel: "email" });
    assert.equal(e.source, SOURCE);
    assert.deepEqual(e.data, { channel: "email" });
  });

  it("build a valid event of every publishable type", () => {
    const events = freshEvents();
    assert.deepEqual(new Set(events.map((e) => e.type)), new Set(sdk.PUBLISHABLE_TYPES));
    for (const e of events) assert.deepEqual(sdk.eventViolations(e), [], e.type);
  });

  const refused: Array<[string, () => unknown, string]> = [
    ["a raw JWT as refresh token id", () => sdk.loginSucceeded({ source: SOURCE, userId: "u", sessionId: "s", loginMethod: "password", expiresAt: new Date(Date.now() + 1000), refreshTokenId: "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.c2lnbmF0dXJl" }), "data.refresh_token_id"],
    ["expires_at not after time", () => sdk.loginSucceeded({ source: SOURCE, userId: "u", sessionId: "s", loginMethod: "password", expiresAt: "2020-01-01T00:00:00Z", time: "2020-01-01T00:00:00Z" }), "data.expires_at"],
    ["an unknown login method", () => sdk.loginSucceeded({ source: SOURCE, userId: "u", sessionId: "s", loginMethod: "magic" as sdk.LoginMethod, expiresAt: new Date(Date.now() + 1000) }), "data.login_method"],
    ["a bad IP", () => sdk.sessionActivity({ source: SOURCE, userId: "u", sessionId: "s", ip: "not-an-ip" }), "data.ip"],
    ["a session id with spaces", () => sdk.sessionLoggedOut({ source: SOURCE, userId: "u", sessionId: "has space" }), "data.session_id"],
    ["an unrotated refresh token", () => sdk.tokenRefreshed({ source: SOURCE, userId: "u", sessionId: "s", refreshTokenId: "rt", previousRefreshTokenId: "rt", expiresAt: new Date(Date.now() + 1000) }), "data.refresh_token_id"],
    ["login.failed without subject for a known user", () => sdk.loginFailed({ source: SOURCE, identifier: "a@b.c", failureReason: "bad_password" }), "subject"],
    ["session.revoked one without session", () => sdk.sessionRevoked({ source: SOURCE, userId: "u", scope: "one", reason: "r", revokedBy: "system" }), "data.session_id"],
    ["a bidi override in the identifier", () => sdk.loginFailed({ source: SOURCE, userId: "u", identifier: "admin\u202e", failureReason: "bad_password" }), "data.identifier"],
    ["a control character in the user agent", () => sdk.sessionActivity({ source: SOURCE, userId: "u", sessionId: "s", userAgent: "a\u0007b" }), "data.user_agent"],
    ["a 2049-character reason", () => sdk.accountLocked({ source: SOURCE, userId: "u", reason: "x".repeat(2049) }), "data.reason"],
    ["a bad id", () => sdk.passwordChanged({ source: SOURCE, userId: "u", id: "not-a-uuid" }), "id"],
    ["a time without offset", () => sdk.passwordChanged({ source: SOURCE, userId: "u", time: "2026-01-01T00:00:00" }), "time"],
    ["an empty source", () => sdk.passwordChanged({ source: "", userId: "u" }), "source"],
  ];
  for (const [what, build, field] of refused) {
    it(`refuse ${what}, naming ${field}`, () => {
      assert.throws(build, (e: unknown) => {
        assert.ok(e instanceof sdk.EventValidationError);
        assert.ok(e.violations.some((v) => v.field === field), JSON.stringify(e.violations));
        return true;
      });
    });
  }
});

describe("validation of hand-made events", () => {
  const base = () => JSON.parse(JSON.stringify(loadExamples().find((e) => e.file === "login.succeeded.json")!.event)) as Record<string, any>;

  it("refuses members named like secrets, anywhere, without echoing the value", () => {
    for (const name of ["password", "Token", "otp", "refresh_token", "cookie"]) {
      const e = base();
      e.data[name] = "hunter2-secret-value";
      const v = sdk.eventViolations(e);
      assert.ok(v.some((x) => x.field === `data.${name}` && /secret/.test(x.reason)), `${name}: ${JSON.stringify(v)}`);
      assert.ok(!JSON.stringify(v).includes("hunter2"));
    }
  });

  it("refuses a Bearer JWT inside free text", () => {
    const e = base();
    e.data.user_agent = "curl Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.c2ln";
    assert.ok(sdk.eventViolations(e).some((x) => x.field === "data.user_agent" && /JWT/.test(x.reason)));
  });

  it("refuses publisher, unknown fields, unknown types and authtrail-only types", () => {
    const e = base();
    e.publisher = "api-key:x";
    e.data.sesion_id = "s";
    const v = sdk.eventViolations(e);
    assert.ok(v.some((x) => x.field === "publisher"));
    assert.ok(v.some((x) => x.field === "data.sesion_id" && /unknown field/.test(x.reason)));
    assert.equal(sdk.eventViolations({ ...base(), type: "login.maybe" })[0]?.field, "type");
    assert.match(sdk.eventViolations({ ...base(), type: "admin.action" })[0]?.reason ?? "", /only by authtrail/);
  });

  it("refuses events over 64 KiB", () => {
    const e = base();
    e.data.roles = Array.from({ length: 40 }, () => "r".repeat(2000));
    assert.ok(sdk.eventViolations(e).some((x) => x.field === "(event)"));
  });
});

describe("eventKey", () => {
  it("is the subject, or the lower-cased identifier of an unknown user's login.failed", () => {
    const [known, unknown] = loadExamples()
      .filter((e) => e.event.type === "login.failed")
      .map((e) => e.event as unknown as sdk.AuthtrailEvent);
    assert.equal(sdk.eventKey(known!), "7c9e6679-7425-40de-944b-e07fc1f90ae7");
    assert.equal(sdk.eventKey(unknown!), "mallory@example.com");
  });
});

describe("sessionIdFrom", () => {
  it("is ex_ and the first 32 hex digits of the secret's SHA-256", () => {
    // sha256("abc") = ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
    assert.equal(sdk.sessionIdFrom("abc"), "ex_ba7816bf8f01cfea414140de5dae2223");
    const e = sdk.sessionLoggedOut({ source: SOURCE, userId: "u", sessionId: sdk.sessionIdFrom("cookie-value") });
    assert.ok(sdk.isValidEvent(e));
  });
});
