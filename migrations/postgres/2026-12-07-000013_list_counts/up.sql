-- Two more maintained counts behind list totals and project usage
-- (docs/decisions.md 57):
--
-- `share_counts`: how many `shared` files of each owner name each user, per
-- tenant — the part of a caller's list total that `file_counts` cannot give,
-- read as a sum of a few rows instead of counting the shared files (which
-- visited every one of them: ~65 ms for a caller with 200,000 files shared
-- with them).
--
-- `tenant_counts`: files and bytes per tenant, visibility and owner type,
-- spread over 16 stripes by owner so that concurrent writers rarely wait on
-- one row — the open files of a tenant (and a project's usage) read as a sum
-- of at most 16 rows per visibility instead of one `file_counts` row per
-- owner (a tenant of 1,000,000 public files of 1,000,000 owners, say
-- avatars, read a million rows per first page).
--
-- Both are kept by one trigger on `files`, so every writer of `files`
-- (registration's one statement, PATCH, delete, transfer) keeps them exact
-- in the same transaction. The trigger is deferred to commit: by then a
-- transaction has taken every `file_counts` row it writes, and the trigger
-- takes its rows in one order (`tenant_counts` in key order, then
-- `share_counts` in key order), so two racing writers cannot deadlock.
CREATE TABLE share_counts (
    project    TEXT NOT NULL,
    env        TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    owner_type TEXT NOT NULL,
    owner_id   TEXT NOT NULL,
    n          BIGINT NOT NULL,
    PRIMARY KEY (project, env, user_id, owner_type, owner_id)
);

CREATE TABLE tenant_counts (
    project    TEXT NOT NULL,
    env        TEXT NOT NULL,
    visibility TEXT NOT NULL,
    owner_type TEXT NOT NULL,
    stripe     SMALLINT NOT NULL,
    n          BIGINT NOT NULL,
    bytes      BIGINT NOT NULL,
    PRIMARY KEY (project, env, visibility, owner_type, stripe)
);

-- The stripe of an owner. Only spreads row locks: totals sum every stripe,
-- so a stripe that drifted (a different hash after an upgrade) changes no sum.
CREATE FUNCTION stowage_count_stripe(owner_id text) RETURNS smallint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT (hashtext(owner_id) & 15)::smallint $$;

-- Both tables recounted from `files` (the backfill below; also for a bulk
-- load that ran with the trigger disabled, as `cargo xtask bench-db` does).
CREATE FUNCTION stowage_recount_lists() RETURNS void
    LANGUAGE sql AS $$
    DELETE FROM share_counts;
    DELETE FROM tenant_counts;
    INSERT INTO share_counts (project, env, user_id, owner_type, owner_id, n)
        SELECT f.project, f.env, u.id, f.owner_type, f.owner_id, count(*)
        FROM files f, LATERAL (SELECT DISTINCT unnest(f.shared_with) AS id) u
        WHERE f.visibility = 'shared'
        GROUP BY f.project, f.env, u.id, f.owner_type, f.owner_id;
    INSERT INTO tenant_counts (project, env, visibility, owner_type, stripe, n, bytes)
        SELECT project, env, visibility, owner_type, stowage_count_stripe(owner_id), count(*), sum(size)
        FROM files
        GROUP BY project, env, visibility, owner_type, stowage_count_stripe(owner_id);
$$;

SELECT stowage_recount_lists();

CREATE FUNCTION stowage_count_files() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    d record;
BEGIN
    FOR d IN
        SELECT c.project, c.env, c.visibility, c.owner_type, c.stripe,
               sum(c.n) AS n, sum(c.bytes) AS bytes
        FROM (
            SELECT OLD.project, OLD.env, OLD.visibility, OLD.owner_type,
                   stowage_count_stripe(OLD.owner_id), -1, -OLD.size
            WHERE TG_OP <> 'INSERT'
            UNION ALL
            SELECT NEW.project, NEW.env, NEW.visibility, NEW.owner_type,
                   stowage_count_stripe(NEW.owner_id), 1, NEW.size
            WHERE TG_OP <> 'DELETE'
        ) AS c (project, env, visibility, owner_type, stripe, n, bytes)
        GROUP BY c.project, c.env, c.visibility, c.owner_type, c.stripe
        HAVING sum(c.n) <> 0 OR sum(c.bytes) <> 0
        ORDER BY c.project, c.env, c.visibility, c.owner_type, c.stripe
    LOOP
        INSERT INTO tenant_counts AS t (project, env, visibility, owner_type, stripe, n, bytes)
            VALUES (d.project, d.env, d.visibility, d.owner_type, d.stripe, d.n, d.bytes)
            ON CONFLICT (project, env, visibility, owner_type, stripe)
            DO UPDATE SET n = t.n + EXCLUDED.n, bytes = t.bytes + EXCLUDED.bytes;
    END LOOP;
    FOR d IN
        SELECT c.project, c.env, c.user_id, c.owner_type, c.owner_id, sum(c.delta) AS delta
        FROM (
            SELECT OLD.project, OLD.env, u AS user_id, OLD.owner_type, OLD.owner_id, -1 AS delta
            FROM (SELECT DISTINCT unnest(OLD.shared_with) AS u) o
            WHERE TG_OP <> 'INSERT' AND OLD.visibility = 'shared'
            UNION ALL
            SELECT NEW.project, NEW.env, u, NEW.owner_type, NEW.owner_id, 1
            FROM (SELECT DISTINCT unnest(NEW.shared_with) AS u) n
            WHERE TG_OP <> 'DELETE' AND NEW.visibility = 'shared'
        ) AS c (project, env, user_id, owner_type, owner_id, delta)
        GROUP BY c.project, c.env, c.user_id, c.owner_type, c.owner_id
        HAVING sum(c.delta) <> 0
        ORDER BY c.project, c.env, c.user_id, c.owner_type, c.owner_id
    LOOP
        INSERT INTO share_counts AS s (project, env, user_id, owner_type, owner_id, n)
            VALUES (d.project, d.env, d.user_id, d.owner_type, d.owner_id, d.delta)
            ON CONFLICT (project, env, user_id, owner_type, owner_id)
            DO UPDATE SET n = s.n + EXCLUDED.n;
    END LOOP;
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER files_counts_insert AFTER INSERT ON files
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    EXECUTE FUNCTION stowage_count_files();
CREATE CONSTRAINT TRIGGER files_counts_update AFTER UPDATE ON files
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    WHEN ((OLD.visibility, OLD.size, OLD.project, OLD.env, OLD.owner_type, OLD.owner_id)
            IS DISTINCT FROM
            (NEW.visibility, NEW.size, NEW.project, NEW.env, NEW.owner_type, NEW.owner_id)
        OR ((OLD.visibility = 'shared' OR NEW.visibility = 'shared')
            AND OLD.shared_with IS DISTINCT FROM NEW.shared_with))
    EXECUTE FUNCTION stowage_count_files();
CREATE CONSTRAINT TRIGGER files_counts_delete AFTER DELETE ON files
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    EXECUTE FUNCTION stowage_count_files();

-- Only the shared count read this index (the tenant-qualified share keys of
-- migration `tenant_shares`); the shared branch of a page reads
-- `files_shared`. One index less for every write of `files`.
DROP INDEX files_shared_tenant;
DROP FUNCTION stowage_share_keys(text, text, text[]);
