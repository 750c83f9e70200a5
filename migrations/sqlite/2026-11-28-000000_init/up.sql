-- Stowage schema on SQLite. Times are epoch milliseconds (UTC); ids are UUID text.

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY NOT NULL,
    key_hash    TEXT NOT NULL UNIQUE,
    project     TEXT NOT NULL,
    env         TEXT NOT NULL,
    kind        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT,
    revoked_at  BIGINT
);

CREATE TABLE uploads (
    s3_key        TEXT PRIMARY KEY NOT NULL,
    project       TEXT NOT NULL,
    env           TEXT NOT NULL,
    owner_type    TEXT NOT NULL,
    owner_id      TEXT NOT NULL,
    filename      TEXT NOT NULL,
    content_type  TEXT NOT NULL,
    declared_size BIGINT,
    visibility    TEXT,
    category      TEXT,
    max_size      BIGINT NOT NULL,
    multipart_id  TEXT,
    state         TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);
CREATE INDEX uploads_state_created ON uploads (state, created_at);

CREATE TABLE files (
    id            TEXT PRIMARY KEY NOT NULL,
    project       TEXT NOT NULL,
    env           TEXT NOT NULL,
    s3_key        TEXT NOT NULL UNIQUE,
    original_name TEXT NOT NULL,
    name_folded   TEXT NOT NULL,
    mime_type     TEXT NOT NULL,
    size          BIGINT NOT NULL,
    width         BIGINT,
    height        BIGINT,
    visibility    TEXT NOT NULL,
    bucket        TEXT NOT NULL,
    owner_type    TEXT NOT NULL,
    owner_id      TEXT NOT NULL,
    shared_with   TEXT NOT NULL,
    metadata      TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
-- One index per sort column, tenant first, id last for the tie-break and keyset.
CREATE INDEX files_created ON files (project, env, created_at, id);
CREATE INDEX files_updated ON files (project, env, updated_at, id);
CREATE INDEX files_name    ON files (project, env, original_name, id);
CREATE INDEX files_size    ON files (project, env, size, id);
CREATE INDEX files_mime    ON files (project, env, mime_type, id);
CREATE INDEX files_owner   ON files (project, env, owner_id, owner_type, created_at, id);

-- sharedWith, normalised so the visibility predicate is an indexed lookup.
CREATE TABLE file_shares (
    file_id TEXT NOT NULL REFERENCES files (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL,
    PRIMARY KEY (file_id, user_id)
);
CREATE INDEX file_shares_user ON file_shares (user_id, file_id);

-- Objects whose deletion failed or is pending; retried by the lifecycle worker.
CREATE TABLE object_deletions (
    s3_key          TEXT PRIMARY KEY NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL
);
CREATE INDEX object_deletions_due ON object_deletions (next_attempt_at);
