-- Detection (issue 19). The fold emits signals; the sink cuts each rule × subject's signals into
-- episodes and keeps one alert per episode that reaches the rule's thresholds (see the
-- projections crate, `detect`). Both are projection tables: rebuilt from the log like the rest.
CREATE TABLE alert_signals (
    rule       text        NOT NULL,
    subject    text        NOT NULL,
    at         timestamptz NOT NULL,
    event_id   uuid        NOT NULL,
    key        text,
    user_id    text,
    ip         text,
    session_id text,
    severity   text        NOT NULL CHECK (severity IN ('info', 'warning', 'error', 'critical')),
    detail     jsonb       NOT NULL DEFAULT '{}',
    PRIMARY KEY (rule, subject, at, event_id)
);
-- The signals of one event: an alert's drill-down, and whether a past login raised any (the
-- hour-of-day profile learns from the others).
CREATE INDEX alert_signals_event ON alert_signals (event_id);

CREATE TABLE alerts (
    id          uuid        PRIMARY KEY,
    rule        text        NOT NULL,
    severity    text        NOT NULL CHECK (severity IN ('info', 'warning', 'error', 'critical')),
    subject     text        NOT NULL,
    user_id     text,
    ip          text,
    session_id  text,
    title       text        NOT NULL,
    description text        NOT NULL,
    count       bigint      NOT NULL,
    accounts    bigint      NOT NULL,
    ips         bigint      NOT NULL,
    first_seen  timestamptz NOT NULL,
    last_seen   timestamptz NOT NULL,
    evidence    uuid[]      NOT NULL,
    metadata    jsonb       NOT NULL DEFAULT '{}'
);
-- The sink replaces a subject's alerts by time range.
CREATE INDEX alerts_subject ON alerts (rule, subject, first_seen);
-- Readers: the newest first, per user, per address.
CREATE INDEX alerts_recent ON alerts (last_seen DESC, id DESC);
CREATE INDEX alerts_user ON alerts (user_id, last_seen DESC) WHERE user_id IS NOT NULL;
CREATE INDEX alerts_ip ON alerts (ip, last_seen DESC) WHERE ip IS NOT NULL;

-- Alerts are reviewed like security events: a `security_event.reviewed` event naming the
-- alert's id (ids of the two never collide: both are UUIDv5 in namespaces of their own).
CREATE VIEW alerts_reviewed AS
SELECT a.*,
       r.security_event_id IS NOT NULL AS reviewed,
       r.reviewer,
       r.reviewed_at
FROM alerts a
LEFT JOIN security_event_reviews r ON r.security_event_id = a.id;
