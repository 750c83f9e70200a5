-- The "shared with me" lookup. Two fixes over the first schema:
-- * The partial index (WHERE visibility = 'shared') is invisible to generic plans
--   of prepared statements, where `visibility` is a parameter; a full index
--   serves every plan (rows that are not shared carry an empty array).
-- * GIN's fast-update pending list is scanned linearly by every query until a
--   vacuum merges it: after a burst of registrations the lookup took ~45 ms at
--   23 k files. With fastupdate off, inserts maintain the index directly.
DROP INDEX IF EXISTS files_shared;
CREATE INDEX files_shared ON files USING GIN (shared_with) WITH (fastupdate = off);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_class WHERE relname = 'files_name_trgm') THEN
        EXECUTE 'ALTER INDEX files_name_trgm SET (fastupdate = off)';
    END IF;
END
$$;
