DROP INDEX IF EXISTS files_shared;
CREATE INDEX files_shared ON files USING GIN (shared_with) WITH (fastupdate = off);
