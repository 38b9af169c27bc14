-- Queries of store/deletions.py: an incremental read's deletions found from the
-- object ids the layer lists now (the run's id list) and `feature_oids`, the map
-- of the stored features' ids to their keys, instead of a read of every key.
-- $1 is the run id and $2 the feed id wherever both appear.

-- name: unmatched_oids
-- The listed ids ($2) the map does not hold, and the mapped ids no longer
-- listed: one hash join of the id list with the map (a nested loop of 100k
-- index probes took 190 ms), sending back only the few that differ.
SELECT coalesce(array_agg(u.oid) FILTER (WHERE m.source_oid IS NULL), '{}') AS unknown,
       coalesce(array_agg(m.source_oid) FILTER (WHERE u.oid IS NULL), '{}') AS vanished
FROM unnest($2::bigint[]) AS u(oid)
FULL JOIN (SELECT source_oid FROM zoningsync.feature_oids WHERE feed = $1) AS m
  ON m.source_oid = u.oid
WHERE u.oid IS NULL OR m.source_oid IS NULL;

-- name: mapped_keys
-- The stored keys of these ids ($3) that the run did not read itself, for
-- comparing with the keys the server gives them now.
SELECT m.source_oid, m.source_key FROM zoningsync.feature_oids m
WHERE m.feed = $2 AND m.source_oid = ANY($3::bigint[])
  AND NOT EXISTS (SELECT 1 FROM zoningsync.staged_rows s
                  WHERE s.run_id = $1 AND s.source_oid = m.source_oid)
  AND NOT EXISTS (SELECT 1 FROM zoningsync.quarantine q
                  WHERE q.feed = $2 AND q.run_id = $1 AND q.source_oid = m.source_oid);

-- name: retire_requarantined_oids
-- An id the run read but quarantined under another key than the map's: the
-- key it carried is gone upstream, unless the run staged that key again.
INSERT INTO zoningsync.retiring (run_id, source_key)
SELECT DISTINCT $1::bigint, m.source_key
FROM zoningsync.quarantine q
JOIN zoningsync.feature_oids m ON m.feed = $2 AND m.source_oid = q.source_oid
JOIN zoningsync.features f ON f.feed = $2 AND f.source_key = m.source_key
WHERE q.feed = $2 AND q.run_id = $1 AND q.source_key IS DISTINCT FROM m.source_key
  AND NOT EXISTS (SELECT 1 FROM zoningsync.staged_rows s
                  WHERE s.run_id = $1 AND s.source_key = m.source_key)
ON CONFLICT DO NOTHING;

-- name: retire_listed_twice
-- A key the run staged from one id while another id, still listed (not among
-- the vanished, $3) and not read again, carries it too: the layer holds it
-- twice, and a full read would quarantine both copies and retire it, as a key
-- read's diff does.
INSERT INTO zoningsync.retiring (run_id, source_key)
SELECT DISTINCT $1::bigint, s.source_key
FROM zoningsync.staged_rows s
JOIN zoningsync.feature_oids m
  ON m.feed = $2 AND m.source_key = s.source_key AND m.source_oid <> s.source_oid
JOIN zoningsync.features f ON f.feed = $2 AND f.source_key = s.source_key
WHERE s.run_id = $1
  AND m.source_oid <> ALL($3::bigint[])
  AND NOT EXISTS (SELECT 1 FROM zoningsync.staged_rows t
                  WHERE t.run_id = $1 AND t.source_oid = m.source_oid)
ON CONFLICT DO NOTHING;

-- name: never_quarantined
-- Of these ids ($2), those no run of the feed ever quarantined: a listed id the
-- map lacks is harmless when it is a record the feed never stored.
SELECT u.oid FROM unnest($2::bigint[]) AS u(oid)
WHERE NOT EXISTS (SELECT 1 FROM zoningsync.quarantine q
                  WHERE q.feed = $1 AND q.source_oid = u.oid);

-- name: map_and_features
-- How many features the feed stores, and whether a rollback ran since its last
-- full read: a rollback restores features, not the map, which may then name
-- keys the feed no longer stores; the next full read rewrites it.
SELECT (SELECT count(*) FROM zoningsync.features WHERE feed = $1) AS stored,
       EXISTS (SELECT 1 FROM zoningsync.runs r
               WHERE r.feed = $1 AND r.mode = 'rollback'
                 AND r.id > coalesce((SELECT max(id) FROM zoningsync.runs
                                      WHERE feed = $1 AND mode = 'full'
                                        AND status = 'succeeded'), 0)) AS rolled_back;
