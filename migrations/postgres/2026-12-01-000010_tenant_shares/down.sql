DROP INDEX files_shared_tenant;
DROP FUNCTION stowage_share_keys(text, text, text[]);
