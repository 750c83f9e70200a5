-- How many `shared` files of each owner name each user, per tenant: the part
-- of a caller's list total that `file_counts` cannot give, read as a sum of
-- a few rows instead of counting the shared files (which visited every one
-- of them: ~65 ms for a caller with 200,000 files shared with them,
-- docs/decisions.md 57).
--
-- Maintained by a trigger, so every writer of `files` (registration's one
-- statement, PATCH, delete, transfer) keeps it exact in the same
-- transaction. The trigger is deferred to commit: by then a transaction has
-- taken every `file_counts` row it writes, so all of them lock the two count
-- tables in the same order (`file_counts`, then `share_counts` in key order)
-- and two racing writers cannot deadlock.
CREATE TABLE share_counts (
    project    TEXT NOT NULL,
    env        TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    owner_type TEXT NOT NULL,
    owner_id   TEXT NOT NULL,
    n          BIGINT NOT NULL,
    PRIMARY KEY (project, env, user_id, owner_type, owner_id)
);

INSERT INTO share_counts (project, env, user_id, owner_type, owner_id, n)
    SELECT f.project, f.env, u.id, f.owner_type, f.owner_id, count(*)
    FROM files f, LATERAL (SELECT DISTINCT unnest(f.shared_with) AS id) u
    WHERE f.visibility = 'shared'
    GROUP BY f.project, f.env, u.id, f.owner_type, f.owner_id;

CREATE FUNCTION stowage_count_shares() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    d record;
BEGIN
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

CREATE CONSTRAINT TRIGGER files_share_counts_insert AFTER INSERT ON files
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    WHEN (NEW.visibility = 'shared')
    EXECUTE FUNCTION stowage_count_shares();
CREATE CONSTRAINT TRIGGER files_share_counts_update AFTER UPDATE ON files
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    WHEN ((OLD.visibility = 'shared' OR NEW.visibility = 'shared')
        AND (OLD.visibility, OLD.shared_with, OLD.project, OLD.env, OLD.owner_type, OLD.owner_id)
            IS DISTINCT FROM
            (NEW.visibility, NEW.shared_with, NEW.project, NEW.env, NEW.owner_type, NEW.owner_id))
    EXECUTE FUNCTION stowage_count_shares();
CREATE CONSTRAINT TRIGGER files_share_counts_delete AFTER DELETE ON files
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    WHEN (OLD.visibility = 'shared')
    EXECUTE FUNCTION stowage_count_shares();

-- Only the shared count read this index (the tenant-qualified share keys of
-- migration `tenant_shares`); the shared branch of a page reads
-- `files_shared`. One index less for every write of `files`.
DROP INDEX files_shared_tenant;
DROP FUNCTION stowage_share_keys(text, text, text[]);
