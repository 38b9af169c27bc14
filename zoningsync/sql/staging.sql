-- Queries of store/staging.py: the staging tables a run's pages land in, what the
-- run reads back from them, and their clearing. $1 is the run id and $2 the feed
-- id wherever both appear.

-- name: staged_page_ids
SELECT page_id FROM zoningsync.staged_pages WHERE run_id = $1;

-- name: record_page
INSERT INTO zoningsync.staged_pages (run_id, page_id, records, premerged)
VALUES ($1, $2, $3, $4);

-- name: pages_to_premerge
SELECT page_id FROM zoningsync.staged_pages WHERE run_id = $1 AND NOT premerged;

-- name: stage_stored_rows
-- A first-load page that stage_page stored in features by COPY: its thin staged
-- rows ($4 keys, $5 object ids) and its history, read back from features.
WITH thin AS (
    INSERT INTO zoningsync.staged_rows
        (run_id, page_id, source_oid, source_key, chunk, source_edited_at, row_hash)
    SELECT $1, $3, u.oid, f.source_key, f.h3, f.source_edited_at, f.row_hash
    FROM unnest($4::text[], $5::bigint[]) AS u(key, oid)
    JOIN zoningsync.features f ON f.feed = $2 AND f.source_key = u.key
    RETURNING source_key, row_hash
)
INSERT INTO zoningsync.feature_history (run_id, op, feed, source_key, new_row_hash)
SELECT $1, 'insert', $2, source_key, row_hash FROM thin;

-- name: add_page_stats
UPDATE zoningsync.runs
SET fetched = fetched + $2, quarantined = quarantined + $3, repaired = repaired + $4,
    requests = requests + $5, retries = retries + $6, bytes = bytes + $7,
    inserted = inserted + $8
WHERE id = $1;

-- name: staged_oids_missing
SELECT oid FROM unnest($2::bigint[]) AS u(oid)
EXCEPT
SELECT source_oid FROM zoningsync.staged_rows WHERE run_id = $1 AND source_oid IS NOT NULL
EXCEPT
SELECT source_oid FROM zoningsync.quarantine WHERE run_id = $1 AND source_oid IS NOT NULL;

-- name: analyze_staging
-- Staging tables are filled and emptied by every run, faster than autovacuum
-- samples them: without fresh statistics the planner took a run's rows for one
-- and joined them in nested loops (1,101 rows: 1.2M comparisons, 230 ms).
-- The plans need row counts, the run's share of the rows and whether keys
-- repeat: a sample of 3,000 rows tells them as well as the default 30,000, and
-- takes 14 ms instead of 75-120 ms of a 100k first load, which waits for it.
-- In a transaction, for SET LOCAL.
SET LOCAL default_statistics_target = 10;
ANALYZE zoningsync.staged_rows (run_id, page_id, source_oid, source_key, chunk),
        zoningsync.staged_keys;

-- name: count_staged
SELECT count(*) FROM zoningsync.staged_rows WHERE run_id = $1;

-- name: clear_retiring
DELETE FROM zoningsync.retiring WHERE run_id = $1;

-- name: staged_high_water_mark
SELECT max(source_edited_at) FROM zoningsync.staged_rows WHERE run_id = $1;

-- name: clear_staged_rows
DELETE FROM zoningsync.staged_rows WHERE run_id = $1;

-- name: other_runs_staged
SELECT EXISTS (SELECT 1 FROM zoningsync.staged_rows WHERE run_id <> $1)
    OR EXISTS (SELECT 1 FROM zoningsync.staged_pages WHERE run_id <> $1)
    OR EXISTS (SELECT 1 FROM zoningsync.staged_keys WHERE run_id <> $1)
    OR EXISTS (SELECT 1 FROM zoningsync.retiring WHERE run_id <> $1);

-- name: lock_staging
LOCK TABLE zoningsync.staged_rows, zoningsync.staged_pages, zoningsync.staged_keys,
    zoningsync.retiring IN ACCESS EXCLUSIVE MODE NOWAIT;

-- name: truncate_staging
TRUNCATE zoningsync.staged_rows, zoningsync.staged_pages, zoningsync.staged_keys,
    zoningsync.retiring;

-- name: clear_staged_pages
DELETE FROM zoningsync.staged_pages WHERE run_id = $1;

-- name: clear_staged_keys
DELETE FROM zoningsync.staged_keys WHERE run_id = $1;
