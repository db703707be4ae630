-- A session's status at an instant, from the facts the projection records. Queries pass now()
-- (or any instant, for time travel); the Rust twin is Session::status_at in
-- projections/src/rows.rs, and a test keeps the two in agreement.
CREATE FUNCTION session_status(s sessions, at timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN s.revoked_at IS NOT NULL AND s.logged_out_at IS NOT NULL
             AND s.logged_out_at < s.revoked_at AND s.logged_out_at <= at THEN 'logged_out'
        WHEN s.revoked_at IS NOT NULL AND s.revoked_at <= at THEN 'revoked'
        WHEN s.logged_out_at IS NOT NULL AND s.logged_out_at <= at THEN 'logged_out'
        WHEN at >= s.expires_at OR at >= s.absolute_expires_at THEN 'expired'
        WHEN at >= s.idle_expires_at THEN 'idle_expired'
        ELSE 'active'
    END
$$;

-- Sessions with their status now.
CREATE VIEW sessions_now AS
SELECT s.*, session_status(s, now()) AS status FROM sessions s;
