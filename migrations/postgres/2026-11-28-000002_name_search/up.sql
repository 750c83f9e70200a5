-- Substring search on names (`search=`) through a trigram index when the pg_trgm
-- extension can be used; without it (no privilege to create it), search still
-- works, by scanning.
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'pg_trgm unavailable (%); name search will scan', SQLERRM;
END
$$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
        EXECUTE 'CREATE INDEX IF NOT EXISTS files_name_trgm ON files USING GIN (name_folded gin_trgm_ops)';
    END IF;
END
$$;
