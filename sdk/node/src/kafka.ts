/**
 * {@link KafkaPublisher}: events straight to authtrail's raw topic with
 * `@confluentinc/kafka-javascript` (librdkafka), which authtrail's enrichment stage validates,
 * enriches and appends to the events topic (refused ones go to the rejected topic with a reason).
 *
 * The client is an optional dependency, loaded on first use, so that HTTP-only users need no
 * native build.
 */
import { CLOUDEVENTS_JSON, eventKey, validateAll, type Publisher } from "./publisher";
import type { AuthtrailEvent } from "./types";

/** librdkafka configuration values. */
export type KafkaConfigValue = string | number | boolean;

/** Options of {@link KafkaPublisher}. */
export interface KafkaPublisherOptions {
  /** Bootstrap brokers, `host:port` (array or comma-separated). */
  brokers: string | readonly string[];
  /** The raw topic authtrail's enrichment stage reads (default `authtrail.raw`). */
  topic?: string;
  /** `client.id` (default `authtrail-node`). */
  clientId?: string;
  /**
   * Extra librdkafka properties (security, SASL, timeouts...). They cannot turn off idempotence
   * or `acks=all`, nor change the partitioner.
   */
  config?: Readonly<Record<string, KafkaConfigValue>>;
}

/** The default raw topic. */
export const DEFAULT_RAW_TOPIC = "authtrail.raw";

/** The subset of the client's KafkaJS-compatible producer used here. */
interface KjsProducer {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  send(record: {
    topic: string;
    messages: Array<{ key: string; value: string; headers: Record<string, string> }>;
  }): Promise<unknown>;
}
interface KjsModule {
  KafkaJS: { Kafka: new (config: object) => { producer(config: object): KjsProducer } };
}

/** Settings this publisher always enforces (events/README.md, "Kafka"). */
const ENFORCED: Readonly<Record<string, KafkaConfigValue>> = {
  "enable.idempotence": true,
  acks: -1,
  // Kafka's Java partitioner (murmur2), as authtrail's own producer uses: librdkafka's
  // default (consistent_random, CRC32) would put a user's events in another partition.
  partitioner: "murmur2_random",
};

function loadClient(): KjsModule {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require("@confluentinc/kafka-javascript") as KjsModule;
  } catch (cause) {
    throw new Error(
      "KafkaPublisher needs the optional dependency @confluentinc/kafka-javascript, which is not " +
        "installed or failed to build (install it; without network access to its prebuilt binary, " +
        "build it with CKJS_LINKING=dynamic npm install, or use HttpPublisher)",
      { cause },
    );
  }
}

/**
 * Publishes to Kafka with an idempotent producer (`enable.idempotence=true`, `acks=all`,
 * murmur2 partitioner). Key: the subject (or the lower-cased identifier of a `login.failed`
 * without subject); value: the event JSON; header
 * `content-type: application/cloudevents+json; charset=UTF-8`. Every event is validated against
 * the bundled contract before it is sent.
 */
export class KafkaPublisher implements Publisher {
  readonly topic: string;
  private readonly producerConfig: Record<string, KafkaConfigValue>;
  private connecting: Promise<KjsProducer> | undefined;
  private closed = false;

  constructor(options: KafkaPublisherOptions) {
    const brokers = typeof options.brokers === "string" ? options.brokers : options.brokers.join(",");
    if (brokers.trim() === "") throw new TypeError("KafkaPublisher: brokers are required");
    this.topic = options.topic ?? DEFAULT_RAW_TOPIC;
    this.producerConfig = {
      "bootstrap.servers": brokers,
      "client.id": options.clientId ?? "authtrail-node",
      "linger.ms": 5,
      // Warnings and errors only (the client logs every connect at INFO by default).
      log_level: 4,
      ...options.config,
      ...ENFORCED,
    };
  }

  private producer(): Promise<KjsProducer> {
    if (this.closed) return Promise.reject(new Error("KafkaPublisher is closed"));
    if (this.connecting === undefined) {
      const { KafkaJS } = loadClient();
      const producer = new KafkaJS.Kafka({}).producer(this.producerConfig);
      this.connecting = producer.connect().then(
        () => producer,
        (e: unknown) => {
          this.connecting = undefined;
          throw e;
        },
      );
    }
    return this.connecting;
  }

  async publish(event: AuthtrailEvent): Promise<void> {
    await this.publishMany([event]);
  }

  async publishMany(events: readonly AuthtrailEvent[]): Promise<void> {
    validateAll(events);
    if (events.length === 0) return;
    const messages = events.map((e) => ({
      key: eventKey(e),
      value: JSON.stringify(e),
      headers: { "content-type": CLOUDEVENTS_JSON },
    }));
    const producer = await this.producer();
    await producer.send({ topic: this.topic, messages });
  }

  async close(): Promise<void> {
    this.closed = true;
    const connecting = this.connecting;
    this.connecting = undefined;
    if (connecting !== undefined) {
      const producer = await connecting.catch(() => undefined);
      await producer?.disconnect();
    }
  }
}
