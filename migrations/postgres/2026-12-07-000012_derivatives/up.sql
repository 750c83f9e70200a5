-- Derived images (docs/api.md §9): one row per stored variant of a file.
-- A file's deletion queues their objects and forgets them in its transaction;
-- recording one locks the file's row first, so neither outlives the file.
CREATE TABLE derivatives (
    file_id    TEXT NOT NULL COLLATE "C",
    variant    TEXT NOT NULL,
    s3_key     TEXT NOT NULL,
    size       BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (file_id, variant)
);
