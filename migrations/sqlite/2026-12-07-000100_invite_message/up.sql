-- The note an organization invite carries (POST /api/organizations/:id/invite {message}), kept with
-- the invite instead of only echoed. NULL: no note (team invites, and invites made before).
ALTER TABLE group_invites ADD COLUMN message TEXT;
