DROP INDEX security_events_ip_idx;
DROP INDEX security_events_type_idx;
DROP TABLE ip_allowlist;
ALTER TABLE refresh_tokens DROP COLUMN revocation_reason;
ALTER TABLE refresh_tokens DROP COLUMN revoked_by;
ALTER TABLE ip_blocks DROP COLUMN blocked_by;
