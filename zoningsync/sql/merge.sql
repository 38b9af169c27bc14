-- Queries of store/merge.py: a first load's stored pages, duplicates, retirement,
-- chunk hashes and the per-chunk merge. $1 is the run id and $2 the feed id
-- wherever both appear.

-- name: add_duplicates
UPDATE zoningsync.runs
SET duplicates = duplicates + $2, quarantined = quarantined + $2, fetched = fetched - $3
WHERE id = $1;

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

-- name: count_retiring
SELECT count(*) FROM zoningsync.retiring WHERE run_id = $1;

-- name: count_feed_features
SELECT count(*) FROM zoningsync.features WHERE feed = $1;

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
    -- Every stored version of a src key: the upserted keys not in it are the
    -- inserts (the system column xmax, which told them apart before, is not
    -- returned from an upsert into a partitioned table). The same index probe
    -- per row as before, which found only the versions whose hash differs.
    SELECT f.*
    FROM zoningsync.features f
    JOIN src s ON f.feed = $2 AND f.source_key = s.source_key
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
    RETURNING f.source_key, f.row_hash
), history AS (
    INSERT INTO zoningsync.feature_history
        (run_id, op, feed, source_key, new_row_hash, parcel_id, zoning_code, zoning_desc,
         attrs, geom, h3, row_hash, source_edited_at, first_run, last_run, updated_at, address)
    SELECT $1, 'update', $2, o.source_key, u.row_hash, o.parcel_id, o.zoning_code,
           o.zoning_desc, o.attrs, o.geom, o.h3, o.row_hash, o.source_edited_at,
           o.first_run, o.last_run, o.updated_at, o.address
    FROM old o JOIN upserted u ON u.source_key = o.source_key AND u.row_hash <> o.row_hash
    UNION ALL
    SELECT $1, 'insert', $2, u.source_key, u.row_hash, NULL, NULL, NULL, NULL, NULL, NULL,
           NULL, NULL, NULL, NULL, NULL, NULL
    FROM upserted u
    WHERE NOT EXISTS (SELECT 1 FROM old o WHERE o.source_key = u.source_key)
    RETURNING op
), changes AS (
    INSERT INTO zoningsync.zoning_changes
        (feed, source_key, jurisdiction, kind, parcel_id, old_code, new_code, run_id, geom)
    SELECT $2, s.source_key, $4, $5, s.parcel_id, o.zoning_code, s.zoning_code, $1,
           ST_GeomFromWKB(s.wkb, 4326)
    FROM old o JOIN src s ON s.source_key = o.source_key
    WHERE o.row_hash <> s.row_hash AND o.zoning_code IS DISTINCT FROM s.zoning_code
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

-- name: chunks_as_stored
-- An incremental run that staged every row just as it is stored (same key, row
-- hash and chunk) and retires nothing leaves its chunks' content as stored, which
-- their checkpoints vouch for: their checkpoints, without hashing a row. No rows
-- when any staged row differs or something retires; a chunk without checkpoint
-- comes with a null hash, and the caller hashes as usual.
WITH differs AS (
    SELECT 1 FROM zoningsync.retiring WHERE run_id = $1
    UNION ALL
    SELECT 1 FROM zoningsync.staged_rows s
    WHERE s.run_id = $1
      AND NOT EXISTS (SELECT 1 FROM zoningsync.features f
                      WHERE f.feed = $2 AND f.source_key = s.source_key
                        AND f.row_hash = s.row_hash AND f.h3 = s.chunk)
    LIMIT 1
)
SELECT c.chunk, cp.hash, cp.row_count
FROM (SELECT DISTINCT chunk FROM zoningsync.staged_rows WHERE run_id = $1) AS c
LEFT JOIN zoningsync.chunk_checkpoints cp ON cp.feed = $2 AND cp.chunk = c.chunk
WHERE NOT EXISTS (SELECT 1 FROM differs);
