/** The publisher abstraction shared by the Kafka and HTTP transports. */
import type { AuthtrailEvent } from "./types";
import { assertValidEvent } from "./validate";

/** Sends events to authtrail. Publishing the same event (same `id`) twice is one fact. */
export interface Publisher {
  /** Sends one event; resolves once authtrail (or the broker) has it durably. */
  publish(event: AuthtrailEvent): Promise<void>;
  /** Sends several events, in order; resolves once all are durable. */
  publishMany(events: readonly AuthtrailEvent[]): Promise<void>;
  /** Flushes and releases the connection. */
  close(): Promise<void>;
}

/** The content type of one event in structured mode (CloudEvents Kafka and HTTP bindings). */
export const CLOUDEVENTS_JSON = "application/cloudevents+json; charset=UTF-8";
/** The content type of a JSON array of events (CloudEvents HTTP batch mode). */
export const CLOUDEVENTS_BATCH_JSON = "application/cloudevents-batch+json; charset=UTF-8";

/**
 * The Kafka message key of an event: the `subject` (user id); for a `login.failed` without
 * subject, the lower-cased `identifier`. Keeps one user's events in one partition, in order.
 */
export function eventKey(event: AuthtrailEvent): string {
  if (event.subject !== undefined) return event.subject;
  const data = event.data as { identifier?: unknown };
  if (event.type === "login.failed" && typeof data.identifier === "string") {
    return data.identifier.toLowerCase();
  }
  throw new TypeError(`${event.type} event ${event.id} has no subject to key it by`);
}

/** Checks each event against the bundled contract before anything is sent. */
export function validateAll(events: readonly AuthtrailEvent[]): void {
  for (const e of events) assertValidEvent(e);
}
