-- A first load COPYs each page straight into features, in the transaction that
-- stages it (stage_page in store/staging.py). Such a page stages thin rows: the
-- key, chunk, hash, object id and edit date that the run's checks and chunk
-- hashes read, without the attributes and footprint that features already
-- holds. Writing and re-reading them cost a 100k first load 1.3 s of PostgreSQL
-- CPU. Only pages that could not be stored at once (a key already stored by an
-- earlier page of the run) stage full rows.
ALTER TABLE zoningsync.staged_rows
    ALTER COLUMN attrs DROP NOT NULL,
    ALTER COLUMN wkb DROP NOT NULL;
COMMENT ON COLUMN zoningsync.staged_rows.attrs IS
    'Other attributes (null when the page was stored in features as it was staged).';
COMMENT ON COLUMN zoningsync.staged_rows.wkb IS
    'Footprint as WKB (EPSG:4326, MultiPolygon); parsed into geometry only when merged '
    '(null when the page was stored in features as it was staged).';
