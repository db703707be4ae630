/** Unit tests of KafkaPublisher that need no broker. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as sdk from "../dist/index.js";
import { freshEvents } from "./vectors.js";

describe("KafkaPublisher (no broker)", () => {
  it("enforces idempotence, acks=all and the murmur2 partitioner over user config", () => {
    const p = new sdk.KafkaPublisher({
      brokers: ["127.0.0.1:1", "127.0.0.1:2"],
      config: { "enable.idempotence": false, acks: 1, partitioner: "consistent_random", "socket.timeout.ms": 1000 },
    });
    const config = (p as unknown as { producerConfig: Record<string, unknown> }).producerConfig;
    assert.equal(config["bootstrap.servers"], "127.0.0.1:1,127.0.0.1:2");
    assert.equal(config["enable.idempotence"], true);
    assert.equal(config["acks"], -1);
    assert.equal(config["partitioner"], "murmur2_random");
    assert.equal(config["socket.timeout.ms"], 1000);
    assert.equal(p.topic, "authtrail.raw");
  });

  it("refuses an invalid event before connecting to anything", async () => {
    const p = new sdk.KafkaPublisher({ brokers: "127.0.0.1:1" });
    const bad = { ...freshEvents()[0]!, publisher: "api-key:me" } as unknown as sdk.AuthtrailEvent;
    await assert.rejects(p.publish(bad), sdk.EventValidationError);
    await p.close();
    await assert.rejects(p.publish(freshEvents()[0]!), /closed/);
  });

  it("requires brokers", () => {
    assert.throws(() => new sdk.KafkaPublisher({ brokers: " " }), TypeError);
  });
});
