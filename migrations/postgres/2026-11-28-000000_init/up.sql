-- Stowage schema on PostgreSQL. Times are epoch milliseconds (UTC), like the SQLite
-- schema, so both backends order and page identically.

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    key_hash    TEXT NOT NULL UNIQUE,
    project     TEXT NOT NULL,
    env         TEXT NOT NULL,
    kind        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT,
    revoked_at  BIGINT
);

CREATE TABLE uploads (
    s3_key        TEXT PRIMARY KEY,
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
    id            TEXT PRIMARY KEY COLLATE "C",
    project       TEXT NOT NULL,
    env           TEXT NOT NULL,
    s3_key        TEXT NOT NULL UNIQUE,
    -- Code-point order for sorting, as on SQLite.
    original_name TEXT NOT NULL COLLATE "C",
    name_folded   TEXT NOT NULL,
    mime_type     TEXT NOT NULL COLLATE "C",
    size          BIGINT NOT NULL,
    width         BIGINT,
    height        BIGINT,
    visibility    TEXT NOT NULL,
    bucket        TEXT NOT NULL,
    owner_type    TEXT NOT NULL,
    owner_id      TEXT NOT NULL,
    shared_with   TEXT[] NOT NULL DEFAULT '{}',
    metadata      JSONB NOT NULL DEFAULT '{}',
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
-- The "shared with me" branch of the visibility predicate.
CREATE INDEX files_shared  ON files USING GIN (shared_with) WHERE visibility = 'shared';

CREATE TABLE object_deletions (
    s3_key          TEXT PRIMARY KEY,
    next_attempt_at BIGINT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL
);
CREATE INDEX object_deletions_due ON object_deletions (next_attempt_at);
