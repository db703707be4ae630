-- Infrastructure every projection worker shares. Forward only: never edit, add a new file.

-- Where each projection stands in the log: the next offset to read per partition. Written in the
-- same transaction as the rows a batch produced, so rows and position never disagree.
CREATE TABLE projection_checkpoints (
    projection  text        NOT NULL,
    topic       text        NOT NULL,
    partition   integer     NOT NULL CHECK (partition >= 0),
    next_offset bigint      NOT NULL CHECK (next_offset >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, topic, partition)
);

-- Messages that could not be decoded or validated. Kept verbatim (bytes) for diagnosis and
-- replay after a fix; the partition keeps flowing past them.
CREATE TABLE dead_letters (
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    "offset"    bigint      NOT NULL,
    message_key bytea,
    payload     bytea,
    error_field text        NOT NULL,
    error       text        NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition, "offset")
);
CREATE INDEX dead_letters_received_at ON dead_letters (received_at);
