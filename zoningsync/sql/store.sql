-- Queries of zoningsync.store: feeds, runs, staging and the per-chunk merge.
-- $1 is the run id and $2 the feed id wherever both appear.

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

-- name: add_duplicates
UPDATE zoningsync.runs
SET duplicates = duplicates + $2, quarantined = quarantined + $2, fetched = fetched - $3
WHERE id = $1;

-- name: set_phase
UPDATE zoningsync.runs SET phase = $2 WHERE id = $1;

-- name: staged_page_ids
SELECT page_id FROM zoningsync.staged_pages WHERE run_id = $1;

-- name: record_page
INSERT INTO zoningsync.staged_pages (run_id, page_id, records, premerged)
VALUES ($1, $2, $3, $4);

-- name: pages_to_premerge
SELECT page_id FROM zoningsync.staged_pages WHERE run_id = $1 AND NOT premerged;

-- name: feed_has_features
SELECT EXISTS (SELECT 1 FROM zoningsync.features WHERE feed = $1);

-- name: premerge_page
-- A first load stores each page in features by COPY as it stages it (stage_page
-- in store/staging.py), so the database works while the client fetches and the
-- chunk merge then finds the rows stored and only writes checkpoints. A page
-- whose COPY met a key the run had stored already stages full rows and is stored
-- here instead, row by row: a key seen twice in the run so far is left to the
-- dedupe, which quarantines every copy and takes back the copy already stored
-- (unstore_duplicate_keys).
WITH inserted AS (
    INSERT INTO zoningsync.features AS f
        (feed, source_key, jurisdiction, kind, parcel_id, zoning_code, zoning_desc, attrs,
         geom, h3, row_hash, source_edited_at, first_run, last_run, address)
    SELECT $2, s.source_key, $4, $5, s.parcel_id, s.zoning_code, s.zoning_desc, s.attrs,
           ST_GeomFromWKB(s.wkb, 4326), s.chunk, s.row_hash, s.source_edited_at, $1, $1,
           s.address
    FROM zoningsync.staged_rows s
    WHERE s.run_id = $1 AND s.page_id = $3
      AND NOT EXISTS (SELECT 1 FROM zoningsync.staged_rows twin
                      WHERE twin.run_id = $1 AND twin.source_key = s.source_key
                        AND twin.ctid <> s.ctid)
    ON CONFLICT (feed, source_key) DO NOTHING
    RETURNING f.source_key, f.row_hash
), history AS (
    INSERT INTO zoningsync.feature_history (run_id, op, feed, source_key, new_row_hash)
    SELECT $1, 'insert', $2, source_key, row_hash FROM inserted
    RETURNING 1
), ledger AS (
    UPDATE zoningsync.staged_pages SET premerged = true WHERE run_id = $1 AND page_id = $3
)
UPDATE zoningsync.runs SET inserted = inserted + (SELECT count(*) FROM history)
WHERE id = $1;

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

-- name: add_fetch_stats
UPDATE zoningsync.runs
SET requests = requests + $2, retries = retries + $3, bytes = bytes + $4
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

-- name: drop_refetched_rows
WITH doubles AS (
    DELETE FROM zoningsync.staged_rows s
    USING zoningsync.staged_rows t
    WHERE s.run_id = $1 AND t.run_id = $1 AND s.source_oid = t.source_oid
      AND s.ctid > t.ctid
    RETURNING 1
)
SELECT count(*) FROM doubles;

-- name: quarantine_duplicate_keys
-- A thin staged row (its page stored in features by COPY) leaves its content to
-- the features row its page stored: the quarantine shows that.
WITH dup AS (
    DELETE FROM zoningsync.staged_rows s
    WHERE s.run_id = $1 AND s.source_key IN (
        SELECT source_key FROM zoningsync.staged_rows
        WHERE run_id = $1 GROUP BY source_key HAVING count(*) > 1)
    RETURNING s.*
), moved AS (
    INSERT INTO zoningsync.quarantine (feed, run_id, source_key, source_oid, reason, detail, raw)
    SELECT $2, $1, d.source_key, d.source_oid, 'duplicate_key',
           'key ' || d.source_key || ' is shared by '
               || count(*) OVER (PARTITION BY d.source_key) || ' upstream records',
           CASE WHEN d.wkb IS NOT NULL THEN jsonb_build_object(
               'parcel_id', d.parcel_id, 'zoning_code', d.zoning_code,
               'zoning_desc', d.zoning_desc, 'address', d.address, 'attributes', d.attrs,
               'geometry', ST_AsGeoJSON(ST_GeomFromWKB(d.wkb, 4326))::jsonb)
           ELSE jsonb_build_object(
               'parcel_id', f.parcel_id, 'zoning_code', f.zoning_code,
               'zoning_desc', f.zoning_desc, 'address', f.address, 'attributes', f.attrs,
               'geometry', ST_AsGeoJSON(f.geom)::jsonb) END
    FROM dup d
    LEFT JOIN zoningsync.features f
        ON d.wkb IS NULL AND f.feed = $2 AND f.source_key = d.source_key
           AND f.row_hash = d.row_hash
    RETURNING 1
)
SELECT count(*) FROM moved;

-- name: unstore_duplicate_keys
-- A first load stored each page as it came (stage_stored_rows, premerge_page), so
-- the first copy of a key that later proved duplicated is in features. It never
-- was the feed's row: its features row and insert history go, as if the page had
-- not stored it, rather than being retired with history of a feature that never
-- was. Only rows of this run ($1), whose keys this run quarantined as duplicates.
WITH gone AS (
    DELETE FROM zoningsync.features f
    WHERE f.feed = $2 AND f.first_run = $1 AND f.source_key IN (
        SELECT source_key FROM zoningsync.quarantine
        WHERE feed = $2 AND run_id = $1 AND reason = 'duplicate_key')
    RETURNING f.source_key
), unwritten AS (
    DELETE FROM zoningsync.feature_history h
    USING gone g
    WHERE h.run_id = $1 AND h.feed = $2 AND h.op = 'insert' AND h.source_key = g.source_key
)
UPDATE zoningsync.runs SET inserted = inserted - (SELECT count(*) FROM gone)
WHERE id = $1;

-- name: count_staged
SELECT count(*) FROM zoningsync.staged_rows WHERE run_id = $1;

-- name: count_retiring
SELECT count(*) FROM zoningsync.retiring WHERE run_id = $1;

-- name: count_feed_features
SELECT count(*) FROM zoningsync.features WHERE feed = $1;

-- name: clear_retiring
DELETE FROM zoningsync.retiring WHERE run_id = $1;

-- name: retire_absent_from_staging
INSERT INTO zoningsync.retiring (run_id, source_key)
SELECT $1::bigint, f.source_key
FROM zoningsync.features f
WHERE f.feed = $2
  AND NOT EXISTS (SELECT 1 FROM zoningsync.staged_rows s
                  WHERE s.run_id = $1 AND s.source_key = f.source_key)
ON CONFLICT DO NOTHING;

-- name: retire_absent_from_keys
INSERT INTO zoningsync.retiring (run_id, source_key)
SELECT $1::bigint, f.source_key
FROM zoningsync.features f
WHERE f.feed = $2
  AND NOT EXISTS (SELECT 1 FROM zoningsync.staged_keys k
                  WHERE k.run_id = $1 AND k.source_key = f.source_key)
ON CONFLICT DO NOTHING;

-- name: retire_duplicated_keys
INSERT INTO zoningsync.retiring (run_id, source_key)
SELECT $1::bigint, k.source_key
FROM zoningsync.staged_keys k
JOIN zoningsync.features f ON f.feed = $2 AND f.source_key = k.source_key
WHERE k.run_id = $1
GROUP BY k.source_key
HAVING count(*) > 1
ON CONFLICT DO NOTHING;

-- name: retire_quarantined
INSERT INTO zoningsync.retiring (run_id, source_key)
SELECT DISTINCT $1::bigint, q.source_key
FROM zoningsync.quarantine q
JOIN zoningsync.features f ON f.feed = $2 AND f.source_key = q.source_key
WHERE q.run_id = $1
  AND NOT EXISTS (SELECT 1 FROM zoningsync.staged_rows s
                  WHERE s.run_id = $1 AND s.source_key = q.source_key)
ON CONFLICT DO NOTHING;

-- name: candidate_chunks
SELECT chunk FROM zoningsync.staged_rows WHERE run_id = $1
UNION
SELECT f.h3 FROM zoningsync.features f
JOIN zoningsync.retiring r ON r.run_id = $1 AND r.source_key = f.source_key
WHERE f.feed = $2
UNION
SELECT f.h3 FROM zoningsync.features f
JOIN zoningsync.staged_rows s ON s.run_id = $1 AND s.source_key = f.source_key
WHERE f.feed = $2 AND f.h3 <> s.chunk
UNION
SELECT chunk FROM zoningsync.chunk_checkpoints WHERE feed = $2 AND $3::boolean;

-- name: first_load_stored_as_staged
-- Thin staged rows were written with the features rows they stand for, in one
-- transaction, into a feed that stored nothing before the run: when every staged
-- row is thin and the counts agree, the feed's features are the staged rows.
SELECT NOT EXISTS (SELECT 1 FROM zoningsync.staged_rows
                   WHERE run_id = $1 AND wkb IS NOT NULL)
   AND (SELECT count(*) FROM zoningsync.staged_rows WHERE run_id = $1)
     = (SELECT count(*) FROM zoningsync.features WHERE feed = $2);

-- name: checkpoint_staged_chunks
-- Every chunk of the feed from its staged rows, as chunk_states hashes them
-- (after drop_feed_checkpoints, in its transaction).
WITH saved AS (
    INSERT INTO zoningsync.chunk_checkpoints (feed, chunk, hash, row_count, run_id)
    SELECT $2, s.chunk, sha256(string_agg(s.row_hash, ''::bytea ORDER BY s.row_hash)),
           count(*)::integer, $1
    FROM zoningsync.staged_rows s
    WHERE s.run_id = $1
    GROUP BY s.chunk
    RETURNING 1
)
SELECT count(*) FROM saved;

-- name: drop_feed_checkpoints
-- $1 the first load replacing them (a feed without features has none, usually).
WITH gone AS (
    DELETE FROM zoningsync.chunk_checkpoints WHERE feed = $2 RETURNING *
)
INSERT INTO zoningsync.checkpoint_history
    (run_id, feed, chunk, hash, row_count, prior_run_id, updated_at)
SELECT $1, feed, chunk, hash, row_count, run_id, updated_at FROM gone WHERE run_id <> $1;

-- name: chunk_states
WITH content AS (
    SELECT s.chunk, s.row_hash
    FROM zoningsync.staged_rows s
    WHERE s.run_id = $1 AND s.chunk = ANY($3::text[])
    UNION ALL
    SELECT f.h3, f.row_hash
    FROM zoningsync.features f
    WHERE f.feed = $2 AND f.h3 = ANY($3::text[])
      AND NOT EXISTS (SELECT 1 FROM zoningsync.staged_rows s
                      WHERE s.run_id = $1 AND s.source_key = f.source_key)
      AND NOT EXISTS (SELECT 1 FROM zoningsync.retiring r
                      WHERE r.run_id = $1 AND r.source_key = f.source_key)
), hashed AS (
    SELECT chunk, sha256(string_agg(row_hash, ''::bytea ORDER BY row_hash)) AS hash,
           count(*)::integer AS row_count
    FROM content
    GROUP BY chunk
), stored AS (
    -- Asked for ($4) after a first load stored its pages while fetching: a chunk
    -- whose stored rows already are its new content needs only its checkpoint.
    SELECT f.h3 AS chunk, sha256(string_agg(f.row_hash, ''::bytea ORDER BY f.row_hash)) AS hash
    FROM zoningsync.features f
    WHERE $4::boolean AND f.feed = $2 AND f.h3 = ANY($3::text[])
    GROUP BY f.h3
)
SELECT c.chunk, h.hash, coalesce(h.row_count, 0) AS row_count, cp.hash AS checkpoint,
       st.hash AS stored
FROM unnest($3::text[]) AS c(chunk)
LEFT JOIN hashed h ON h.chunk = c.chunk
LEFT JOIN stored st ON st.chunk = c.chunk
LEFT JOIN zoningsync.chunk_checkpoints cp ON cp.feed = $2 AND cp.chunk = c.chunk;

-- name: merge_upsert
-- Upsert the staged rows of the given chunks; record history for every insert and
-- update (with the replaced version) and a zoning-change event when the code moved.
-- A row whose content is unchanged but whose chunk is not (h3_resolution changed)
-- is moved without history: its content did not change.
-- All sub-statements see the same snapshot, so `old` holds the versions replaced.
WITH src AS (
    -- Rows stored already as staged (a first load's premerged pages, an
    -- incremental run's overlap) would be no-ops below; leave them out early.
    SELECT s.* FROM zoningsync.staged_rows s
    WHERE s.run_id = $1 AND s.chunk = ANY($3::text[])
      AND NOT EXISTS (SELECT 1 FROM zoningsync.features f
                      WHERE f.feed = $2 AND f.source_key = s.source_key
                        AND f.row_hash = s.row_hash AND f.h3 = s.chunk)
), old AS (
    SELECT f.*
    FROM zoningsync.features f
    JOIN src s ON f.feed = $2 AND f.source_key = s.source_key
    WHERE f.row_hash <> s.row_hash
), upserted AS (
    INSERT INTO zoningsync.features AS f
        (feed, source_key, jurisdiction, kind, parcel_id, zoning_code, zoning_desc, attrs,
         geom, h3, row_hash, source_edited_at, first_run, last_run, address)
    SELECT $2, s.source_key, $4, $5, s.parcel_id, s.zoning_code, s.zoning_desc, s.attrs,
           ST_GeomFromWKB(s.wkb, 4326), s.chunk, s.row_hash, s.source_edited_at, $1, $1,
           s.address
    FROM src s
    ON CONFLICT (feed, source_key) DO UPDATE
    SET parcel_id = EXCLUDED.parcel_id, zoning_code = EXCLUDED.zoning_code,
        zoning_desc = EXCLUDED.zoning_desc, address = EXCLUDED.address,
        attrs = EXCLUDED.attrs, geom = EXCLUDED.geom,
        h3 = EXCLUDED.h3, row_hash = EXCLUDED.row_hash,
        source_edited_at = EXCLUDED.source_edited_at, last_run = EXCLUDED.last_run,
        updated_at = now()
    WHERE f.row_hash IS DISTINCT FROM EXCLUDED.row_hash OR f.h3 <> EXCLUDED.h3
    RETURNING f.source_key, f.row_hash, (xmax = 0) AS inserted
), history AS (
    INSERT INTO zoningsync.feature_history
        (run_id, op, feed, source_key, new_row_hash, parcel_id, zoning_code, zoning_desc,
         attrs, geom, h3, row_hash, source_edited_at, first_run, last_run, updated_at, address)
    SELECT $1, 'update', $2, o.source_key, u.row_hash, o.parcel_id, o.zoning_code,
           o.zoning_desc, o.attrs, o.geom, o.h3, o.row_hash, o.source_edited_at,
           o.first_run, o.last_run, o.updated_at, o.address
    FROM old o JOIN upserted u ON u.source_key = o.source_key AND NOT u.inserted
    UNION ALL
    SELECT $1, 'insert', $2, u.source_key, u.row_hash, NULL, NULL, NULL, NULL, NULL, NULL,
           NULL, NULL, NULL, NULL, NULL, NULL
    FROM upserted u WHERE u.inserted
    RETURNING op
), changes AS (
    INSERT INTO zoningsync.zoning_changes
        (feed, source_key, jurisdiction, kind, parcel_id, old_code, new_code, run_id, geom)
    SELECT $2, s.source_key, $4, $5, s.parcel_id, o.zoning_code, s.zoning_code, $1,
           ST_GeomFromWKB(s.wkb, 4326)
    FROM old o JOIN src s ON s.source_key = o.source_key
    WHERE o.zoning_code IS DISTINCT FROM s.zoning_code
    RETURNING 1
)
SELECT (SELECT count(*) FROM history WHERE op = 'insert') AS inserted,
       (SELECT count(*) FROM history WHERE op = 'update') AS updated,
       (SELECT count(*) FROM changes) AS zoning_changes;

-- name: merge_retire
WITH gone AS (
    DELETE FROM zoningsync.features f
    USING zoningsync.retiring r
    WHERE f.feed = $2 AND f.h3 = ANY($3::text[]) AND r.run_id = $1
      AND r.source_key = f.source_key
    RETURNING f.*
), history AS (
    INSERT INTO zoningsync.feature_history
        (run_id, op, feed, source_key, new_row_hash, parcel_id, zoning_code, zoning_desc,
         attrs, geom, h3, row_hash, source_edited_at, first_run, last_run, updated_at, address,
         feature_id, created_at)
    SELECT $1, 'retire', $2, g.source_key, NULL, g.parcel_id, g.zoning_code, g.zoning_desc,
           g.attrs, g.geom, g.h3, g.row_hash, g.source_edited_at, g.first_run, g.last_run,
           g.updated_at, g.address, g.id, g.created_at
    FROM gone g
    RETURNING 1
)
SELECT count(*) FROM history;

-- name: save_checkpoints
-- The checkpoints a run replaces go to checkpoint_history first (the same
-- snapshot), once per run and chunk, so a rollback can put them back.
WITH replaced AS (
    INSERT INTO zoningsync.checkpoint_history
        (run_id, feed, chunk, hash, row_count, prior_run_id, updated_at)
    SELECT $1, cp.feed, cp.chunk, cp.hash, cp.row_count, cp.run_id, cp.updated_at
    FROM zoningsync.chunk_checkpoints cp
    WHERE cp.feed = $2 AND cp.chunk = ANY($3::text[]) AND cp.run_id <> $1
)
INSERT INTO zoningsync.chunk_checkpoints AS cp (feed, chunk, hash, row_count, run_id)
SELECT $2, c.chunk, c.hash, c.row_count, $1
FROM unnest($3::text[], $4::bytea[], $5::integer[]) AS c(chunk, hash, row_count)
ON CONFLICT (feed, chunk) DO UPDATE
SET hash = EXCLUDED.hash, row_count = EXCLUDED.row_count, run_id = EXCLUDED.run_id,
    updated_at = now();

-- name: drop_checkpoints
-- $1 the run emptying the chunks: what it drops goes to checkpoint_history.
WITH gone AS (
    DELETE FROM zoningsync.chunk_checkpoints WHERE feed = $2 AND chunk = ANY($3::text[])
    RETURNING *
)
INSERT INTO zoningsync.checkpoint_history
    (run_id, feed, chunk, hash, row_count, prior_run_id, updated_at)
SELECT $1, feed, chunk, hash, row_count, run_id, updated_at FROM gone WHERE run_id <> $1;

-- name: add_merge_stats
UPDATE zoningsync.runs
SET inserted = inserted + $2, updated = updated + $3, retired = retired + $4,
    chunks_written = chunks_written + $5
WHERE id = $1;

-- name: set_chunks_total
UPDATE zoningsync.runs SET chunks_total = greatest(chunks_total, $2) WHERE id = $1;

-- name: staged_high_water_mark
SELECT max(source_edited_at) FROM zoningsync.staged_rows WHERE run_id = $1;

-- name: finish_run
UPDATE zoningsync.runs
SET status = $2, error = $3, finished_at = now(), phase = 'done',
    high_water_mark = $4, oid_set_hash = $5, seconds = seconds + $6,
    unchanged = greatest(0, $7 - inserted - updated),
    chunks_skipped = greatest(0, chunks_total - chunks_written),
    warnings = $8
WHERE id = $1;

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

-- name: retire_deleted_oids
-- extractChanges deletes ($3 object ids) retire the stored keys those ids
-- carried, unless the run staged that key again (deleted and added back).
INSERT INTO zoningsync.retiring (run_id, source_key)
SELECT $1::bigint, m.source_key
FROM zoningsync.feature_oids m
JOIN zoningsync.features f ON f.feed = $2 AND f.source_key = m.source_key
WHERE m.feed = $2 AND m.source_oid = ANY($3::bigint[])
  AND NOT EXISTS (SELECT 1 FROM zoningsync.staged_rows s
                  WHERE s.run_id = $1 AND s.source_key = m.source_key)
ON CONFLICT DO NOTHING;

-- name: retire_rekeyed_oids
-- An update that changed a feature's key: the key its object id carried before
-- is gone upstream, as a full read would find.
INSERT INTO zoningsync.retiring (run_id, source_key)
SELECT $1::bigint, m.source_key
FROM zoningsync.staged_rows s
JOIN zoningsync.feature_oids m ON m.feed = $2 AND m.source_oid = s.source_oid
JOIN zoningsync.features f ON f.feed = $2 AND f.source_key = m.source_key
WHERE s.run_id = $1 AND m.source_key <> s.source_key
  AND NOT EXISTS (SELECT 1 FROM zoningsync.staged_rows t
                  WHERE t.run_id = $1 AND t.source_key = m.source_key)
ON CONFLICT DO NOTHING;
