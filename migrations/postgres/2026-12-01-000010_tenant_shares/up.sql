-- Shares qualified by tenant (`{project}/{env}/{user id}`), indexed over
-- shared files: counting the files shared with a user in one tenant then
-- reads only that tenant's entries. Over `files_shared` (the bare user ids)
-- the same count read every tenant's shares of that id and filtered them
-- (docs/performance.md, "The shared count across tenants").
CREATE FUNCTION stowage_share_keys(project text, env text, shared_with text[]) RETURNS text[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT array_agg(project || '/' || env || '/' || u) FROM unnest(shared_with) AS u $$;

CREATE INDEX files_shared_tenant ON files
    USING gin (stowage_share_keys(project, env, shared_with)) WITH (fastupdate = off)
    WHERE visibility = 'shared';
