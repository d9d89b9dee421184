-- Children before parents. With foreign_keys=ON a DROP deletes the rows first, which fires the
-- ON DELETE actions; every reference has one, so the projects <-> conversations cycle is fine.
DROP TABLE IF EXISTS ip_blocks;
DROP TABLE IF EXISTS security_events;
DROP TABLE IF EXISTS collab_updates;
DROP TABLE IF EXISTS collab_documents;
DROP TABLE IF EXISTS notifications;
DROP TABLE IF EXISTS dm_receipts;
DROP TABLE IF EXISTS message_reactions;
DROP TABLE IF EXISTS conversation_participants;
DROP TABLE IF EXISTS messages;
DROP TABLE IF EXISTS conversations;
DROP TABLE IF EXISTS files;
DROP TABLE IF EXISTS project_members;
DROP TABLE IF EXISTS projects;
DROP TABLE IF EXISTS group_invites;
DROP TABLE IF EXISTS group_members;
DROP TABLE IF EXISTS groups;
DROP TABLE IF EXISTS refresh_tokens;
DROP TABLE IF EXISTS users;
