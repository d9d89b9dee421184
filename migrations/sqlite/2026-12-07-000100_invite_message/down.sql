ALTER TABLE group_invites DROP COLUMN message;
