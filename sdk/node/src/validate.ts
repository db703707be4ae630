/** Validation of whole events: the bundled JSON Schema plus the contract's other rules. */
import { contractViolations, printable, type ContractViolation } from "./contract";
import { schemaValidator, schemaViolations } from "./schemas";
import { AUTHTRAIL_ONLY_TYPES, PUBLISHABLE_TYPES, type AuthtrailEvent } from "./types";

/** Options of {@link eventViolations}. */
export interface ValidateOptions {
  /**
   * Accept the types only authtrail appends (`admin.action`, `security_event.reviewed`) and the
   * `publisher` attribute. For reading the log; publishers never need it. Default false.
   */
  readOnly?: boolean;
}

/** Thrown for an event that breaks the contract; lists every field and reason, never values. */
export class EventValidationError extends Error {
  override readonly name = "EventValidationError";
  /** Each refused field and why. */
  readonly violations: readonly ContractViolation[];
  /** The event's type, when it had a string one. */
  readonly eventType: string | undefined;

  constructor(violations: readonly ContractViolation[], eventType?: string) {
    const head = eventType === undefined ? "invalid authtrail event" : `invalid ${eventType} event`;
    super(`${head}: ${violations.map((v) => `${v.field}: ${v.reason}`).join("; ")}`);
    this.violations = violations;
    this.eventType = eventType;
  }
}

const publishable: ReadonlySet<string> = new Set(PUBLISHABLE_TYPES);
const authtrailOnly: ReadonlySet<string> = new Set(AUTHTRAIL_ONLY_TYPES);

/** Every reason `event` breaks the contract; empty when it is valid. */
export function eventViolations(event: unknown, options: ValidateOptions = {}): ContractViolation[] {
  if (event === null || typeof event !== "object" || Array.isArray(event)) {
    return [{ field: "(event)", reason: "must be a JSON object" }];
  }
  const record = event as Record<string, unknown>;
  const type = record["type"];
  if (typeof type !== "string") return [{ field: "type", reason: "is required (a string)" }];
  const readOnly = options.readOnly === true;
  if (!publishable.has(type) && !(readOnly && authtrailOnly.has(type))) {
    const reason = authtrailOnly.has(type)
      ? "is appended only by authtrail's API; publishers cannot send it"
      : `unknown event type ${JSON.stringify(printable(type))}`;
    return [{ field: "type", reason }];
  }
  const validator = schemaValidator(type);
  if (validator === undefined) return [{ field: "type", reason: `no bundled schema for ${type}` }];
  const out: ContractViolation[] = [];
  if (!readOnly && "publisher" in record) {
    out.push({ field: "publisher", reason: "never send it: authtrail's intake stamps it" });
  }
  if (!validator(event)) out.push(...schemaViolations(validator.errors));
  out.push(...contractViolations(event));
  return out;
}

/** Throws {@link EventValidationError} unless `event` is a valid event a publisher may send. */
export function assertValidEvent(event: unknown, options: ValidateOptions = {}): asserts event is AuthtrailEvent {
  const violations = eventViolations(event, options);
  if (violations.length > 0) {
    const type = (event as { type?: unknown } | null)?.type;
    throw new EventValidationError(violations, typeof type === "string" ? printable(type) : undefined);
  }
}

/** Whether `event` is a valid event a publisher may send. */
export function isValidEvent(event: unknown, options: ValidateOptions = {}): event is AuthtrailEvent {
  return eventViolations(event, options).length === 0;
}
