-- Indexes the query API's reads need (issue 5). Forward only.

-- "My sessions" and an admin's view of one user's sessions, newest first: keyset pagination
-- over (created_at DESC, session_id), the one order of every session list (created_at never
-- changes, so a page boundary never moves under a reader). Served by sessions_user_created
-- (migration 20261125010001).

-- The security-event stream: a projected batch is found as the offsets it advanced over; the
-- events it recorded are found by their source event.
CREATE INDEX processed_events_position ON processed_events (topic, partition, "offset");
CREATE INDEX security_events_source ON security_events (source_event_id);

-- The top failing addresses over a recent window.
CREATE INDEX login_history_failed_time ON login_history (attempted_at DESC) INCLUDE (ip)
    WHERE NOT success;
