-- The teams of an organization. Both are `groups` rows; a team belongs to at most one organization,
-- and deleting the organization leaves its teams standing on their own.
CREATE TABLE organization_teams (
    team_id         TEXT PRIMARY KEY REFERENCES groups (id) ON DELETE CASCADE,
    organization_id TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    CHECK (team_id <> organization_id)
);
CREATE INDEX organization_teams_organization_idx ON organization_teams (organization_id);
