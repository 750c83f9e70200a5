-- The SHA-256 of each object (base64, docs/api.md §11): declared at issue
-- (bound to the upload URL) and recorded with the file. Files registered
-- before this migration have none (null: unknown), as the API shows.
ALTER TABLE uploads ADD COLUMN checksum_sha256 TEXT;
ALTER TABLE files ADD COLUMN checksum_sha256 TEXT;
