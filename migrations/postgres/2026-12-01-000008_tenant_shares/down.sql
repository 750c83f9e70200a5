CREATE INDEX files_shared ON files USING GIN (shared_with) WITH (fastupdate = off) WHERE visibility = 'shared';
DROP INDEX files_shared_tenant;
DROP FUNCTION stowage_tenant_shares(text, text, text[]);
