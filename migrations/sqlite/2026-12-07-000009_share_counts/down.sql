DROP TRIGGER files_share_counts_insert;
DROP TRIGGER files_share_counts_update;
DROP TRIGGER files_share_counts_delete;
DROP TABLE share_counts;
