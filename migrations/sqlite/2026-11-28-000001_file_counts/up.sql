-- Per-owner, per-visibility file counts, maintained in the same transaction as
-- every insert/update/delete of `files`, so list totals need not count rows.
CREATE TABLE file_counts (
    project    TEXT NOT NULL,
    env        TEXT NOT NULL,
    visibility TEXT NOT NULL,
    owner_type TEXT NOT NULL,
    owner_id   TEXT NOT NULL,
    n          BIGINT NOT NULL,
    PRIMARY KEY (project, env, visibility, owner_type, owner_id)
);
INSERT INTO file_counts (project, env, visibility, owner_type, owner_id, n)
    SELECT project, env, visibility, owner_type, owner_id, count(*) FROM files
    GROUP BY project, env, visibility, owner_type, owner_id;
