/**
 * Integration with a running `authtrail serve` (tools/sdk/serve prints the environment).
 * Skipped only when AUTHTRAIL_URL is unset.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, it } from "node:test";
import * as sdk from "../dist/index.js";
import { startDemoApp, type DemoApp } from "./demo-app.js";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { EVENTS_DIR, mintJwt, pollUntil } from "./helpers.js";

const env = (name: string): string => {
  const v = process.env[name];
  if (v === undefined || v === "") throw new Error(`${name} is not set (tools/sdk/serve prints it)`);
  return v;
};
const URL_ = process.env["AUTHTRAIL_URL"];
const skip = URL_ ? false : "AUTHTRAIL_URL is not set";

const IPHONE_SAFARI =
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";
const LONDON_IP = "81.2.69.142"; // London in MaxMind's GeoIP2-City-Test database

interface SessionRow {
  session_id: string;
  status: string;
  city: string | null;
  device_type: string | null;
  browser: string | null;
  os: string | null;
  ip: string | null;
  user_agent: string | null;
}

/** A user's JWT for the query API (HS256, minted with node:crypto). */
function userToken(userId: string, sessionId: string): string {
  const now = Math.floor(Date.now() / 1000);
  return mintJwt(env("AUTHTRAIL_JWT_SECRET"), {
    sub: userId,
    role: "user",
    sid: sessionId,
    iss: env("AUTHTRAIL_JWT_ISSUER"),
    aud: env("AUTHTRAIL_JWT_AUDIENCE"),
    iat: now,
    exp: now + 600,
  });
}

/** Polls GET /api/v1/auth/sessions until the session is projected; 401s are expected until then. */
async function waitForSession(userId: string, sessionId: string): Promise<SessionRow> {
  const token = userToken(userId, sessionId);
  return pollUntil(`session ${sessionId} in /api/v1/auth/sessions`, async () => {
    const res = await fetch(`${env("AUTHTRAIL_URL")}/api/v1/auth/sessions?status=all`, {
      headers: { authorization: `Bearer ${token}` },
    });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const page = (await res.json()) as { items: SessionRow[] };
    return page.items.find((s) => s.session_id === sessionId);
  });
}

async function login(app: DemoApp, password: string): Promise<Response> {
  return fetch(`${app.url}/login`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-forwarded-for": LONDON_IP, "user-agent": IPHONE_SAFARI },
    body: JSON.stringify({ identifier: app.user.identifier, password }),
  });
}

function assertEnriched(row: SessionRow): void {
  assert.equal(row.ip, LONDON_IP);
  assert.equal(row.city, "London");
  assert.equal(row.device_type, "mobile");
  assert.match(row.browser ?? "", /Safari/);
  assert.match(row.os ?? "", /iOS/);
  assert.equal(row.user_agent, IPHONE_SAFARI);
}

/** A publisher that keeps the exact JSON of each event it passes on. */
class Spy implements sdk.Publisher {
  readonly sent: string[] = [];
  constructor(private readonly inner: sdk.Publisher) {}
  async publish(event: sdk.AuthtrailEvent): Promise<void> {
    this.sent.push(JSON.stringify(event));
    await this.inner.publish(event);
  }
  async publishMany(events: readonly sdk.AuthtrailEvent[]): Promise<void> {
    this.sent.push(...events.map((e) => JSON.stringify(e)));
    await this.inner.publishMany(events);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

describe("integration with authtrail serve", () => {
  let introspector: sdk.Introspector;
  let kafka: sdk.KafkaPublisher | undefined;
  const httpBodies: string[] = [];
  let http: sdk.HttpPublisher;

  before(() => {
    if (skip) return;
    introspector = new sdk.Introspector({ url: env("AUTHTRAIL_URL"), apiKey: env("AUTHTRAIL_API_KEY") });
    http = new sdk.HttpPublisher({
      url: env("AUTHTRAIL_URL"),
      apiKey: env("AUTHTRAIL_API_KEY"),
      fetch: (input, init) => {
        httpBodies.push(String(init?.body ?? ""));
        return fetch(input, init);
      },
    });
  });
  after(async () => {
    await kafka?.close();
    await http?.close();
  });

  const kafkaPublisher = (): sdk.KafkaPublisher => {
    kafka ??= new sdk.KafkaPublisher({ brokers: env("AUTHTRAIL_KAFKA_BROKERS"), topic: env("AUTHTRAIL_RAW_TOPIC") });
    return kafka;
  };

  it("(a) KafkaPublisher: a login through Express is enriched (London, iPhone Safari) and projected", { skip, timeout: 90_000 }, async () => {
    const app = await startDemoApp(kafkaPublisher(), introspector);
    try {
      const res = await login(app, app.user.password);
      assert.equal(res.status, 200, await res.clone().text());
      const { sessionId, userId } = (await res.json()) as { sessionId: string; userId: string };
      assertEnriched(await waitForSession(userId, sessionId));
    } finally {
      await app.close();
    }
  });

  it("(b) HttpPublisher: the same through the HTTP intake", { skip, timeout: 90_000 }, async () => {
    const app = await startDemoApp(http, introspector);
    try {
      const res = await login(app, app.user.password);
      assert.equal(res.status, 200, await res.clone().text());
      const { sessionId, userId } = (await res.json()) as { sessionId: string; userId: string };
      assertEnriched(await waitForSession(userId, sessionId));
    } finally {
      await app.close();
    }
  });

  it("(c) a failed login never puts the password in the bytes sent (HTTP and Kafka)", { skip, timeout: 60_000 }, async () => {
    for (const transport of ["http", "kafka"] as const) {
      const spy = new Spy(transport === "http" ? http : kafkaPublisher());
      const app = await startDemoApp(spy, introspector);
      try {
        const before = httpBodies.length;
        const typed = `typed-${randomUUID()}`;
        const res = await login(app, typed);
        assert.equal(res.status, 401);
        assert.equal(spy.sent.length, 1);
        const event = JSON.parse(spy.sent[0]!) as sdk.AuthtrailEvent<"login.failed">;
        assert.equal(event.type, "login.failed");
        assert.equal(event.data.failure_reason, "bad_password");
        assert.equal(event.data.ip, LONDON_IP);
        const wire = [...spy.sent, ...httpBodies.slice(before)];
        if (transport === "http") assert.equal(httpBodies.length - before, 1, "one request to the intake");
        for (const bytes of wire) {
          assert.ok(!bytes.includes(typed), "the typed password was sent");
          assert.ok(!bytes.includes(app.user.password), "the real password was sent");
        }
      } finally {
        await app.close();
      }
    }
  });

  it("(d) requireActiveSession admits the active session, and answers 401 after logout", { skip, timeout: 120_000 }, async () => {
    const app = await startDemoApp(http, introspector);
    try {
      const res = await login(app, app.user.password);
      assert.equal(res.status, 200);
      const { sessionId, userId } = (await res.json()) as { sessionId: string; userId: string };
      const me = () => fetch(`${app.url}/me`, { headers: { "x-session-id": sessionId } });
      const session = await pollUntil("the session to be active", async () => {
        const r = await me();
        return r.status === 200 ? ((await r.json()) as sdk.ActiveSession) : undefined;
      });
      assert.equal(session.session_id, sessionId);
      assert.equal(session.user, userId);
      const out = await fetch(`${app.url}/logout`, { method: "POST", headers: { "x-session-id": sessionId } });
      assert.equal(out.status, 204);
      const status = await pollUntil("401 after logout", async () => {
        const r = await me();
        return r.status === 401 ? r.status : undefined;
      });
      assert.equal(status, 401);
    } finally {
      await app.close();
    }
  });

  it("(e) a malformed event written straight to the raw topic lands in the rejected topic, naming the field", { skip, timeout: 90_000 }, async () => {
    const { produceRaw, findInTopic } = await import("./kafka-raw.js");
    const id = randomUUID();
    const malformed = {
      specversion: "1.0",
      id,
      source: "/services/sdk-node-test",
      type: "session.logged_out",
      time: new Date().toISOString(),
      subject: "user-rejected-test",
      datacontenttype: "application/json",
      schemaversion: 1,
      data: { sesion_id: "sess_misspelt" },
    };
    const brokers = env("AUTHTRAIL_KAFKA_BROKERS");
    await produceRaw(brokers, env("AUTHTRAIL_RAW_TOPIC"), "user-rejected-test", JSON.stringify(malformed));
    const rejection = (await findInTopic(brokers, env("AUTHTRAIL_REJECTED_TOPIC"), (value) => value.includes(id), 75_000)) as {
      field: string;
      reason: string;
      id?: string;
    };
    assert.equal(rejection.id, id);
    assert.match(`${rejection.field}: ${rejection.reason}`, /sesion_id/);
  });

  it("(f) KafkaPublisher places each key where Kafka's Java partitioner does (partition-vectors.tsv)", { skip, timeout: 90_000 }, async () => {
    const { withTopic, partitionsByKey } = await import("./kafka-raw.js");
    const vectors = readFileSync(join(EVENTS_DIR, "partition-vectors.tsv"), "utf8")
      .split("\n")
      .filter((l) => l !== "" && !l.startsWith("#"))
      .map((l) => l.split("\t"))
      .filter(([, partitions]) => partitions === "12")
      .map(([key, , partition]) => ({ key: key!, partition: Number(partition) }));
    assert.ok(vectors.length >= 50);
    const brokers = env("AUTHTRAIL_KAFKA_BROKERS");
    const topic = `sdk-node-partitions-${randomUUID()}`;
    await withTopic(brokers, topic, 12, async () => {
      const publisher = new sdk.KafkaPublisher({ brokers, topic });
      try {
        const events = vectors.map((v) => sdk.passwordChanged({ source: "/services/sdk-node-test", userId: v.key }));
        await publisher.publishMany(events);
      } finally {
        await publisher.close();
      }
      const placed = await partitionsByKey(brokers, topic, vectors.length, 60_000);
      const wrong = vectors.filter((v) => placed.get(v.key) !== v.partition);
      assert.deepEqual(wrong.map((v) => `${v.key}: ${placed.get(v.key)} != ${v.partition}`), []);
    });
  });
});
