-- Scheduling state shared by every daemon (store/schedules.py).

-- name: schedule_inputs
-- What the schedule maths needs for each of these feeds.
SELECT f.id AS feed, f.last_success_at, s.last_attempt_at,
       coalesce(s.consecutive_failures, 0) AS consecutive_failures,
       s.claimed_by IS NOT NULL AS claimed
FROM zoningsync.feeds f
LEFT JOIN zoningsync.schedules s ON s.feed = f.id
WHERE f.id = ANY($1::text[]);

-- name: set_due_times
-- Rows for new feeds; new due times for unclaimed ones (a changed schedule).
INSERT INTO zoningsync.schedules AS s (feed, due_at)
SELECT * FROM unnest($1::text[], $2::timestamptz[])
ON CONFLICT (feed) DO UPDATE
SET due_at = EXCLUDED.due_at, updated_at = now()
WHERE s.claimed_by IS NULL AND s.due_at IS DISTINCT FROM EXCLUDED.due_at;

-- name: create_daemon_feeds
-- The feeds this daemon's sources define, held by its scheduler's session so that a
-- tick sends none of them: its cost is the due rows', whatever the feed count.
CREATE TEMP TABLE IF NOT EXISTS zoningsync_daemon_feeds (feed text PRIMARY KEY);

-- name: clear_daemon_feeds
TRUNCATE pg_temp.zoningsync_daemon_feeds;

-- name: fill_daemon_feeds
INSERT INTO pg_temp.zoningsync_daemon_feeds SELECT DISTINCT unnest($1::text[]);

-- name: analyze_daemon_feeds
-- Autovacuum never samples a temporary table: without this the planner guesses its size.
ANALYZE pg_temp.zoningsync_daemon_feeds;

-- name: claim_due
-- Due feeds among this daemon's (zoningsync_daemon_feeds) minus those it runs ($2),
-- not paused, unclaimed or claimed by a node with no session left ($1 is this
-- node), oldest due first. The due_at index finds the due rows; nothing reads the
-- rows of feeds not due.
WITH due AS (
    SELECT s.feed
    FROM zoningsync.schedules s
    JOIN pg_temp.zoningsync_daemon_feeds d ON d.feed = s.feed
    JOIN zoningsync.feeds f ON f.id = s.feed
    WHERE (s.due_at <= now() OR s.run_now_requested_at IS NOT NULL)
      AND s.feed <> ALL($2::text[])
      AND NOT f.paused
      AND (s.claimed_by IS NULL OR s.claimed_by = $1 OR NOT EXISTS (
               SELECT 1 FROM pg_stat_activity a
               WHERE a.application_name = 'zoningsync ' || s.claimed_by))
    ORDER BY s.due_at
    LIMIT $3
    FOR UPDATE OF s SKIP LOCKED
)
UPDATE zoningsync.schedules s
SET claimed_by = $1, claimed_at = now(), last_attempt_at = now(),
    run_now_requested_at = NULL, updated_at = now()
FROM due
WHERE s.feed = due.feed
RETURNING s.feed, s.consecutive_failures, s.last_attempt_at;

-- name: release_claim
-- The run ended: its outcome, failure count and next due time; the claim ends.
UPDATE zoningsync.schedules
SET claimed_by = NULL, due_at = $2, consecutive_failures = $3, last_outcome = $4,
    updated_at = now()
WHERE feed = $1;

-- name: request_run_now
UPDATE zoningsync.schedules SET run_now_requested_at = now(), updated_at = now()
WHERE feed = ANY($1::text[])
RETURNING feed, run_now_requested_at;

-- name: cancel_run_now
UPDATE zoningsync.schedules SET run_now_requested_at = NULL, updated_at = now()
WHERE feed = ANY($1::text[]);

-- name: newest_run
-- The feed's newest run and how often it was resumed: a change means a run began.
SELECT (SELECT claimed_at FROM zoningsync.schedules WHERE feed = $1) AS claimed_at,
       r.id, r.resumed
FROM (SELECT 1) one
LEFT JOIN LATERAL (
    SELECT id, resumed FROM zoningsync.runs WHERE feed = $1 ORDER BY id DESC LIMIT 1
) r ON true;

-- name: feed_states
-- Counts for STATUS= and the zoningsync_feeds gauge, over this daemon's feeds.
SELECT count(*) FILTER (WHERE f.paused) AS paused,
       count(*) FILTER (WHERE NOT f.paused AND s.consecutive_failures > 0) AS failing,
       count(*) FILTER (WHERE NOT f.paused AND (s.due_at <= now()
                                                OR s.run_now_requested_at IS NOT NULL)
                        AND s.claimed_by IS NULL) AS due,
       count(*) FILTER (WHERE NOT f.paused) AS scheduled
FROM zoningsync.feeds f
LEFT JOIN zoningsync.schedules s ON s.feed = f.id
WHERE f.id = ANY($1::text[]);

-- name: feed_status
-- One row per feed the database knows: `zoningsync status`. running_on is the
-- node named by the session holding the feed's lease ($1: the lease namespace).
SELECT f.id AS feed, f.paused, f.paused_reason AS pause_reason,
       substr(holder.application_name, length('zoningsync ') + 1) AS running_on,
       r.id AS run_id, r.status AS run_status, r.finished_at AS run_finished_at,
       r.fetched, r.inserted, r.updated, r.retired, r.unchanged, r.quarantined,
       s.due_at AS next_due,
       CASE WHEN f.paused OR s.due_at IS NULL THEN 0
            ELSE greatest(0, extract(epoch FROM now() - s.due_at)) END::double precision AS lag_s,
       f.last_success_at
FROM zoningsync.feeds f
LEFT JOIN zoningsync.schedules s ON s.feed = f.id
LEFT JOIN LATERAL (
    SELECT * FROM zoningsync.runs WHERE feed = f.id ORDER BY id DESC LIMIT 1
) r ON true
LEFT JOIN LATERAL (
    SELECT a.application_name
    FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE l.locktype = 'advisory' AND l.classid = $1
      AND l.objid = hashtext(f.id)::oid AND l.granted
    LIMIT 1
) holder ON true
ORDER BY f.id;
