-- A session row changes on every refresh and activity event. Keeping the columns those events
-- change out of every index, and leaving free space on each page, lets PostgreSQL update the row
-- in place (a HOT update) instead of adding an entry to each of the table's indexes.
ALTER TABLE sessions SET (fillfactor = 70);
DROP INDEX sessions_user_activity;
CREATE INDEX sessions_user_created ON sessions (user_id, created_at DESC, session_id);

-- The projector loads a batch's users' sessions that could still be active: bounded by the
-- absolute expiry (fixed at creation, so updates stay HOT), the scan reads only recent sessions
-- instead of every session the users ever had.
CREATE INDEX sessions_user_horizon ON sessions (user_id, absolute_expires_at);
