-- A projection's epoch: changed by whoever writes the read tables other than the worker of the
-- partition the rows belong to (retention cleanup, a rebuild swapped in, an event naming another
-- user's session). Workers keep the state their partitions need in memory between batches and
-- start over when they find the epoch changed.
CREATE TABLE projection_epochs (
    projection text PRIMARY KEY,
    epoch      uuid NOT NULL
);
