-- Queries of store/deletions.py: an incremental read's deletions found from the
-- object ids the layer lists now ($3, the run's id list) and `feature_oids`, the
-- map of the stored features' ids to their keys, instead of a read of every key.
-- $1 is the run id and $2 the feed id wherever both appear.

-- name: oid_map_vouches
-- The map stands for the stored features (one id per stored key) and knows every
-- listed id the run did not read itself (staged or quarantined): else the layer
-- was renumbered, or the map is stale, and the keys must be read.
SELECT (SELECT count(*) FROM zoningsync.feature_oids WHERE feed = $2)
     = (SELECT count(*) FROM zoningsync.features WHERE feed = $2)
   AND NOT EXISTS (
       SELECT 1 FROM unnest($3::bigint[]) AS u(oid)
       WHERE NOT EXISTS (SELECT 1 FROM zoningsync.feature_oids m
                         WHERE m.feed = $2 AND m.source_oid = u.oid)
         AND NOT EXISTS (SELECT 1 FROM zoningsync.staged_rows s
                         WHERE s.run_id = $1 AND s.source_oid = u.oid)
         AND NOT EXISTS (SELECT 1 FROM zoningsync.quarantine q
                         WHERE q.feed = $2 AND q.run_id = $1 AND q.source_oid = u.oid));

-- name: mapped_keys
-- The stored keys of these ids ($3) that the run did not read itself, for
-- comparing with the keys the server gives them now.
SELECT m.source_oid, m.source_key FROM zoningsync.feature_oids m
WHERE m.feed = $2 AND m.source_oid = ANY($3::bigint[])
  AND NOT EXISTS (SELECT 1 FROM zoningsync.staged_rows s
                  WHERE s.run_id = $1 AND s.source_oid = m.source_oid)
  AND NOT EXISTS (SELECT 1 FROM zoningsync.quarantine q
                  WHERE q.feed = $2 AND q.run_id = $1 AND q.source_oid = m.source_oid);

-- name: retire_absent_from_oids
-- A stored key is gone upstream when the id that carried it is listed no more,
-- or was read this run (quarantined) with another key; unless the run staged
-- that key again. What a key read's diff finds, from the ids alone.
INSERT INTO zoningsync.retiring (run_id, source_key)
SELECT $1::bigint, m.source_key
FROM zoningsync.feature_oids m
JOIN zoningsync.features f ON f.feed = $2 AND f.source_key = m.source_key
WHERE m.feed = $2
  AND (NOT EXISTS (SELECT 1 FROM unnest($3::bigint[]) AS u(oid) WHERE u.oid = m.source_oid)
       OR EXISTS (SELECT 1 FROM zoningsync.quarantine q
                  WHERE q.feed = $2 AND q.run_id = $1 AND q.source_oid = m.source_oid
                    AND q.source_key IS DISTINCT FROM m.source_key))
  AND NOT EXISTS (SELECT 1 FROM zoningsync.staged_rows s
                  WHERE s.run_id = $1 AND s.source_key = m.source_key)
ON CONFLICT DO NOTHING;

-- name: retire_listed_twice
-- A key the run staged from one id while another listed id, not read again,
-- still carries it: the layer holds it twice, and a full read would quarantine
-- both copies and retire it, as a key read's diff does.
INSERT INTO zoningsync.retiring (run_id, source_key)
SELECT DISTINCT $1::bigint, s.source_key
FROM zoningsync.staged_rows s
JOIN zoningsync.feature_oids m
  ON m.feed = $2 AND m.source_key = s.source_key AND m.source_oid <> s.source_oid
JOIN zoningsync.features f ON f.feed = $2 AND f.source_key = s.source_key
WHERE s.run_id = $1
  AND m.source_oid = ANY($3::bigint[])
  AND NOT EXISTS (SELECT 1 FROM zoningsync.staged_rows t
                  WHERE t.run_id = $1 AND t.source_oid = m.source_oid)
ON CONFLICT DO NOTHING;
