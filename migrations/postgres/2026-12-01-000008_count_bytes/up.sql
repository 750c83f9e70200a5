-- Bytes next to the file count of each owner and visibility, maintained in
-- the same transactions, so usage and quotas (docs/api.md §11) never sum
-- over files. Existing counts are backfilled from the files they count.
ALTER TABLE file_counts ADD COLUMN bytes BIGINT NOT NULL DEFAULT 0;
UPDATE file_counts SET bytes = (
    SELECT COALESCE(SUM(f.size), 0) FROM files f
    WHERE f.project = file_counts.project AND f.env = file_counts.env
      AND f.visibility = file_counts.visibility AND f.owner_type = file_counts.owner_type
      AND f.owner_id = file_counts.owner_id
);
