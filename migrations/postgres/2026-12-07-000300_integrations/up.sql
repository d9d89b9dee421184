-- OAuth integrations (issue 13, OPERATOR §2). Secrets are stored encrypted (`v1:` + base64 of
-- nonce ‖ ciphertext ‖ tag); state tokens only as their SHA-256.

-- One row per authorization in flight; the first callback presenting the state deletes it.
CREATE TABLE oauth_states (
    state_hash        TEXT PRIMARY KEY,
    user_id           TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider          TEXT NOT NULL,
    code_verifier_enc TEXT,
    redirect_uri      TEXT NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL,
    expires_at        TIMESTAMPTZ NOT NULL
);
CREATE INDEX oauth_states_expires_idx ON oauth_states (expires_at);

CREATE TABLE integration_tokens (
    user_id           TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider          TEXT NOT NULL,
    access_token_enc  TEXT NOT NULL,
    refresh_token_enc TEXT,
    token_type        TEXT NOT NULL DEFAULT 'bearer',
    scopes            TEXT NOT NULL DEFAULT '',
    expires_at        TIMESTAMPTZ,
    provider_user_id  TEXT,
    provider_login    TEXT,
    provider_email    TEXT,
    provider_name     TEXT,
    metadata          JSONB NOT NULL DEFAULT '{}',
    status            TEXT NOT NULL DEFAULT 'connected' CHECK (status IN ('connected', 'expired', 'error')),
    last_used_at      TIMESTAMPTZ,
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, provider)
);

CREATE TABLE github_links (
    id                TEXT PRIMARY KEY,
    user_id           TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    project_id        TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    owner             TEXT NOT NULL,
    repo              TEXT NOT NULL,
    full_name         TEXT NOT NULL,
    sync_issues       BOOLEAN NOT NULL DEFAULT TRUE,
    auto_create_tasks BOOLEAN NOT NULL DEFAULT FALSE,
    sync_status       TEXT NOT NULL DEFAULT 'idle' CHECK (sync_status IN ('idle', 'syncing', 'error')),
    last_synced_at    TIMESTAMPTZ,
    last_error        TEXT,
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL,
    UNIQUE (project_id, owner, repo)
);
CREATE INDEX github_links_repo_idx ON github_links (lower(full_name));

CREATE TABLE github_issues (
    link_id     TEXT NOT NULL REFERENCES github_links (id) ON DELETE CASCADE,
    number      BIGINT NOT NULL,
    github_id   BIGINT NOT NULL,
    title       TEXT NOT NULL,
    body        TEXT,
    state       TEXT NOT NULL,
    labels      JSONB NOT NULL DEFAULT '[]',
    assignees   JSONB NOT NULL DEFAULT '[]',
    html_url    TEXT NOT NULL,
    created_at  TEXT,
    updated_at  TEXT,
    closed_at   TEXT,
    synced_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (link_id, number)
);

CREATE TABLE integration_webhooks (
    id          TEXT PRIMARY KEY,
    provider    TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    delivery_id TEXT UNIQUE,
    payload     TEXT NOT NULL CHECK (octet_length(payload) <= 1048576),
    ip          TEXT,
    received_at TIMESTAMPTZ NOT NULL
);
