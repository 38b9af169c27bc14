-- Queries of store/control.py: pausing and resuming feeds, and telling the runs.

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
