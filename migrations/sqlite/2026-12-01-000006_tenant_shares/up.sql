-- Each share carries its file's tenant, indexed with the user: counting the
-- files shared with a user in one tenant reads only that tenant's shares,
-- however often the same user id is shared in others (docs/decisions.md 47).
ALTER TABLE file_shares ADD COLUMN project TEXT NOT NULL DEFAULT '';
ALTER TABLE file_shares ADD COLUMN env TEXT NOT NULL DEFAULT '';
UPDATE file_shares SET
    project = (SELECT f.project FROM files f WHERE f.id = file_shares.file_id),
    env = (SELECT f.env FROM files f WHERE f.id = file_shares.file_id)
WHERE EXISTS (SELECT 1 FROM files f WHERE f.id = file_shares.file_id);
CREATE INDEX file_shares_tenant_user ON file_shares (project, env, user_id, file_id);
