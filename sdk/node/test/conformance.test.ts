/**
 * Conformance with authtrail itself: builder outputs and the examples piped through
 * `$AUTHTRAIL_BIN validate` (NDJSON in; one canonical event per valid line out; exit 1 with
 * `line N: field: reason` on stderr for invalid lines). Skipped when AUTHTRAIL_BIN is unset.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as sdk from "../dist/index.js";
import { AUTHTRAIL_ONLY, authtrailValidate, loadExamples } from "./helpers.js";
import { freshEvents, rebuild } from "./vectors.js";

const BIN = process.env["AUTHTRAIL_BIN"];

const skip = BIN ? false : "AUTHTRAIL_BIN is not set";

describe("conformance: authtrail validate", () => {
  const bin = BIN as string;
  const examples = loadExamples().filter((e) => !AUTHTRAIL_ONLY.has(e.event.type));

  it("canonicalizes the rebuilt examples exactly as the examples", { skip }, () => {
    const fromExamples = authtrailValidate(bin, examples.map((e) => JSON.stringify(e.event)));
    const fromBuilders = authtrailValidate(bin, examples.map((e) => JSON.stringify(rebuild(e))));
    assert.equal(fromExamples.status, 0, fromExamples.stderr);
    assert.equal(fromBuilders.status, 0, fromBuilders.stderr);
    assert.equal(fromBuilders.events.length, examples.length);
    assert.deepEqual(fromBuilders.events, fromExamples.events);
  });

  it("accepts every fresh builder event unchanged (builders already write canonical events)", { skip }, () => {
    const events = freshEvents();
    const run = authtrailValidate(bin, events.map((e) => JSON.stringify(e)));
    assert.equal(run.status, 0, run.stderr);
    assert.deepEqual(run.events, events);
  });

  it("refuses what the SDK refuses, naming the same field", { skip }, () => {
    const valid = freshEvents()[0] as unknown as Record<string, any>;
    const mutate = (f: (e: Record<string, any>) => void): Record<string, any> => {
      const e = JSON.parse(JSON.stringify(valid)) as Record<string, any>;
      f(e);
      return e;
    };
    const bad: Array<[string, Record<string, any>]> = [
      ["data.password", mutate((e) => (e.data.password = "hunter2"))],
      ["data.sesion_id", mutate((e) => (e.data.sesion_id = "s"))],
      ["data.refresh_token_id", mutate((e) => (e.data.refresh_token_id = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.c2lnbmF0dXJl"))],
      ["data.identifier", mutate((e) => (e.data.identifier = "admin\u202e"))],
      ["data.expires_at", mutate((e) => (e.data.expires_at = e.time))],
    ];
    for (const [field, event] of bad) {
      const sdkFields = sdk.eventViolations(event).map((v) => v.field);
      assert.ok(sdkFields.includes(field), `SDK: ${field} not in ${sdkFields.join(", ")}`);
      const run = authtrailValidate(bin, [JSON.stringify(event)]);
      assert.equal(run.status, 1, `authtrail accepted an event with a bad ${field}`);
      assert.equal(run.events.length, 0);
      assert.match(run.stderr, new RegExp(`line 1: ${field.replace(/[.[\]]/g, "\\$&")}`), run.stderr);
      assert.ok(!run.stderr.includes("hunter2"));
    }
    // `publisher` is refused by the intakes (HTTP, raw topic), not by the contract check.
    assert.ok(sdk.eventViolations(mutate((e) => (e.publisher = "api-key:x"))).some((v) => v.field === "publisher"));
  });

  it("reports an invalid line by number and still prints the valid ones", { skip }, () => {
    const events = freshEvents().slice(0, 3).map((e) => JSON.stringify(e));
    const run = authtrailValidate(bin, [events[0]!, '{"specversion":"1.0"}', events[1]!]);
    assert.equal(run.status, 1);
    assert.equal(run.events.length, 2);
    assert.match(run.stderr, /line 2:/);
  });
});
