-- Queries of store/runs.py: the runs table, from a run's start to its end, and the
-- listings of runs and quarantine. $1 is the run id wherever a run is updated.

-- name: interrupted_run
-- The feed's newest run, if it stopped before finishing (killed, cancelled, or
-- failed on a fault that may pass): the next sync resumes it. A run stopped
-- while planning has no plan and nothing staged: the next sync supersedes it.
SELECT id, mode, phase, cursor, fingerprint, started_at
FROM zoningsync.runs
WHERE feed = $1 AND phase NOT IN ('done', 'plan')
  AND status IN ('running', 'failed', 'cancelled')
  AND id = (SELECT max(id) FROM zoningsync.runs WHERE feed = $1);

-- name: abandon_older_runs
WITH abandoned AS (
    UPDATE zoningsync.runs
    SET status = CASE WHEN status = 'running' THEN 'failed' ELSE status END,
        finished_at = coalesce(finished_at, now()), phase = 'done',
        error = coalesce(error, 'interrupted') || '; superseded by run ' || $2
    WHERE feed = $1 AND phase <> 'done' AND id <> $2
    RETURNING id
)
SELECT id FROM abandoned;

-- name: abandon_stale_runs
-- A run left unfinished longer than $1 (its feed removed from the sources, paused,
-- or failing ever since) would keep its staging forever, and a partial read that
-- old is not worth resuming. A run whose feed lease ($2, hashtext(feed)) is held
-- by a live session other than ours (backend $3) is still going: left alone.
UPDATE zoningsync.runs r
SET status = CASE WHEN r.status = 'running' THEN 'failed' ELSE r.status END,
    finished_at = coalesce(r.finished_at, now()), phase = 'done',
    error = coalesce(r.error, 'interrupted') || '; abandoned: unfinished for over '
            || $1::interval::text
WHERE r.phase <> 'done' AND r.started_at < now() - $1::interval
  AND NOT EXISTS (SELECT 1 FROM pg_locks l
                  WHERE l.locktype = 'advisory' AND l.classid = $2
                    AND l.objid = hashtext(r.feed)::oid AND l.granted
                    AND l.pid <> $3)
RETURNING r.id;

-- name: resume_run
UPDATE zoningsync.runs SET resumed = resumed + 1, status = 'running', error = NULL
WHERE id = $1;

-- name: fail_run
-- A run stopped while planning has nothing to resume: it is done.
UPDATE zoningsync.runs
SET status = $2, error = $3, finished_at = now(), seconds = seconds + $4,
    phase = CASE WHEN phase = 'plan' THEN 'done' ELSE phase END
WHERE id = $1;

-- name: close_run
UPDATE zoningsync.runs
SET status = $2, error = $3, finished_at = now(), seconds = seconds + $4, phase = 'done'
WHERE id = $1;

-- name: start_run
-- Before its plan: the mode is set when the plan decides it (save_plan).
INSERT INTO zoningsync.runs (feed, mode, phase, fingerprint)
VALUES ($1, NULL, 'plan', $2)
RETURNING id;

-- name: last_success
SELECT id, mode, high_water_mark, layer_count, oid_set_hash, fingerprint, finished_at,
       started_at
FROM zoningsync.runs
WHERE feed = $1 AND status = 'succeeded' AND mode IS DISTINCT FROM 'rollback'
ORDER BY id DESC
LIMIT 1;

-- name: runs_since_full
SELECT count(*)
FROM zoningsync.runs
WHERE feed = $1 AND status = 'succeeded' AND mode IS DISTINCT FROM 'rollback'
  AND id > coalesce((SELECT max(id) FROM zoningsync.runs
                     WHERE feed = $1 AND status = 'succeeded' AND mode = 'full'), 0);

-- name: save_plan
UPDATE zoningsync.runs
SET mode = $2, cursor = $3, expected = $4, layer_count = $5, phase = 'fetch'
WHERE id = $1;

-- name: save_cursor
UPDATE zoningsync.runs SET cursor = $2 WHERE id = $1;

-- name: set_phase
UPDATE zoningsync.runs SET phase = $2 WHERE id = $1;

-- name: add_fetch_stats
UPDATE zoningsync.runs
SET requests = requests + $2, retries = retries + $3, bytes = bytes + $4
WHERE id = $1;

-- name: finish_run
UPDATE zoningsync.runs
SET status = $2, error = $3, finished_at = now(), phase = 'done',
    high_water_mark = $4, oid_set_hash = $5, seconds = seconds + $6,
    unchanged = greatest(0, $7 - inserted - updated),
    chunks_skipped = greatest(0, chunks_total - chunks_written),
    warnings = $8
WHERE id = $1;

-- name: run_by_id
SELECT * FROM zoningsync.runs WHERE id = $1;

-- name: list_runs
SELECT * FROM zoningsync.runs
WHERE ($1::text IS NULL OR feed = $1)
ORDER BY id DESC
LIMIT $2;

-- name: list_quarantine
-- Without $2 (--all): records nobody resolved, of each feed's latest finished
-- run (a rollback reads nothing: the run before it), and the documents still
-- quarantined, whichever run quarantined their unchanged content.
SELECT q.id, q.feed, q.run_id, q.source_key, q.source_oid, q.reason, q.detail, q.raw,
       q.created_at, q.resolved_by
FROM zoningsync.quarantine q
WHERE ($1::text IS NULL OR q.feed = $1)
  AND ($2::boolean OR q.resolved_by IS NULL AND (
       q.run_id = (SELECT max(r.id) FROM zoningsync.runs r
                   WHERE r.feed = q.feed AND r.status <> 'running'
                     AND r.mode IS DISTINCT FROM 'rollback')
       OR EXISTS (SELECT 1 FROM zoningsync.documents d WHERE d.quarantine_id = q.id)))
ORDER BY q.id
LIMIT $3;
