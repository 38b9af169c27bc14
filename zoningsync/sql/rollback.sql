-- Queries of store/rollback.py: undo one run from history, in the caller's
-- transaction. Where a query names them all, $1 is the run undone, $2 its feed
-- and $3 the rollback's own run; the undo_* queries take the feed ($1) and the
-- rollback's run ($2).
-- A key's state before the run is its first history row of the run: absent
-- before an 'insert', the row's prior version (every column) before an
-- 'update' or a 'retire'.

-- name: run_to_roll_back
SELECT id, feed, status, mode, phase FROM zoningsync.runs WHERE id = $1;

-- name: later_runs_touching
-- Later runs of the feed, still standing, that changed a feature or case the
-- run changed: undoing the run alone would overwrite their work.
SELECT r.id FROM zoningsync.runs r
WHERE r.feed = $2 AND r.id > $1 AND r.status <> 'rolled_back'
  AND r.mode IS DISTINCT FROM 'rollback'
  AND (EXISTS (SELECT 1 FROM zoningsync.feature_history h
               JOIN zoningsync.feature_history l
                 ON l.feed = h.feed AND l.source_key = h.source_key AND l.run_id = r.id
               WHERE h.run_id = $1)
       OR EXISTS (SELECT 1 FROM zoningsync.case_history h
                  JOIN zoningsync.case_history l
                    ON l.feed = h.feed AND l.case_number = h.case_number AND l.run_id = r.id
                  WHERE h.run_id = $1))
ORDER BY r.id;

-- name: feature_ops
SELECT op, count(*) AS n, (array_agg(source_key ORDER BY source_key))[1:$2] AS sample
FROM (SELECT DISTINCT ON (source_key) source_key, op
      FROM zoningsync.feature_history WHERE run_id = $1
      ORDER BY source_key, id) first_change
GROUP BY op;

-- name: case_ops
SELECT op, count(*) AS n, (array_agg(case_number ORDER BY case_number))[1:$2] AS sample
FROM (SELECT DISTINCT ON (case_number) case_number, op
      FROM zoningsync.case_history WHERE run_id = $1
      ORDER BY case_number, id) first_change
GROUP BY op;

-- name: start_rollback_run
INSERT INTO zoningsync.runs (feed, mode, status, phase, cursor)
VALUES ($1, 'rollback', 'running', 'merge', $2)
RETURNING id;

-- name: create_rollback_scratch
-- Once per rollback transaction; emptied between the runs of a cascade.
CREATE TEMP TABLE rollback_rows (LIKE zoningsync.feature_history) ON COMMIT DROP;
CREATE TEMP TABLE rollback_chunks (chunk text PRIMARY KEY) ON COMMIT DROP;
CREATE TEMP TABLE rollback_checkpoints (
    chunk text PRIMARY KEY, how text NOT NULL, row_count integer, hash bytea, run_id bigint,
    updated_at timestamptz
) ON COMMIT DROP;
CREATE TEMP TABLE rollback_cases (LIKE zoningsync.case_history) ON COMMIT DROP;

-- name: empty_rollback_scratch
TRUNCATE rollback_rows, rollback_chunks, rollback_checkpoints, rollback_cases;

-- name: fill_rollback_rows
INSERT INTO rollback_rows
SELECT DISTINCT ON (source_key) *
FROM zoningsync.feature_history
WHERE run_id = $1
ORDER BY source_key, id;

-- name: analyze_rollback_rows
ANALYZE rollback_rows;

-- name: fill_rollback_chunks
-- Every chunk the run could have changed: those whose checkpoint it replaced,
-- dropped or wrote, those its rows were in before, and those they are in now.
INSERT INTO rollback_chunks
SELECT chunk FROM zoningsync.checkpoint_history WHERE run_id = $1
UNION
SELECT chunk FROM zoningsync.chunk_checkpoints WHERE feed = $2 AND run_id = $1
UNION
SELECT h3 FROM rollback_rows WHERE h3 IS NOT NULL
UNION
SELECT f.h3 FROM zoningsync.features f
JOIN rollback_rows r ON f.feed = $2 AND f.source_key = r.source_key;

-- name: undo_inserts
-- Keys absent before the run: their rows go, with history of what they were.
WITH gone AS (
    DELETE FROM zoningsync.features f
    USING rollback_rows r
    WHERE f.feed = $1 AND f.source_key = r.source_key AND r.op = 'insert'
    RETURNING f.*
), history AS (
    INSERT INTO zoningsync.feature_history
        (run_id, op, feed, source_key, new_row_hash, parcel_id, zoning_code, zoning_desc,
         attrs, geom, h3, row_hash, source_edited_at, first_run, last_run, updated_at, address,
         feature_id, created_at)
    SELECT $2, 'retire', $1, g.source_key, NULL, g.parcel_id, g.zoning_code, g.zoning_desc,
           g.attrs, g.geom, g.h3, g.row_hash, g.source_edited_at, g.first_run, g.last_run,
           g.updated_at, g.address, g.id, g.created_at
    FROM gone g
    RETURNING 1
)
SELECT count(*) FROM history;

-- name: undo_updates
-- Keys stored before the run and stored now: every column back to its prior
-- version, with history holding the version replaced.
WITH old AS (
    SELECT f.* FROM zoningsync.features f
    JOIN rollback_rows r ON f.feed = $1 AND f.source_key = r.source_key AND r.op <> 'insert'
), reverted AS (
    UPDATE zoningsync.features f
    SET parcel_id = r.parcel_id, zoning_code = r.zoning_code, zoning_desc = r.zoning_desc,
        attrs = r.attrs, geom = r.geom, h3 = r.h3, row_hash = r.row_hash,
        source_edited_at = r.source_edited_at, first_run = r.first_run,
        last_run = r.last_run, updated_at = r.updated_at, address = r.address
    FROM rollback_rows r
    WHERE f.feed = $1 AND f.source_key = r.source_key AND r.op <> 'insert'
    RETURNING f.source_key, f.row_hash
), history AS (
    INSERT INTO zoningsync.feature_history
        (run_id, op, feed, source_key, new_row_hash, parcel_id, zoning_code, zoning_desc,
         attrs, geom, h3, row_hash, source_edited_at, first_run, last_run, updated_at, address)
    SELECT $2, 'update', $1, o.source_key, v.row_hash, o.parcel_id, o.zoning_code,
           o.zoning_desc, o.attrs, o.geom, o.h3, o.row_hash, o.source_edited_at,
           o.first_run, o.last_run, o.updated_at, o.address
    FROM old o JOIN reverted v ON v.source_key = o.source_key
    RETURNING 1
)
SELECT count(*) FROM history;

-- name: undo_retirements
-- Keys stored before the run and gone now: the same row again, id included.
WITH restored AS (
    INSERT INTO zoningsync.features
        (id, feed, source_key, jurisdiction, kind, parcel_id, zoning_code, zoning_desc, attrs,
         geom, h3, row_hash, source_edited_at, first_run, last_run, created_at, updated_at,
         address)
    OVERRIDING SYSTEM VALUE
    SELECT coalesce(r.feature_id, nextval(pg_get_serial_sequence('zoningsync.features', 'id'))),
           $1, r.source_key, fd.jurisdiction, fd.kind, r.parcel_id, r.zoning_code,
           r.zoning_desc, r.attrs, r.geom, r.h3, r.row_hash, r.source_edited_at, r.first_run,
           r.last_run, coalesce(r.created_at, r.updated_at), r.updated_at, r.address
    FROM rollback_rows r
    JOIN zoningsync.feeds fd ON fd.id = $1
    WHERE r.op <> 'insert'
      AND NOT EXISTS (SELECT 1 FROM zoningsync.features f
                      WHERE f.feed = $1 AND f.source_key = r.source_key)
    RETURNING source_key, row_hash
), history AS (
    INSERT INTO zoningsync.feature_history (run_id, op, feed, source_key, new_row_hash)
    SELECT $2, 'insert', $1, source_key, row_hash FROM restored
    RETURNING 1
)
SELECT count(*) FROM history;

-- name: plan_rollback_checkpoints
-- Per chunk, once its rows are restored: the checkpoint the run replaced when it
-- hashes to the restored rows (exact: its run and time too); none when the run
-- wrote the first one, or the chunk is empty now; else the restored rows' hash,
-- unless the current checkpoint already is it.
INSERT INTO rollback_checkpoints (chunk, how, row_count, hash, run_id, updated_at)
WITH derived AS (
    SELECT f.h3 AS chunk, sha256(string_agg(f.row_hash, ''::bytea ORDER BY f.row_hash)) AS hash,
           count(*)::integer AS row_count
    FROM zoningsync.features f
    JOIN rollback_chunks c ON c.chunk = f.h3
    WHERE f.feed = $2
    GROUP BY f.h3
), prior AS (
    SELECT DISTINCT ON (chunk) chunk, hash, row_count, prior_run_id, updated_at
    FROM zoningsync.checkpoint_history
    WHERE run_id = $1 AND feed = $2
    ORDER BY chunk, id
)
SELECT c.chunk,
       CASE WHEN d.hash IS NULL THEN 'drop'
            WHEN p.hash = d.hash THEN 'prior'
            WHEN p.chunk IS NULL AND cp.run_id = $1 THEN 'drop'
            WHEN cp.hash = d.hash THEN 'keep'
            ELSE 'derive' END AS how,
       CASE WHEN p.hash = d.hash THEN p.row_count ELSE d.row_count END AS row_count,
       d.hash,
       CASE WHEN p.hash = d.hash THEN p.prior_run_id ELSE $3 END AS run_id,
       CASE WHEN p.hash = d.hash THEN p.updated_at ELSE now() END AS updated_at
FROM rollback_chunks c
LEFT JOIN derived d ON d.chunk = c.chunk
LEFT JOIN prior p ON p.chunk = c.chunk
LEFT JOIN zoningsync.chunk_checkpoints cp ON cp.feed = $2 AND cp.chunk = c.chunk;

-- name: drop_rollback_checkpoints
WITH gone AS (
    DELETE FROM zoningsync.chunk_checkpoints cp
    USING rollback_checkpoints r
    WHERE cp.feed = $1 AND cp.chunk = r.chunk AND r.how = 'drop'
    RETURNING 1
)
SELECT count(*) FROM gone;

-- name: restore_rollback_checkpoints
WITH saved AS (
    INSERT INTO zoningsync.chunk_checkpoints AS cp (feed, chunk, hash, row_count, run_id, updated_at)
    SELECT $1, r.chunk, r.hash, r.row_count, r.run_id, r.updated_at
    FROM rollback_checkpoints r
    WHERE r.how IN ('prior', 'derive')
    ON CONFLICT (feed, chunk) DO UPDATE
    SET hash = EXCLUDED.hash, row_count = EXCLUDED.row_count, run_id = EXCLUDED.run_id,
        updated_at = EXCLUDED.updated_at
    RETURNING 1
)
SELECT count(*) FROM saved;

-- name: fill_rollback_cases
INSERT INTO rollback_cases
SELECT DISTINCT ON (case_number) *
FROM zoningsync.case_history
WHERE run_id = $1
ORDER BY case_number, id;

-- name: rollback_inserted_cases
SELECT case_number FROM rollback_cases WHERE op = 'insert';

-- name: undo_case_updates
WITH old AS (
    SELECT c.* FROM zoningsync.cases c
    JOIN rollback_cases r ON c.feed = $1 AND c.case_number = r.case_number AND r.op <> 'insert'
), reverted AS (
    UPDATE zoningsync.cases c
    SET jurisdiction = r.jurisdiction, title = r.title, case_type = r.case_type,
        status = r.status, status_class = r.status_class, filed_at = r.filed_at,
        hearing_at = r.hearing_at, decided_at = r.decided_at, from_zoning = r.from_zoning,
        to_zoning = r.to_zoning, acreage = r.acreage, address = r.address,
        applicant = r.applicant, parcel_ids = r.parcel_ids, detail_url = r.detail_url,
        document_url = r.document_url, document_sha256 = r.document_sha256,
        pages = r.pages, attrs = r.attrs, row_hash = r.row_hash, first_run = r.first_run,
        last_run = r.last_run, created_at = r.created_at, updated_at = r.updated_at
    FROM rollback_cases r
    WHERE c.feed = $1 AND c.case_number = r.case_number AND r.op <> 'insert'
    RETURNING c.case_number, c.row_hash
), history AS (
    INSERT INTO zoningsync.case_history
        (run_id, op, feed, case_number, new_row_hash, case_id, jurisdiction, title, case_type,
         status, status_class, filed_at, hearing_at, decided_at, from_zoning, to_zoning,
         acreage, address, applicant, parcel_ids, detail_url, document_url, document_sha256,
         pages, attrs, row_hash, first_run, last_run, created_at, updated_at)
    SELECT $2, 'update', $1, o.case_number, v.row_hash, o.id, o.jurisdiction, o.title,
           o.case_type, o.status, o.status_class, o.filed_at, o.hearing_at, o.decided_at,
           o.from_zoning, o.to_zoning, o.acreage, o.address, o.applicant, o.parcel_ids,
           o.detail_url, o.document_url, o.document_sha256, o.pages, o.attrs, o.row_hash,
           o.first_run, o.last_run, o.created_at, o.updated_at
    FROM old o JOIN reverted v ON v.case_number = o.case_number
    RETURNING 1
)
SELECT count(*) FROM history;

-- name: undo_case_retirements
WITH restored AS (
    INSERT INTO zoningsync.cases
        (id, feed, jurisdiction, case_number, title, case_type, status, status_class,
         filed_at, hearing_at, decided_at, from_zoning, to_zoning, acreage, address,
         applicant, parcel_ids, detail_url, document_url, document_sha256, pages, attrs,
         row_hash, first_run, last_run, created_at, updated_at)
    OVERRIDING SYSTEM VALUE
    SELECT coalesce(r.case_id, nextval(pg_get_serial_sequence('zoningsync.cases', 'id'))),
           $1, r.jurisdiction, r.case_number, r.title, r.case_type, r.status,
           r.status_class, r.filed_at, r.hearing_at, r.decided_at, r.from_zoning,
           r.to_zoning, r.acreage, r.address, r.applicant, r.parcel_ids, r.detail_url,
           r.document_url, r.document_sha256, r.pages, r.attrs, r.row_hash, r.first_run,
           r.last_run, r.created_at, r.updated_at
    FROM rollback_cases r
    WHERE r.op <> 'insert'
      AND NOT EXISTS (SELECT 1 FROM zoningsync.cases c
                      WHERE c.feed = $1 AND c.case_number = r.case_number)
    RETURNING case_number, row_hash
), history AS (
    INSERT INTO zoningsync.case_history (run_id, op, feed, case_number, new_row_hash)
    SELECT $2, 'insert', $1, case_number, row_hash FROM restored
    RETURNING 1
)
SELECT count(*) FROM history;

-- name: mark_zoning_changes_rolled_back
UPDATE zoningsync.zoning_changes SET rolled_back_by = $2
WHERE run_id = $1 AND rolled_back_by IS NULL;

-- name: mark_run_rolled_back
UPDATE zoningsync.runs
SET status = 'rolled_back', phase = 'done', finished_at = coalesce(finished_at, now())
WHERE id = $1;

-- name: finish_rollback_run
UPDATE zoningsync.runs
SET status = 'succeeded', phase = 'done', finished_at = now(), inserted = $2, updated = $3,
    retired = $4, chunks_written = $5, seconds = extract(epoch FROM now() - started_at)
WHERE id = $1;

-- name: reset_feed_success
-- The feed's last success is again the newest run that still stands.
UPDATE zoningsync.feeds f
SET (last_success_run, last_success_at) = (
    SELECT max(r.id), max(r.finished_at) FILTER (WHERE r.id = (
               SELECT max(id) FROM zoningsync.runs
               WHERE feed = $1 AND status = 'succeeded' AND mode IS DISTINCT FROM 'rollback'))
    FROM zoningsync.runs r
    WHERE r.feed = $1 AND r.status = 'succeeded' AND r.mode IS DISTINCT FROM 'rollback')
WHERE f.id = $1;
