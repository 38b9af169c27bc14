-- Queries of the admin commands: pause and resume, the audit log, quarantine
-- triage. The rollback's own queries are in rollback.sql.

-- name: feeds_of_target
-- $1 is a feed id (jurisdiction/feed) or a jurisdiction id.
SELECT id, paused, paused_reason FROM zoningsync.feeds
WHERE id = $1 OR jurisdiction = $1
ORDER BY id;

-- name: pause_feeds
UPDATE zoningsync.feeds
SET paused = true, paused_reason = $2, paused_at = now(), updated_at = now()
WHERE id = ANY($1::text[]);

-- name: resume_feeds
UPDATE zoningsync.feeds
SET paused = false, paused_reason = NULL, paused_at = NULL, updated_at = now()
WHERE id = ANY($1::text[]);

-- name: notify_control
SELECT pg_notify('zoningsync_control', $1);

-- name: record_action
INSERT INTO zoningsync.admin_actions
    (action, target, reason, outcome, detail, os_user, hostname, run_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
RETURNING id;

-- name: list_actions
SELECT id, at, action, target, reason, outcome, detail, os_user, hostname,
       host(client_addr) AS client_addr, db_user, run_id
FROM zoningsync.admin_actions
WHERE ($1::text IS NULL OR target = $1)
ORDER BY id DESC
LIMIT $2;

-- name: quarantine_row
SELECT q.id, q.feed, q.run_id, q.source_key, q.source_oid, q.reason, q.detail, q.raw,
       q.created_at, q.resolved_by, a.reason AS resolution_note, a.at AS resolved_at
FROM zoningsync.quarantine q
LEFT JOIN zoningsync.admin_actions a ON a.id = q.resolved_by
WHERE q.id = $1;

-- name: lock_open_quarantine_row
SELECT true FROM zoningsync.quarantine WHERE id = $1 AND resolved_by IS NULL FOR UPDATE;

-- name: resolve_quarantine
UPDATE zoningsync.quarantine SET resolved_by = $2 WHERE id = $1;

-- name: feeds_with_open_quarantine
-- The feeds ($1 one of them, or all) with quarantined records nobody resolved.
SELECT DISTINCT q.feed FROM zoningsync.quarantine q
WHERE ($1::text IS NULL OR q.feed = $1) AND q.resolved_by IS NULL
ORDER BY q.feed;

-- name: request_reread
UPDATE zoningsync.feeds SET reread_requested_at = now() WHERE id = ANY($1::text[]);

-- name: forget_quarantined_documents
-- A case feed's quarantined documents lose their conditional-GET state, so the
-- next run fetches and parses them again instead of carrying them forward.
UPDATE zoningsync.documents
SET etag = NULL, last_modified = NULL, sha256 = NULL
WHERE feed = ANY($1::text[]) AND quarantine_id IS NOT NULL;
