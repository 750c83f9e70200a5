DROP TABLE object_deletions;
DROP TABLE files;
DROP TABLE uploads;
DROP TABLE api_keys;
