ALTER TABLE file_counts DROP COLUMN bytes;
