/**
 * Raw Kafka access for the integration tests, bypassing the SDK's validation: write a
 * malformed event, and read a topic from the beginning.
 */
import { randomUUID } from "node:crypto";

/* eslint-disable @typescript-eslint/no-require-imports */
interface Message {
  key: Buffer | null;
  value: Buffer | null;
}
interface KjsConsumer {
  connect(): Promise<void>;
  subscribe(s: { topics: string[] }): Promise<void>;
  run(r: { eachMessage: (p: { partition: number; message: Message }) => Promise<void> }): Promise<void>;
  disconnect(): Promise<void>;
}
interface KjsProducer {
  connect(): Promise<void>;
  send(r: { topic: string; messages: Array<{ key: string; value: string }> }): Promise<unknown>;
  disconnect(): Promise<void>;
}
interface KjsAdmin {
  connect(): Promise<void>;
  createTopics(o: { topics: Array<{ topic: string; numPartitions: number; replicationFactor: number }> }): Promise<boolean>;
  deleteTopics(o: { topics: string[] }): Promise<void>;
  disconnect(): Promise<void>;
}
interface KjsKafka {
  producer(c: object): KjsProducer;
  consumer(c: object): KjsConsumer;
  admin(c: object): KjsAdmin;
}

function kafka(): KjsKafka {
  const { KafkaJS } = require("@confluentinc/kafka-javascript") as { KafkaJS: { Kafka: new (c: object) => KjsKafka } };
  return new KafkaJS.Kafka({});
}

/** Sends one message as is. */
export async function produceRaw(brokers: string, topic: string, key: string, value: string): Promise<void> {
  const producer = kafka().producer({ "bootstrap.servers": brokers, "enable.idempotence": true, acks: -1, log_level: 4 });
  await producer.connect();
  try {
    await producer.send({ topic, messages: [{ key, value }] });
  } finally {
    await producer.disconnect();
  }
}

/** Reads `topic` from the beginning until a message's value matches; returns it parsed. */
export async function findInTopic(brokers: string, topic: string, match: (value: string) => boolean, timeoutMs: number): Promise<unknown> {
  const consumer = kafka().consumer({
    "bootstrap.servers": brokers,
    "group.id": `sdk-node-test-${randomUUID()}`,
    "auto.offset.reset": "earliest",
    "enable.auto.commit": false,
    log_level: 4,
  });
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [topic] });
    return await new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching message in ${topic} within ${timeoutMs} ms`)), timeoutMs);
      void consumer
        .run({
          eachMessage: async ({ message }) => {
            const value = message.value?.toString("utf8") ?? "";
            if (match(value)) {
              clearTimeout(timer);
              resolve(JSON.parse(value));
            }
          },
        })
        .catch(reject);
    });
  } finally {
    await consumer.disconnect();
  }
}

/** Creates a topic (replication 1), runs `f`, then deletes the topic. */
export async function withTopic<T>(brokers: string, topic: string, partitions: number, f: () => Promise<T>): Promise<T> {
  const admin = kafka().admin({ "bootstrap.servers": brokers, log_level: 4 });
  await admin.connect();
  try {
    await admin.createTopics({ topics: [{ topic, numPartitions: partitions, replicationFactor: 1 }] });
    return await f();
  } finally {
    await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
    await admin.disconnect();
  }
}

/** Reads `topic` from the beginning until `count` messages arrived; returns key -> partition. */
export async function partitionsByKey(brokers: string, topic: string, count: number, timeoutMs: number): Promise<Map<string, number>> {
  const consumer = kafka().consumer({
    "bootstrap.servers": brokers,
    "group.id": `sdk-node-test-${randomUUID()}`,
    "auto.offset.reset": "earliest",
    "enable.auto.commit": false,
    log_level: 4,
  });
  const seen = new Map<string, number>();
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [topic] });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`only ${seen.size} of ${count} messages in ${topic} within ${timeoutMs} ms`)), timeoutMs);
      void consumer
        .run({
          eachMessage: async ({ partition, message }) => {
            seen.set(message.key?.toString("utf8") ?? "", partition);
            if (seen.size >= count) {
              clearTimeout(timer);
              resolve();
            }
          },
        })
        .catch(reject);
    });
    return seen;
  } finally {
    await consumer.disconnect();
  }
}
