DROP INDEX file_shares_tenant_user;
ALTER TABLE file_shares DROP COLUMN env;
ALTER TABLE file_shares DROP COLUMN project;
