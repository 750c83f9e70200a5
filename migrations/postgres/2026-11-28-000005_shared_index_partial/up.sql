-- Index only the rows whose visibility is `shared`. A file keeps its share
-- list whatever its visibility, so the full index of 000003 made "shared with
-- me" fetch and discard every non-shared file naming the user (2 ms for 230 of
-- them). The queries now spell `visibility = 'shared'` as a literal, which
-- generic plans of prepared statements can match against this predicate.
DROP INDEX IF EXISTS files_shared;
CREATE INDEX files_shared ON files USING GIN (shared_with)
    WITH (fastupdate = off) WHERE visibility = 'shared';
