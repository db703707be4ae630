-- Signed checkpoints of the log's hash chains (src/seal/). Written by the seal worker, read by
-- `authtrail verify`; the same JSON goes to the seals topic. Rows are never updated except
-- `published` (the topic copy was acknowledged).
CREATE TABLE seal_checkpoints (
    topic        text        NOT NULL,
    partition    integer     NOT NULL,
    first_offset bigint      NOT NULL,
    last_offset  bigint      NOT NULL,
    records      integer     NOT NULL,
    head         bytea       NOT NULL,
    key_id       text        NOT NULL,
    sealed_at    timestamptz NOT NULL,
    body         jsonb       NOT NULL,
    published    boolean     NOT NULL DEFAULT false,
    PRIMARY KEY (topic, partition, first_offset)
);

-- Where each partition's chain stands: the sealer advances it by compare-and-swap, so two
-- sealers can never interleave their checkpoints in one chain.
CREATE TABLE seal_heads (
    topic       text    NOT NULL,
    partition   integer NOT NULL,
    last_offset bigint  NOT NULL,
    head        bytea   NOT NULL,
    PRIMARY KEY (topic, partition)
);
