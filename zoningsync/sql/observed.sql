-- What the metrics read from the store: a run's counts at the edges of an
-- attempt, a feed's last success, and the health check's question. Each is one
-- statement per run (or per check), never per record.

-- name: run_counts
SELECT status, inserted, updated, retired FROM zoningsync.runs WHERE id = $1;

-- name: run_quarantine_by_reason
-- quarantine_feed_run_idx (feed, run_id) answers it.
SELECT reason, count(*) AS records
FROM zoningsync.quarantine
WHERE feed = $1 AND run_id = $2
GROUP BY reason;

-- name: feed_last_success_at
SELECT extract(epoch FROM last_success_at)::double precision
FROM zoningsync.feeds WHERE id = $1;

-- name: ping
SELECT 1;
