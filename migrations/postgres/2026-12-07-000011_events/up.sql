-- The outbox (docs/api.md §10): one row per committed change, written in the
-- change's transaction. `tx` is the writing transaction's id: a reader takes
-- only rows of transactions older than every running one, in (tx, seq)
-- order, so a row that commits late can never fall behind its cursor.
CREATE TABLE events (
    seq BIGSERIAL PRIMARY KEY,
    tx BIGINT NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
    id TEXT NOT NULL UNIQUE,
    project TEXT NOT NULL,
    env TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX events_feed ON events (tx, seq);
CREATE INDEX events_created ON events (created_at);

CREATE TABLE webhook_endpoints (
    id TEXT PRIMARY KEY,
    project TEXT NOT NULL,
    env TEXT NOT NULL,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    -- ',file.registered,file.deleted,' or '' for every type.
    event_types TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL
);
CREATE INDEX webhook_endpoints_tenant ON webhook_endpoints (project, env);

-- One per (endpoint, event), made with the event.
CREATE TABLE webhook_deliveries (
    endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    event_seq BIGINT NOT NULL REFERENCES events (seq) ON DELETE CASCADE,
    event_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_until BIGINT NOT NULL DEFAULT 0,
    retry_from BIGINT NOT NULL,
    finished_at BIGINT,
    PRIMARY KEY (endpoint_id, event_seq)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (event_seq) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_order ON webhook_deliveries (endpoint_id, subject, event_seq)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_id);
CREATE INDEX webhook_deliveries_event_seq ON webhook_deliveries (event_seq);
CREATE INDEX webhook_deliveries_finished ON webhook_deliveries (finished_at)
    WHERE state <> 'pending';

CREATE TABLE webhook_attempts (
    endpoint_id TEXT NOT NULL,
    event_seq BIGINT NOT NULL,
    attempt INTEGER NOT NULL,
    at BIGINT NOT NULL,
    status INTEGER,
    error TEXT,
    duration_ms BIGINT NOT NULL,
    PRIMARY KEY (endpoint_id, event_seq, attempt),
    FOREIGN KEY (endpoint_id, event_seq)
        REFERENCES webhook_deliveries (endpoint_id, event_seq) ON DELETE CASCADE
);
CREATE INDEX webhook_attempts_recent ON webhook_attempts (endpoint_id, at);
