-- A session row changes on every refresh and activity event. Keeping the columns those events
-- change out of every index, and leaving free space on each page, lets PostgreSQL update the row
-- in place (a HOT update) instead of adding an entry to each of the table's indexes.
ALTER TABLE sessions SET (fillfactor = 70);
DROP INDEX sessions_user_activity;
CREATE INDEX sessions_user_created ON sessions (user_id, created_at DESC, session_id);
