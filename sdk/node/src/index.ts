/**
 * authtrail: publish authentication events (CloudEvents) to authtrail over Kafka or HTTP, with
 * contract-checked builders, Express hooks, and session introspection middleware.
 */
export * from "./types";
export * from "./builders";
export {
  contractViolations,
  looksLikeJwt,
  MAX_EVENT_BYTES,
  MAX_KEY_CHARS,
  MAX_STRING_CHARS,
  SECRET_NAMES,
  type ContractViolation,
} from "./contract";
export { SCHEMA_DIR, schemaTypes } from "./schemas";
export { assertValidEvent, eventViolations, EventValidationError, isValidEvent, type ValidateOptions } from "./validate";
export { CLOUDEVENTS_BATCH_JSON, CLOUDEVENTS_JSON, eventKey, type Publisher } from "./publisher";
export {
  AuthtrailHttpError,
  AuthtrailUnavailableError,
  type HttpClientOptions,
  type ProblemDetails,
} from "./http";
export { HttpPublisher, type HttpPublisherOptions } from "./http-publisher";
export { DEFAULT_RAW_TOPIC, KafkaPublisher, type KafkaConfigValue, type KafkaPublisherOptions } from "./kafka";
export { Introspector, type ActiveSession, type Introspection, type IntrospectorOptions } from "./introspect";
export {
  authtrailHooks,
  clientOf,
  normalizeIp,
  requireActiveSession,
  safeIdentifier,
  safeUserAgent,
  sessionIdFrom,
  type AuthtrailHooks,
  type AuthtrailHooksOptions,
  type OnLoginFailedOptions,
  type OnLoginOptions,
  type OnRefreshOptions,
  type OnSessionOptions,
  type RequireActiveSessionOptions,
} from "./express";
