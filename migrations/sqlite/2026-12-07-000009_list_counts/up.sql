-- Two more maintained counts behind list totals and project usage
-- (docs/decisions.md 57), as in PostgreSQL's migration of the same name:
-- `share_counts`, how many `shared` files of each owner name each user, per
-- tenant (the part of a caller's total `file_counts` cannot give, which was
-- counted by probing every file shared with the caller), and
-- `tenant_counts`, files and bytes per tenant, visibility and owner type (a
-- tenant's open files read as a few rows, not one row per owner). Kept by
-- triggers on `files`, in the writing statement's own transaction (one
-- writer at a time: one stripe, no lock order to keep).
CREATE TABLE share_counts (
    project    TEXT NOT NULL,
    env        TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    owner_type TEXT NOT NULL,
    owner_id   TEXT NOT NULL,
    n          INTEGER NOT NULL,
    PRIMARY KEY (project, env, user_id, owner_type, owner_id)
) WITHOUT ROWID;

INSERT INTO share_counts (project, env, user_id, owner_type, owner_id, n)
    SELECT f.project, f.env, u.value, f.owner_type, f.owner_id, count(DISTINCT f.id)
    FROM files f, json_each(f.shared_with) u
    WHERE f.visibility = 'shared'
    GROUP BY f.project, f.env, u.value, f.owner_type, f.owner_id;

CREATE TRIGGER files_share_counts_insert AFTER INSERT ON files
    WHEN NEW.visibility = 'shared'
BEGIN
    INSERT INTO share_counts (project, env, user_id, owner_type, owner_id, n)
        SELECT NEW.project, NEW.env, u.value, NEW.owner_type, NEW.owner_id, 1
        FROM (SELECT DISTINCT value FROM json_each(NEW.shared_with)) u WHERE true
        ON CONFLICT (project, env, user_id, owner_type, owner_id) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER files_share_counts_delete AFTER DELETE ON files
    WHEN OLD.visibility = 'shared'
BEGIN
    UPDATE share_counts SET n = n - 1
        WHERE project = OLD.project AND env = OLD.env
          AND owner_type = OLD.owner_type AND owner_id = OLD.owner_id
          AND user_id IN (SELECT value FROM json_each(OLD.shared_with));
END;

-- An update uncounts the old row and counts the new one (both steps of the
-- same trigger, so nothing between them sees half of it).
CREATE TRIGGER files_share_counts_update AFTER UPDATE ON files
    WHEN (OLD.visibility = 'shared' OR NEW.visibility = 'shared')
        AND (OLD.visibility IS NOT NEW.visibility OR OLD.shared_with IS NOT NEW.shared_with
            OR OLD.project IS NOT NEW.project OR OLD.env IS NOT NEW.env
            OR OLD.owner_type IS NOT NEW.owner_type OR OLD.owner_id IS NOT NEW.owner_id)
BEGIN
    UPDATE share_counts SET n = n - 1
        WHERE OLD.visibility = 'shared'
          AND project = OLD.project AND env = OLD.env
          AND owner_type = OLD.owner_type AND owner_id = OLD.owner_id
          AND user_id IN (SELECT value FROM json_each(OLD.shared_with));
    INSERT INTO share_counts (project, env, user_id, owner_type, owner_id, n)
        SELECT NEW.project, NEW.env, u.value, NEW.owner_type, NEW.owner_id, 1
        FROM (SELECT DISTINCT value FROM json_each(NEW.shared_with)) u
        WHERE NEW.visibility = 'shared'
        ON CONFLICT (project, env, user_id, owner_type, owner_id) DO UPDATE SET n = n + 1;
END;

CREATE TABLE tenant_counts (
    project    TEXT NOT NULL,
    env        TEXT NOT NULL,
    visibility TEXT NOT NULL,
    owner_type TEXT NOT NULL,
    stripe     INTEGER NOT NULL,
    n          INTEGER NOT NULL,
    bytes      INTEGER NOT NULL,
    PRIMARY KEY (project, env, visibility, owner_type, stripe)
) WITHOUT ROWID;

INSERT INTO tenant_counts (project, env, visibility, owner_type, stripe, n, bytes)
    SELECT project, env, visibility, owner_type, 0, count(*), sum(size) FROM files
    GROUP BY project, env, visibility, owner_type;

CREATE TRIGGER files_tenant_counts_insert AFTER INSERT ON files
BEGIN
    INSERT INTO tenant_counts (project, env, visibility, owner_type, stripe, n, bytes)
        VALUES (NEW.project, NEW.env, NEW.visibility, NEW.owner_type, 0, 1, NEW.size)
        ON CONFLICT (project, env, visibility, owner_type, stripe)
        DO UPDATE SET n = n + 1, bytes = bytes + excluded.bytes;
END;

CREATE TRIGGER files_tenant_counts_delete AFTER DELETE ON files
BEGIN
    UPDATE tenant_counts SET n = n - 1, bytes = bytes - OLD.size
        WHERE project = OLD.project AND env = OLD.env AND visibility = OLD.visibility
          AND owner_type = OLD.owner_type AND stripe = 0;
END;

CREATE TRIGGER files_tenant_counts_update AFTER UPDATE ON files
    WHEN OLD.visibility IS NOT NEW.visibility OR OLD.size IS NOT NEW.size
        OR OLD.project IS NOT NEW.project OR OLD.env IS NOT NEW.env
        OR OLD.owner_type IS NOT NEW.owner_type
BEGIN
    UPDATE tenant_counts SET n = n - 1, bytes = bytes - OLD.size
        WHERE project = OLD.project AND env = OLD.env AND visibility = OLD.visibility
          AND owner_type = OLD.owner_type AND stripe = 0;
    INSERT INTO tenant_counts (project, env, visibility, owner_type, stripe, n, bytes)
        VALUES (NEW.project, NEW.env, NEW.visibility, NEW.owner_type, 0, 1, NEW.size)
        ON CONFLICT (project, env, visibility, owner_type, stripe)
        DO UPDATE SET n = n + 1, bytes = bytes + excluded.bytes;
END;
