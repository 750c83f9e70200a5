-- A caller's listing is read as branches, each an ordered index scan bounded
-- by the page (see stowage_diesel_common::Branch): their own files, in every
-- sort order; other owners' public and protected files, in every sort order
-- (partial indexes: only open files are in them, and the query names the
-- predicate literally so that prepared statements match it).
CREATE INDEX files_owner_updated ON files (project, env, owner_id, owner_type, updated_at, id);
CREATE INDEX files_owner_name    ON files (project, env, owner_id, owner_type, original_name, id);
CREATE INDEX files_owner_size    ON files (project, env, owner_id, owner_type, size, id);
CREATE INDEX files_owner_mime    ON files (project, env, owner_id, owner_type, mime_type, id);
CREATE INDEX files_open_created ON files (project, env, created_at, id) WHERE visibility IN ('public', 'protected');
CREATE INDEX files_open_updated ON files (project, env, updated_at, id) WHERE visibility IN ('public', 'protected');
CREATE INDEX files_open_name    ON files (project, env, original_name, id) WHERE visibility IN ('public', 'protected');
CREATE INDEX files_open_size    ON files (project, env, size, id) WHERE visibility IN ('public', 'protected');
CREATE INDEX files_open_mime    ON files (project, env, mime_type, id) WHERE visibility IN ('public', 'protected');
