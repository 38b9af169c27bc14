-- Every attempt to sync a feed is a run, whatever stops it.
--
-- A run row is now created before the run is planned (phase 'plan', mode null
-- until the plan decides full or incremental), so a failure while reading the
-- layer's metadata, token or count leaves a failed run for an operator to see.
-- A run remembers the fingerprint of the configuration that shaped its rows, so
-- a resume or an incremental read never mixes rows of two configurations. A run
-- that would retire a suspicious share of a feed stops before merging as 'held'.
-- Planners get the history of parcels as a view they may read.

ALTER TABLE zoningsync.runs DROP CONSTRAINT runs_status_check;
ALTER TABLE zoningsync.runs ADD CONSTRAINT runs_status_check
    CHECK (status IN ('running', 'succeeded', 'failed', 'cancelled', 'held', 'rolled_back'));
COMMENT ON COLUMN zoningsync.runs.status IS
    'running, succeeded, failed, cancelled, held (would have retired more than the feed''s '
    'max_retire_fraction: nothing written) or rolled_back.';

-- 'rollback' is for the run that undoes another (a later issue).
ALTER TABLE zoningsync.runs ALTER COLUMN mode DROP NOT NULL;
ALTER TABLE zoningsync.runs DROP CONSTRAINT runs_mode_check;
ALTER TABLE zoningsync.runs ADD CONSTRAINT runs_mode_check
    CHECK (mode IN ('full', 'incremental', 'rollback'));
COMMENT ON COLUMN zoningsync.runs.mode IS
    'full: read the whole layer; incremental: read edits since the high-water mark; '
    'rollback: undo another run. Null while the run is planning, or when it failed before '
    'it had a plan.';
COMMENT ON COLUMN zoningsync.runs.phase IS
    'Where the run is: plan, fetch, merge or done; a resumed run continues from fetch or merge '
    '(a run stopped while planning has nothing to resume).';

ALTER TABLE zoningsync.runs ADD COLUMN fingerprint text;
COMMENT ON COLUMN zoningsync.runs.fingerprint IS
    'sha256 of the feed settings that shape its rows (url, key, field map, where, H3 '
    'resolution, ...): a run resumes, or reads incrementally, only rows of the same settings.';

CREATE VIEW zoningsync.parcel_history AS
SELECT fd.jurisdiction, h.feed, h.source_key,
       CASE WHEN h.op <> 'insert' THEN h.parcel_id
            WHEN nxt.id IS NOT NULL THEN nxt.parcel_id
            ELSE cur.parcel_id END AS parcel_id,
       h.op,
       h.zoning_code AS zoning_before,
       CASE WHEN h.op = 'retire' THEN NULL
            WHEN nxt.id IS NOT NULL THEN nxt.zoning_code
            ELSE cur.zoning_code END AS zoning_after,
       h.geom AS geom_before, h.run_id, h.recorded_at
FROM zoningsync.feature_history h
JOIN zoningsync.feeds fd ON fd.id = h.feed AND fd.kind = 'parcels'
-- The version an insert or update produced is the one the key's next change
-- replaced (that change's prior version), or, when nothing changed it since,
-- the current row. One index probe each (feature_history_key_idx, features' key).
LEFT JOIN LATERAL (
    SELECT n.id, n.parcel_id, n.zoning_code
    FROM zoningsync.feature_history n
    WHERE n.feed = h.feed AND n.source_key = h.source_key AND n.id > h.id
    ORDER BY n.id
    LIMIT 1
) nxt ON h.op <> 'retire'
LEFT JOIN zoningsync.features cur
    ON h.op <> 'retire' AND nxt.id IS NULL AND cur.feed = h.feed
       AND cur.source_key = h.source_key;
COMMENT ON VIEW zoningsync.parcel_history IS
    'Every insert, update and retirement of a parcel, by run, with its zoning before and after.';
COMMENT ON COLUMN zoningsync.parcel_history.jurisdiction IS 'Jurisdiction id.';
COMMENT ON COLUMN zoningsync.parcel_history.feed IS 'Feed id (jurisdiction/feed).';
COMMENT ON COLUMN zoningsync.parcel_history.source_key IS 'Upstream key of the parcel.';
COMMENT ON COLUMN zoningsync.parcel_history.parcel_id IS
    'Parcel identifier (of the version replaced; of the new version for an insert).';
COMMENT ON COLUMN zoningsync.parcel_history.op IS
    'insert (new parcel), update (content changed) or retire (vanished upstream).';
COMMENT ON COLUMN zoningsync.parcel_history.zoning_before IS
    'Zoning code before the change (null for an insert).';
COMMENT ON COLUMN zoningsync.parcel_history.zoning_after IS
    'Zoning code of the version the change produced (null for a retirement).';
COMMENT ON COLUMN zoningsync.parcel_history.geom_before IS
    'Footprint before the change, EPSG:4326 (null for an insert).';
COMMENT ON COLUMN zoningsync.parcel_history.run_id IS 'Run that made the change.';
COMMENT ON COLUMN zoningsync.parcel_history.recorded_at IS 'When the change was written.';

GRANT SELECT ON zoningsync.parcel_history TO zoningsync_reader;
