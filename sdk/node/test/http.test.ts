/** Unit tests of HttpPublisher and Introspector against a local stub server. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as sdk from "../dist/index.js";
import { startStub } from "./stub.js";
import { freshEvents } from "./vectors.js";

const KEY = "test-api-key";

describe("HttpPublisher", () => {
  it("POSTs one event as application/cloudevents+json with X-API-Key", async () => {
    const stub = await startStub(() => ({ status: 200, body: { accepted: 1, events: [] } }));
    try {
      const [event] = freshEvents();
      await new sdk.HttpPublisher({ url: `${stub.url}/`, apiKey: KEY }).publish(event!);
      const [req] = stub.requests;
      assert.equal(req?.method, "POST");
      assert.equal(req?.url, "/v1/events");
      assert.equal(req?.headers["x-api-key"], KEY);
      assert.match(String(req?.headers["content-type"]), /^application\/cloudevents\+json/);
      assert.deepEqual(JSON.parse(req!.body), event);
    } finally {
      await stub.close();
    }
  });

  it("POSTs many as application/cloudevents-batch+json, in chunks of maxBatch", async () => {
    const stub = await startStub(() => ({ status: 200, body: { accepted: 1, events: [] } }));
    try {
      const events = freshEvents();
      await new sdk.HttpPublisher({ url: stub.url, apiKey: KEY, maxBatch: 10 }).publishMany(events);
      assert.equal(stub.requests.length, 2);
      for (const r of stub.requests) assert.match(String(r.headers["content-type"]), /^application\/cloudevents-batch\+json/);
      const sent = stub.requests.flatMap((r) => JSON.parse(r.body) as unknown[]);
      assert.deepEqual(sent, events);
    } finally {
      await stub.close();
    }
  });

  it("retries 5xx with the same event (same id) and then succeeds", async () => {
    const stub = await startStub((_r, n) => (n < 3 ? { status: 503, body: { title: "Service Unavailable", status: 503 } } : { status: 200, body: {} }));
    try {
      const [event] = freshEvents();
      await new sdk.HttpPublisher({ url: stub.url, apiKey: KEY, retryDelayMs: 1 }).publish(event!);
      assert.equal(stub.requests.length, 3);
      assert.deepEqual(new Set(stub.requests.map((r) => r.body)).size, 1);
    } finally {
      await stub.close();
    }
  });

  it("throws AuthtrailHttpError with the RFC 9457 problem on 4xx, without retrying", async () => {
    const problem = {
      type: "https://authtrail.dev/problems/invalid-event",
      title: "Invalid event",
      status: 422,
      detail: "data.session_id: is required",
      errors: [{ index: 0, field: "data.session_id", reason: "is required" }],
    };
    const stub = await startStub(() => ({ status: 422, body: problem, contentType: "application/problem+json" }));
    try {
      const [event] = freshEvents();
      await assert.rejects(new sdk.HttpPublisher({ url: stub.url, apiKey: KEY, retryDelayMs: 1 }).publish(event!), (e: unknown) => {
        assert.ok(e instanceof sdk.AuthtrailHttpError);
        assert.equal(e.status, 422);
        assert.deepEqual(e.problem, problem);
        assert.equal(e.retryable, false);
        return true;
      });
      assert.equal(stub.requests.length, 1);
    } finally {
      await stub.close();
    }
  });

  it("reports an unreachable server as AuthtrailUnavailableError after its retries", async () => {
    const stub = await startStub(() => ({ status: 200, body: {} }));
    const url = stub.url;
    await stub.close();
    const [event] = freshEvents();
    await assert.rejects(new sdk.HttpPublisher({ url, apiKey: KEY, retries: 1, retryDelayMs: 1 }).publish(event!), sdk.AuthtrailUnavailableError);
  });

  it("validates before sending: an invalid event never leaves the process", async () => {
    const stub = await startStub(() => ({ status: 200, body: {} }));
    try {
      const bad = { ...freshEvents()[0]!, data: { password: "hunter2" } } as unknown as sdk.AuthtrailEvent;
      await assert.rejects(new sdk.HttpPublisher({ url: stub.url, apiKey: KEY }).publish(bad), sdk.EventValidationError);
      assert.equal(stub.requests.length, 0);
    } finally {
      await stub.close();
    }
  });
});

describe("Introspector", () => {
  const active = { active: true, session_id: "s1", user: "u1", expires_at: new Date(Date.now() + 3_600_000).toISOString(), roles: ["user"] };

  it("POSTs {session_id} to /api/v1/sessions/introspect with X-API-Key", async () => {
    const stub = await startStub(() => ({ status: 200, body: active }));
    try {
      const answer = await new sdk.Introspector({ url: stub.url, apiKey: KEY }).introspect("s1");
      assert.deepEqual(answer, active);
      assert.equal(stub.requests[0]?.url, "/api/v1/sessions/introspect");
      assert.equal(stub.requests[0]?.headers["x-api-key"], KEY);
      assert.deepEqual(JSON.parse(stub.requests[0]!.body), { session_id: "s1" });
    } finally {
      await stub.close();
    }
  });

  it("caches for cacheTtlMs when asked, and invalidate() forgets", async () => {
    const stub = await startStub(() => ({ status: 200, body: active }));
    try {
      const i = new sdk.Introspector({ url: stub.url, apiKey: KEY, cacheTtlMs: 60_000 });
      await i.introspect("s1");
      await i.introspect("s1");
      assert.equal(stub.requests.length, 1);
      i.invalidate("s1");
      await i.introspect("s1");
      assert.equal(stub.requests.length, 2);
      const uncached = new sdk.Introspector({ url: stub.url, apiKey: KEY });
      await uncached.introspect("s1");
      await uncached.introspect("s1");
      assert.equal(stub.requests.length, 4);
    } finally {
      await stub.close();
    }
  });

  it("answers inactive exactly", async () => {
    const stub = await startStub(() => ({ status: 200, body: { active: false } }));
    try {
      assert.deepEqual(await new sdk.Introspector({ url: stub.url, apiKey: KEY }).introspect("gone"), { active: false });
    } finally {
      await stub.close();
    }
  });
});
