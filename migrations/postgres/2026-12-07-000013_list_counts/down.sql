CREATE FUNCTION stowage_share_keys(project text, env text, shared_with text[]) RETURNS text[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT array_agg(project || '/' || env || '/' || u) FROM unnest(shared_with) AS u $$;
CREATE INDEX files_shared_tenant ON files
    USING gin (stowage_share_keys(project, env, shared_with)) WITH (fastupdate = off)
    WHERE visibility = 'shared';
DROP TRIGGER files_counts_insert ON files;
DROP TRIGGER files_counts_update ON files;
DROP TRIGGER files_counts_delete ON files;
DROP FUNCTION stowage_count_files();
DROP FUNCTION stowage_recount_lists();
DROP FUNCTION stowage_count_stripe(text);
DROP TABLE tenant_counts;
DROP TABLE share_counts;
