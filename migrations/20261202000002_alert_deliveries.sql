-- Acting on alerts (issue 19): which alerts the dispatcher has published to the alerts topic,
-- and where. NOT a projection table: it records what was done outside the database (a message
-- on a topic, a policy's events appended), so it is never rebuilt, swapped or compared, and it
-- survives every rebuild — which is what makes an alert appear on the topic once.
CREATE TABLE alert_deliveries (
    alert_id       uuid        PRIMARY KEY,
    topic          text        NOT NULL,
    partition      int         NOT NULL,
    "offset"       bigint      NOT NULL,
    delivered_at   timestamptz NOT NULL DEFAULT now(),
    -- The response policy (`alerts.policy`): the action configured for the alert's rule when it
    -- was delivered (NULL: none, and the policy never acts on it) ...
    policy         text,
    -- ... the digest of the alert as the policy last handled it (NULL: not yet; a different one:
    -- the alert grew since) ...
    policy_digest  text,
    -- ... and the targets it has acted on (`session:<user>/<session>`, `user:<user>`).
    policy_targets text[]      NOT NULL DEFAULT '{}'
);
-- Reconciliation starts after the highest recorded offset of each partition.
CREATE INDEX alert_deliveries_position ON alert_deliveries (topic, partition, "offset");
-- The policy's work list: alerts under a policy.
CREATE INDEX alert_deliveries_policy ON alert_deliveries (alert_id) WHERE policy IS NOT NULL;
