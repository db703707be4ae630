/** {@link HttpPublisher}: events over HTTP to authtrail's intake, `POST /v1/events`. */
import { AuthtrailHttpClient, type HttpClientOptions } from "./http";
import { CLOUDEVENTS_BATCH_JSON, CLOUDEVENTS_JSON, validateAll, type Publisher } from "./publisher";
import type { AuthtrailEvent } from "./types";

/** Options of {@link HttpPublisher}. */
export interface HttpPublisherOptions extends HttpClientOptions {
  /** Most events per request (authtrail's default limit is 1000; default 500). */
  maxBatch?: number;
}

/** What the intake answered for an accepted request. */
export interface AcceptedEvents {
  accepted: number;
  events: unknown[];
}

/**
 * Publishes through `authtrail serve`'s intake, which validates, enriches (GeoIP, user agent)
 * and appends. One event goes as `application/cloudevents+json`, several as
 * `application/cloudevents-batch+json`. 5xx, 429 and network errors are retried (safe: the
 * event id is the idempotency key); a refusal throws {@link AuthtrailHttpError} carrying the
 * RFC 9457 problem (its `errors` name each refused field).
 */
export class HttpPublisher implements Publisher {
  private readonly client: AuthtrailHttpClient;
  private readonly maxBatch: number;

  constructor(options: HttpPublisherOptions) {
    this.client = new AuthtrailHttpClient(options);
    this.maxBatch = Math.max(1, options.maxBatch ?? 500);
  }

  async publish(event: AuthtrailEvent): Promise<void> {
    validateAll([event]);
    await this.client.postJson("/v1/events", JSON.stringify(event), CLOUDEVENTS_JSON, `publishing ${event.type}`);
  }

  async publishMany(events: readonly AuthtrailEvent[]): Promise<void> {
    validateAll(events);
    for (let i = 0; i < events.length; i += this.maxBatch) {
      const chunk = events.slice(i, i + this.maxBatch);
      await this.client.postJson(
        "/v1/events",
        JSON.stringify(chunk),
        CLOUDEVENTS_BATCH_JSON,
        `publishing ${chunk.length} events`,
      );
    }
  }

  async close(): Promise<void> {
    // fetch keeps no connection state that needs closing.
  }
}
