ALTER TABLE files DROP COLUMN checksum_sha256;
ALTER TABLE uploads DROP COLUMN checksum_sha256;
