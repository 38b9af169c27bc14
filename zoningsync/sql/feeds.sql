-- Queries of store/feeds.py: the feeds table, one row per configured feed.

-- name: feed_registration_lock
-- Two daemons registering one new feed at once would otherwise race on the second
-- unique key, (jurisdiction, feed), which `ON CONFLICT (id)` does not arbitrate.
SELECT pg_advisory_xact_lock(hashtext('zoningsync.feeds'), hashtext($1));

-- name: upsert_feed
INSERT INTO zoningsync.feeds AS f (id, jurisdiction, feed, kind, source_type, url, config)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (id) DO UPDATE
SET kind = EXCLUDED.kind, source_type = EXCLUDED.source_type, url = EXCLUDED.url,
    config = EXCLUDED.config, updated_at = now()
WHERE (f.kind, f.source_type, f.url, f.config)
      IS DISTINCT FROM (EXCLUDED.kind, EXCLUDED.source_type, EXCLUDED.url, EXCLUDED.config);

-- name: feed_pause_state
SELECT paused, paused_reason FROM zoningsync.feeds WHERE id = $1;

-- name: mark_feed_success
UPDATE zoningsync.feeds SET last_success_run = $2, last_success_at = now() WHERE id = $1;

-- name: feed_pause_watch
SELECT paused, paused_reason, paused_at FROM zoningsync.feeds WHERE id = $1;

-- name: reread_requested
SELECT reread_requested_at FROM zoningsync.feeds WHERE id = $1;

-- name: clear_reread
-- Only the request the run saw: one made while it planned stays for the next run.
UPDATE zoningsync.feeds SET reread_requested_at = NULL
WHERE id = $1 AND reread_requested_at <= $2;
