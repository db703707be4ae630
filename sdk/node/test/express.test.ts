/** Unit tests of the Express hooks and requireActiveSession, with a recording publisher. */
import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import { after, before, describe, it } from "node:test";
import express from "express";
import * as sdk from "../dist/index.js";
import { startStub, type Stub } from "./stub.js";

const IPHONE_UA =
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";

/** Keeps what would have been sent, as the bytes a transport would send. */
class RecordingPublisher implements sdk.Publisher {
  readonly sent: string[] = [];
  async publish(event: sdk.AuthtrailEvent): Promise<void> {
    sdk.assertValidEvent(event);
    this.sent.push(JSON.stringify(event));
  }
  async publishMany(events: readonly sdk.AuthtrailEvent[]): Promise<void> {
    for (const e of events) await this.publish(e);
  }
  async close(): Promise<void> {}
}

async function listen(app: express.Express): Promise<{ server: Server; url: string }> {
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, "127.0.0.1", () => resolve(s));
  });
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

describe("authtrailHooks", () => {
  const publisher = new RecordingPublisher();
  let server: Server;
  let url: string;
  before(async () => {
    const app = express();
    app.set("trust proxy", "loopback");
    app.use(express.json());
    const hooks = authtrail(true);
    const untrusting = authtrail(false);
    function authtrail(trustProxy: boolean) {
      return sdk.authtrailHooks({ publisher, source: "/services/test", trustProxy });
    }
    app.post("/login", async (req, res) => {
      const { identifier, password } = req.body as { identifier: string; password: string };
      if (password !== "right") {
        await hooks.onLoginFailed(req, { identifier, reason: "bad_password", userId: "u1", loginMethod: "password" });
        res.status(401).end();
        return;
      }
      const e = await hooks.onLogin(req, { userId: "u1", sessionId: "s1", loginMethod: "password", expiresAt: new Date(Date.now() + 60_000), identifier, refreshTokenId: "rt1" });
      res.json(e);
    });
    app.post("/login-untrusting", async (req, res) => {
      res.json(await untrusting.onLogin(req, { userId: "u1", sessionId: "s1", loginMethod: "password", expiresAt: new Date(Date.now() + 60_000) }));
    });
    app.post("/refresh", async (req, res) => {
      res.json(await hooks.onRefresh(req, { userId: "u1", sessionId: "s1", refreshTokenId: "rt2", previousRefreshTokenId: "rt1", expiresAt: new Date(Date.now() + 60_000) }));
    });
    app.post("/logout", async (req, res) => {
      res.json(await hooks.onLogout(req, { userId: "u1", sessionId: "s1" }));
    });
    ({ server, url } = await listen(app));
  });
  after(() => server.close());

  const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${url}${path}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });

  it("onLogin takes the IP from req.ip (trusted loopback proxy) and the user agent", async () => {
    const res = await post("/login", { identifier: "alice@example.com", password: "right" }, { "x-forwarded-for": "81.2.69.142", "user-agent": IPHONE_UA });
    const e = (await res.json()) as sdk.AuthtrailEvent<"login.succeeded">;
    assert.equal(e.type, "login.succeeded");
    assert.equal(e.subject, "u1");
    assert.equal(e.source, "/services/test");
    assert.equal(e.data.ip, "81.2.69.142");
    assert.equal(e.data.user_agent, IPHONE_UA);
    assert.equal(e.data.refresh_token_id, "rt1");
    assert.equal(e.data.identifier, "alice@example.com");
  });

  it("with trustProxy false ignores X-Forwarded-For", async () => {
    const res = await post("/login-untrusting", {}, { "x-forwarded-for": "81.2.69.142" });
    const e = (await res.json()) as sdk.AuthtrailEvent<"login.succeeded">;
    assert.equal(e.data.ip, "127.0.0.1");
  });

  it("onLoginFailed never puts the password in the bytes sent", async () => {
    const before = publisher.sent.length;
    const password = "correct-horse-battery-staple-41";
    const res = await post("/login", { identifier: "alice@example.com", password }, { "user-agent": IPHONE_UA });
    assert.equal(res.status, 401);
    const sent = publisher.sent.slice(before);
    assert.equal(sent.length, 1);
    const e = JSON.parse(sent[0]!) as sdk.AuthtrailEvent<"login.failed">;
    assert.equal(e.type, "login.failed");
    assert.equal(e.data.failure_reason, "bad_password");
    assert.ok(!sent[0]!.includes(password));
  });

  it("onRefresh and onLogout send token.refreshed and session.logged_out", async () => {
    const r = (await (await post("/refresh", {}, { "user-agent": IPHONE_UA })).json()) as sdk.AuthtrailEvent<"token.refreshed">;
    assert.equal(r.type, "token.refreshed");
    assert.equal(r.data.previous_refresh_token_id, "rt1");
    assert.equal(r.data.refresh_token_id, "rt2");
    const l = (await (await post("/logout", {})).json()) as sdk.AuthtrailEvent<"session.logged_out">;
    assert.deepEqual(l.data, { session_id: "s1" });
  });

  it("normalizes IPv4-mapped addresses and drops a user agent the contract refuses", () => {
    assert.equal(sdk.normalizeIp("::ffff:81.2.69.142"), "81.2.69.142");
    assert.equal(sdk.normalizeIp("2001:db8::1"), "2001:db8::1");
    assert.equal(sdk.normalizeIp("nonsense"), undefined);
    assert.equal(sdk.safeUserAgent("a\tb"), "a b");
    assert.equal(sdk.safeUserAgent("x\u202e"), undefined);
    assert.equal(sdk.safeUserAgent("Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.c2ln"), undefined);
  });

  it("never fails on a hostile identifier: escapes, cuts, redacts tokens", async () => {
    assert.equal(sdk.safeIdentifier(" admin\u202e "), "admin\\u{202e}");
    assert.equal(sdk.safeIdentifier("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.c2ln"), "[redacted]");
    assert.equal(sdk.safeIdentifier("   "), "(empty)");
    assert.equal([...sdk.safeIdentifier("\u202e".repeat(400))].length, 320);
    const res = await post("/login", { identifier: "admin\u202e@example.com", password: "wrong" });
    assert.equal(res.status, 401);
    const e = JSON.parse(publisher.sent.at(-1)!) as sdk.AuthtrailEvent<"login.failed">;
    assert.equal(e.data.identifier, "admin\\u{202e}@example.com");
  });
});

describe("requireActiveSession", () => {
  let stub: Stub;
  let server: Server;
  let url: string;
  const activeSessions = new Set(["s-active"]);
  let failing = false;
  before(async () => {
    stub = await startStub((req) => {
      if (failing) return { status: 500, body: { title: "boom", status: 500 } };
      const { session_id } = JSON.parse(req.body) as { session_id: string };
      return activeSessions.has(session_id)
        ? { status: 200, body: { active: true, session_id, user: "u1", expires_at: new Date(Date.now() + 60_000).toISOString() } }
        : { status: 200, body: { active: false } };
    });
    const introspector = new sdk.Introspector({ url: stub.url, apiKey: "k", retries: 0 });
    const app = express();
    const sessionId = (req: express.Request) => req.get("x-session-id");
    app.get("/me", sdk.requireActiveSession({ introspector, sessionId }), (_req, res) => {
      res.json(res.locals.authtrailSession);
    });
    app.get("/open", sdk.requireActiveSession({ introspector, sessionId, failOpen: true }), (_req, res) => {
      res.json({ session: res.locals.authtrailSession ?? null });
    });
    ({ server, url } = await listen(app));
  });
  after(async () => {
    server.close();
    await stub.close();
  });

  const get = (path: string, sid?: string) => fetch(`${url}${path}`, { headers: sid === undefined ? {} : { "x-session-id": sid } });

  it("admits an active session and puts it on res.locals.authtrailSession", async () => {
    const res = await get("/me", "s-active");
    assert.equal(res.status, 200);
    const body = (await res.json()) as sdk.ActiveSession;
    assert.equal(body.session_id, "s-active");
    assert.equal(body.user, "u1");
  });

  it("answers 401 problem JSON for an inactive or missing session", async () => {
    for (const sid of ["s-gone", undefined]) {
      const res = await get("/me", sid);
      assert.equal(res.status, 401);
      assert.match(String(res.headers.get("content-type")), /application\/problem\+json/);
      assert.equal(((await res.json()) as { status: number }).status, 401);
    }
  });

  it("fails closed (503) when authtrail errs, or open when configured", async () => {
    failing = true;
    try {
      assert.equal((await get("/me", "s-active")).status, 503);
      const open = await get("/open", "s-active");
      assert.equal(open.status, 200);
      assert.deepEqual(await open.json(), { session: null });
    } finally {
      failing = false;
    }
  });
});
