-- Secrets every replica on this database shares, created on first use
-- (the cursor-sealing key of docs/api.md §12). Values are hex.
CREATE TABLE instance_secrets (
    name  TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
