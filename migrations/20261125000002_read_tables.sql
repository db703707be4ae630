-- The read tables the projection workers fold the log into. Columns mirror
-- projections/src/rows.rs; the sink writes rows with json_populate_recordset, so a column
-- here and a field there must have the same name.

-- Ids of every event projected: the deduplication set (an event id is one fact).
CREATE TABLE processed_events (
    event_id    uuid    PRIMARY KEY,
    topic       text    NOT NULL,
    partition   integer NOT NULL,
    "offset"    bigint  NOT NULL
);

CREATE TABLE sessions (
    session_id                text        PRIMARY KEY,
    user_id                   text        NOT NULL,
    login_method              text,
    identifier                text,
    device_id                 text,
    device_name               text,
    device_type               text,
    browser                   text,
    os                        text,
    ip                        text,
    user_agent                text,
    country_code              text,
    country                   text,
    city                      text,
    latitude                  double precision,
    longitude                 double precision,
    created_at                timestamptz NOT NULL,
    last_activity_at          timestamptz NOT NULL,
    expires_at                timestamptz NOT NULL,
    absolute_expires_at       timestamptz NOT NULL,
    idle_expires_at           timestamptz NOT NULL,
    refresh_count             integer     NOT NULL DEFAULT 0,
    refresh_token_id          text,
    rotated_refresh_token_ids text[]      NOT NULL DEFAULT '{}',
    revoked_at                timestamptz,
    revoked_reason            text,
    revoked_by                text,
    logged_out_at             timestamptz,
    ended_at                  timestamptz,
    trusted_device            boolean     NOT NULL DEFAULT false,
    otp_required              boolean     NOT NULL DEFAULT false,
    otp_verified              boolean     NOT NULL DEFAULT false,
    roles                     text[]      NOT NULL DEFAULT '{}',
    suspicious                boolean     NOT NULL DEFAULT false,
    suspicious_reason         text,
    metadata                  jsonb       NOT NULL DEFAULT '{}',
    first_event_id            uuid        NOT NULL,
    last_event_id             uuid        NOT NULL
);
-- "My sessions", newest activity first; and the projector's load of a user's open sessions.
CREATE INDEX sessions_user_activity ON sessions (user_id, last_activity_at DESC, session_id);
CREATE INDEX sessions_open ON sessions (user_id) WHERE ended_at IS NULL;
CREATE INDEX sessions_created ON sessions (created_at DESC, session_id);
CREATE INDEX sessions_ip ON sessions (ip);
CREATE INDEX sessions_suspicious ON sessions (created_at DESC) WHERE suspicious;
CREATE INDEX sessions_ended ON sessions (ended_at) WHERE ended_at IS NOT NULL;

CREATE TABLE login_history (
    id                uuid        PRIMARY KEY,
    user_id           text,
    subject_key       text        NOT NULL,
    identifier        text,
    success           boolean     NOT NULL,
    login_method      text,
    failure_reason    text,
    device_id         text,
    device_name       text,
    device_type       text,
    browser           text,
    os                text,
    ip                text,
    user_agent        text,
    country_code      text,
    country           text,
    city              text,
    latitude          double precision,
    longitude         double precision,
    otp_required      boolean     NOT NULL DEFAULT false,
    otp_verified      boolean     NOT NULL DEFAULT false,
    suspicious        boolean     NOT NULL DEFAULT false,
    suspicious_reason text,
    session_id        text,
    attempted_at      timestamptz NOT NULL
);
CREATE INDEX login_history_user ON login_history (user_id, attempted_at DESC, id);
CREATE INDEX login_history_time ON login_history (attempted_at DESC, id);
CREATE INDEX login_history_failures ON login_history (subject_key, attempted_at) WHERE NOT success;
CREATE INDEX login_history_identifier ON login_history (lower(identifier), attempted_at DESC);
CREATE INDEX login_history_ip ON login_history (ip, attempted_at DESC);
CREATE INDEX login_history_suspicious ON login_history (attempted_at DESC, id) WHERE suspicious;

CREATE TABLE security_events (
    id              uuid        PRIMARY KEY,
    user_id         text,
    event_type      text        NOT NULL CHECK (event_type IN (
        'login_success', 'login_failure', 'otp_sent', 'otp_verified', 'otp_failed',
        'session_revoked', 'device_trusted', 'device_revoked', 'password_changed',
        'account_locked', 'account_unlocked', 'suspicious_activity', 'admin_action')),
    severity        text        NOT NULL CHECK (severity IN ('info', 'warning', 'error', 'critical')),
    description     text        NOT NULL,
    ip              text,
    user_agent      text,
    device_name     text,
    location        text,
    metadata        jsonb       NOT NULL DEFAULT '{}',
    source_event_id uuid        NOT NULL,
    occurred_at     timestamptz NOT NULL
);
CREATE INDEX security_events_time ON security_events (occurred_at DESC, id);
CREATE INDEX security_events_user ON security_events (user_id, event_type, occurred_at DESC);
CREATE INDEX security_events_severity ON security_events (severity, occurred_at DESC);
CREATE INDEX security_events_type ON security_events (event_type, occurred_at DESC);

-- Reviews live apart from the events they review: the two may come from different partitions,
-- and either may be projected first. The earliest review stands.
CREATE TABLE security_event_reviews (
    security_event_id uuid        PRIMARY KEY,
    reviewer          text        NOT NULL,
    reviewed_at       timestamptz NOT NULL,
    review_event_id   uuid        NOT NULL
);

-- Security events with their review state, as the API reads them.
CREATE VIEW security_events_reviewed AS
SELECT e.*,
       r.security_event_id IS NOT NULL AS reviewed,
       r.reviewer AS reviewed_by,
       r.reviewed_at
FROM security_events e
LEFT JOIN security_event_reviews r ON r.security_event_id = e.id;

CREATE TABLE trusted_devices (
    user_id      text        NOT NULL,
    device_id    text        NOT NULL,
    device_name  text,
    trusted      boolean     NOT NULL,
    trusted_at   timestamptz,
    untrusted_at timestamptz,
    updated_at   timestamptz NOT NULL,
    PRIMARY KEY (user_id, device_id)
);

CREATE TABLE user_profiles (
    user_id             text        PRIMARY KEY,
    first_login_at      timestamptz,
    last_login_at       timestamptz,
    successful_logins   bigint      NOT NULL DEFAULT 0,
    failed_logins       bigint      NOT NULL DEFAULT 0,
    locked              boolean     NOT NULL DEFAULT false,
    locked_reason       text,
    locked_until        timestamptz,
    password_changed_at timestamptz
);

-- Per-day login counts, maintained incrementally (the sink adds each batch's deltas).
CREATE TABLE daily_login_stats (
    day          date   NOT NULL,
    country_code text   NOT NULL,
    device_type  text   NOT NULL,
    successes    bigint NOT NULL DEFAULT 0,
    failures     bigint NOT NULL DEFAULT 0,
    suspicious   bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (day, country_code, device_type)
);
