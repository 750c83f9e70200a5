-- Share lookups scoped to the tenant: the GIN index holds `{project}/{env}/{user}`
-- for each user of a shared file's share list, so "shared with user U" in one
-- tenant never reads the entries of U in other tenants (a user id shared a
-- million times elsewhere used to make every lookup read them all).
CREATE FUNCTION stowage_tenant_shares(project text, env text, shared_with text[])
RETURNS text[] LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT coalesce(array_agg(project || '/' || env || '/' || u), '{}') FROM unnest(shared_with) AS u $$;
CREATE INDEX files_shared_tenant ON files USING GIN (stowage_tenant_shares(project, env, shared_with))
    WITH (fastupdate = off) WHERE visibility = 'shared';
DROP INDEX IF EXISTS files_shared;
