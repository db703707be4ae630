-- Erasure by crypto-shredding (src/privacy): one AES-256-GCM data key per subject and
-- generation, wrapped by the master key (`master_key` is that key's fingerprint). Destroying a
-- subject's rows here makes the personal members of its events unreadable in every copy of the
-- log. A subject forgotten and seen again gets the generation after the last destroyed one.
CREATE TABLE subject_keys (
    subject    text        NOT NULL,
    generation integer     NOT NULL CHECK (generation > 0),
    master_key text        NOT NULL,
    wrapped    bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subject, generation)
);

-- One row per `forget`: who asked, when, which key generations were destroyed and how many
-- rows were purged. Kept for good (it names only the user id, like the log's keys).
CREATE TABLE erasures (
    id           uuid        PRIMARY KEY,
    subject      text        NOT NULL,
    generation   integer     NOT NULL,
    keys         integer     NOT NULL,
    requested_by text        NOT NULL,
    erased_at    timestamptz NOT NULL DEFAULT now(),
    purged       jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX erasures_subject ON erasures (subject, generation);
