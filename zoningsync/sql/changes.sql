-- Queries of store/changes.py: the server generation and the object-id map of
-- change-tracking feeds. $1 is the run id and $2 the feed id wherever both appear.

-- name: last_server_gen
-- The server generation the feed's last success brought it to: null when that
-- run read no change-tracking layer, and the next change read is then a full one.
SELECT server_gen FROM zoningsync.runs
WHERE feed = $1 AND status = 'succeeded'
ORDER BY id DESC
LIMIT 1;

-- name: save_server_gen
UPDATE zoningsync.runs SET server_gen = $2 WHERE id = $1;

-- name: clear_feature_oids
DELETE FROM zoningsync.feature_oids WHERE feed = $1;

-- name: forget_feature_oids
-- Before a change read's staged rows are recorded: the ids it deleted ($3), the
-- keys it retired, and the keys it staged (their id may have changed).
DELETE FROM zoningsync.feature_oids m
WHERE m.feed = $2
  AND (m.source_oid = ANY($3::bigint[])
       OR m.source_key IN (SELECT source_key FROM zoningsync.retiring WHERE run_id = $1)
       OR m.source_key IN (SELECT source_key FROM zoningsync.staged_rows WHERE run_id = $1));

-- name: store_feature_oids
INSERT INTO zoningsync.feature_oids AS m (feed, source_oid, source_key)
SELECT DISTINCT ON (s.source_oid) $2, s.source_oid, s.source_key
FROM zoningsync.staged_rows s
WHERE s.run_id = $1 AND s.source_oid IS NOT NULL
ON CONFLICT (feed, source_oid) DO UPDATE SET source_key = EXCLUDED.source_key;

-- name: store_full_read_oids
-- After clear_feature_oids the feed maps no id, and DISTINCT ON leaves one row
-- per id: no conflict can arise, and none is checked for (the speculative
-- inserts of store_feature_oids doubled the cost of a first load's 100k ids).
INSERT INTO zoningsync.feature_oids (feed, source_oid, source_key)
SELECT DISTINCT ON (s.source_oid) $2, s.source_oid, s.source_key
FROM zoningsync.staged_rows s
WHERE s.run_id = $1 AND s.source_oid IS NOT NULL;
