-- flux data model (CONTRACT §15.2), SQLite dialect.
-- Keep equivalent to migrations/postgres/2026-11-25-000000_init/up.sql.
-- Conventions: ids are TEXT; timestamps are set by the application (UTC, microseconds), never by
-- defaults; JSON is TEXT checked with json_valid; e-mails are stored lower-case.

CREATE TABLE users (
    id                    TEXT PRIMARY KEY,
    email                 TEXT NOT NULL UNIQUE CHECK (email = lower(email) AND email <> ''),
    name                  TEXT NOT NULL,
    password_hash         TEXT,
    password_scheme       TEXT,
    user_type             TEXT NOT NULL DEFAULT 'client' CHECK (user_type IN ('client', 'designer', 'admin')),
    avatar_url            TEXT,
    phone                 TEXT,
    timezone              TEXT,
    preferences           TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(preferences)),
    google_sub            TEXT UNIQUE,
    email_verified        BOOLEAN NOT NULL DEFAULT FALSE,
    is_active             BOOLEAN NOT NULL DEFAULT TRUE,
    failed_login_count    INTEGER NOT NULL DEFAULT 0,
    first_failed_login_at TEXT,
    locked_until          TEXT,
    last_login_at         TEXT,
    last_seen_at          TEXT,
    created_at            TEXT NOT NULL,
    updated_at            TEXT NOT NULL
);

CREATE TABLE refresh_tokens (
    id                 TEXT PRIMARY KEY,
    user_id            TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash         TEXT NOT NULL UNIQUE,
    family_id          TEXT NOT NULL,
    device_name        TEXT,
    device_fingerprint TEXT,
    ip_address         TEXT,
    user_agent         TEXT,
    created_at         TEXT NOT NULL,
    last_used_at       TEXT NOT NULL,
    expires_at         TEXT NOT NULL,
    revoked_at         TEXT,
    replaced_by        TEXT REFERENCES refresh_tokens (id) ON DELETE SET NULL
);
CREATE INDEX refresh_tokens_active_user_idx ON refresh_tokens (user_id) WHERE revoked_at IS NULL;
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);

-- Legacy "teams" and "organizations" share one table (kind tells them apart).
CREATE TABLE groups (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL DEFAULT 'team' CHECK (kind IN ('team', 'organization')),
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    description TEXT,
    created_by  TEXT REFERENCES users (id) ON DELETE SET NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX groups_created_by_idx ON groups (created_by);

CREATE TABLE group_members (
    group_id  TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id   TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role      TEXT NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'admin', 'member')),
    joined_at TEXT NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user_idx ON group_members (user_id);

CREATE TABLE group_invites (
    id           TEXT PRIMARY KEY,
    group_id     TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    email        TEXT NOT NULL CHECK (email = lower(email)),
    role         TEXT NOT NULL DEFAULT 'member' CHECK (role IN ('admin', 'member')),
    invited_by   TEXT REFERENCES users (id) ON DELETE SET NULL,
    invited_at   TEXT NOT NULL,
    status       TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'accepted', 'declined', 'revoked', 'expired')),
    responded_at TEXT
);
CREATE UNIQUE INDEX group_invites_pending_uniq ON group_invites (group_id, email) WHERE status = 'pending';
CREATE INDEX group_invites_email_idx ON group_invites (email);

CREATE TABLE projects (
    id                TEXT PRIMARY KEY,
    name              TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description       TEXT CHECK (description IS NULL OR length(description) <= 2000),
    group_id          TEXT REFERENCES groups (id) ON DELETE SET NULL,
    status            TEXT NOT NULL DEFAULT 'planning',
    priority          TEXT NOT NULL DEFAULT 'medium',
    created_by        TEXT REFERENCES users (id) ON DELETE SET NULL,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    -- The project's channel (SQLite resolves the forward reference when rows are written).
    channel_id        TEXT REFERENCES conversations (id) ON DELETE SET NULL,
    channel_linked_at TEXT
);
CREATE INDEX projects_group_idx ON projects (group_id);

CREATE TABLE project_members (
    project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       TEXT NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'admin', 'member')),
    joined_at  TEXT NOT NULL,
    PRIMARY KEY (project_id, user_id)
);
CREATE INDEX project_members_user_idx ON project_members (user_id);

CREATE TABLE files (
    id            TEXT PRIMARY KEY,
    owner_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    project_id    TEXT REFERENCES projects (id) ON DELETE SET NULL,
    original_name TEXT NOT NULL,
    stored_name   TEXT NOT NULL,
    storage_key   TEXT NOT NULL,
    size          BIGINT NOT NULL CHECK (size >= 0),
    mime_type     TEXT NOT NULL,
    sniffed_type  TEXT,
    description   TEXT,
    tags          TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(tags)),
    is_public     BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE INDEX files_owner_created_idx ON files (owner_id, created_at);
CREATE INDEX files_project_idx ON files (project_id);

CREATE TABLE conversations (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL CHECK (kind IN ('channel', 'direct', 'group', 'project', 'team')),
    name            TEXT,
    description     TEXT,
    group_id        TEXT REFERENCES groups (id) ON DELETE CASCADE,
    project_id      TEXT REFERENCES projects (id) ON DELETE CASCADE,
    created_by      TEXT REFERENCES users (id) ON DELETE SET NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    last_message_at TEXT,
    is_archived     BOOLEAN NOT NULL DEFAULT FALSE,
    -- Sorted user-id pair of a direct conversation, so a DM between two users is unique.
    dm_key          TEXT UNIQUE,
    metadata        TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata)),
    -- Highest message seq handed out in this conversation (see messages.seq).
    last_seq        BIGINT NOT NULL DEFAULT 0 CHECK (last_seq >= 0)
);
CREATE INDEX conversations_group_idx ON conversations (group_id);
CREATE INDEX conversations_project_idx ON conversations (project_id);

CREATE TABLE messages (
    id              TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    author_id       TEXT REFERENCES users (id) ON DELETE SET NULL,
    -- Per-conversation sequence number, 1, 2, 3, … taken from conversations.last_seq in the same
    -- transaction as the insert; clients resume with "since seq".
    seq             BIGINT NOT NULL CHECK (seq > 0),
    content         TEXT NOT NULL DEFAULT '' CHECK (length(content) <= 10000),
    message_type    TEXT NOT NULL DEFAULT 'text',
    priority        TEXT NOT NULL DEFAULT 'normal',
    reply_to_id     TEXT REFERENCES messages (id) ON DELETE SET NULL,
    thread_root_id  TEXT REFERENCES messages (id) ON DELETE SET NULL,
    mentions        TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(mentions)),
    attachments     TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(attachments)),
    metadata        TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(metadata)),
    created_at      TEXT NOT NULL,
    edited_at       TEXT,
    deleted_at      TEXT,
    CONSTRAINT messages_conversation_seq_key UNIQUE (conversation_id, seq)
);
CREATE INDEX messages_conversation_created_idx ON messages (conversation_id, created_at);
CREATE INDEX messages_author_idx ON messages (author_id);
CREATE INDEX messages_reply_to_idx ON messages (reply_to_id);
CREATE INDEX messages_thread_root_idx ON messages (thread_root_id);

CREATE TABLE conversation_participants (
    conversation_id      TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    user_id              TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role                 TEXT NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'admin', 'member')),
    joined_at            TEXT NOT NULL,
    last_read_at         TEXT,
    last_read_seq        BIGINT,
    last_read_message_id TEXT REFERENCES messages (id) ON DELETE SET NULL,
    is_muted             BOOLEAN NOT NULL DEFAULT FALSE,
    is_pinned            BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (conversation_id, user_id)
);
CREATE INDEX conversation_participants_user_idx ON conversation_participants (user_id);

CREATE TABLE message_reactions (
    message_id TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    reaction   TEXT NOT NULL CHECK (length(reaction) BETWEEN 1 AND 50),
    created_at TEXT NOT NULL,
    PRIMARY KEY (message_id, user_id, reaction)
);

CREATE TABLE dm_receipts (
    message_id TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    read_at    TEXT NOT NULL,
    PRIMARY KEY (message_id, user_id)
);

CREATE TABLE notifications (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind          TEXT NOT NULL,
    title         TEXT NOT NULL,
    message       TEXT NOT NULL DEFAULT '',
    data          TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(data)),
    priority      TEXT NOT NULL DEFAULT 'medium' CHECK (priority IN ('low', 'medium', 'high', 'urgent')),
    is_read       BOOLEAN NOT NULL DEFAULT FALSE,
    read_at       TEXT,
    action_url    TEXT,
    snoozed_until TEXT,
    expires_at    TEXT,
    created_at    TEXT NOT NULL
);
CREATE INDEX notifications_user_read_created_idx ON notifications (user_id, is_read, created_at);

-- Yjs persistence: a snapshot per room plus an append-only log of updates since the snapshot.
CREATE TABLE collab_documents (
    room              TEXT PRIMARY KEY,
    state             BLOB NOT NULL,
    size_bytes        BIGINT NOT NULL DEFAULT 0 CHECK (size_bytes >= 0),
    -- collab_updates.id up to which updates are folded into state (0 = none).
    compacted_through BIGINT NOT NULL DEFAULT 0,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);

CREATE TABLE collab_updates (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    room       TEXT NOT NULL,
    data       BLOB NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX collab_updates_room_id_idx ON collab_updates (room, id);

CREATE TABLE security_events (
    id         TEXT PRIMARY KEY,
    event_type TEXT NOT NULL,
    severity   TEXT NOT NULL DEFAULT 'info',
    user_id    TEXT REFERENCES users (id) ON DELETE SET NULL,
    ip         TEXT,
    user_agent TEXT,
    details    TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(details)),
    created_at TEXT NOT NULL
);
CREATE INDEX security_events_created_idx ON security_events (created_at);
CREATE INDEX security_events_user_idx ON security_events (user_id);

CREATE TABLE ip_blocks (
    ip            TEXT PRIMARY KEY,
    reason        TEXT,
    -- NULL means blocked until removed.
    blocked_until TEXT,
    created_at    TEXT NOT NULL
);
