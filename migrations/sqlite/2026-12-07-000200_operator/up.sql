-- Operator surface (issue 14): who blocked an address, who revoked a session and why, and the
-- addresses that may never be blocked.
ALTER TABLE ip_blocks ADD COLUMN blocked_by TEXT;
ALTER TABLE refresh_tokens ADD COLUMN revoked_by TEXT;
ALTER TABLE refresh_tokens ADD COLUMN revocation_reason TEXT;
CREATE TABLE ip_allowlist (
    ip         TEXT PRIMARY KEY,
    reason     TEXT,
    -- NULL means allowed until removed.
    until      TEXT,
    created_by TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX security_events_type_idx ON security_events (event_type);
CREATE INDEX security_events_ip_idx ON security_events (ip);
