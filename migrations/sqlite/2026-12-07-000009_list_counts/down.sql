DROP TRIGGER files_tenant_counts_insert;
DROP TRIGGER files_tenant_counts_update;
DROP TRIGGER files_tenant_counts_delete;
DROP TABLE tenant_counts;
DROP TRIGGER files_share_counts_insert;
DROP TRIGGER files_share_counts_update;
DROP TRIGGER files_share_counts_delete;
DROP TABLE share_counts;
