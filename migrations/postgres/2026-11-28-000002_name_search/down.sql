DROP INDEX IF EXISTS files_name_trgm;
