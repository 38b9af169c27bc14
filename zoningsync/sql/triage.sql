-- Queries of store/triage.py: quarantine triage (show, resolve, retry).

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
