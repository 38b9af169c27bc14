-- Staging for runs in progress. UNLOGGED: a run's staged pages must survive a
-- killed client (they span many transactions) but not a server crash, after
-- which a run simply refetches; the fetched-pages ledger shares that fate, so
-- the two always agree.

CREATE UNLOGGED TABLE zoningsync.staged_rows (
    run_id            bigint NOT NULL,
    page_id           text NOT NULL,
    source_oid        bigint,
    source_key        text NOT NULL,
    chunk             text NOT NULL,
    parcel_id         text,
    zoning_code       text,
    zoning_desc       text,
    attrs             jsonb NOT NULL,
    wkb               bytea NOT NULL,
    source_edited_at  timestamptz,
    row_hash          bytea NOT NULL
);
CREATE INDEX staged_rows_run_key_idx ON zoningsync.staged_rows (run_id, source_key);
CREATE INDEX staged_rows_run_chunk_idx ON zoningsync.staged_rows (run_id, chunk);
COMMENT ON TABLE zoningsync.staged_rows IS 'Rows fetched by runs in progress, before their chunks are merged (emptied when a run ends).';
COMMENT ON COLUMN zoningsync.staged_rows.run_id IS 'Run that fetched the row.';
COMMENT ON COLUMN zoningsync.staged_rows.page_id IS 'Page of the run''s fetch plan the row came from.';
COMMENT ON COLUMN zoningsync.staged_rows.source_oid IS 'Upstream object id (used only to drop rows fetched twice).';
COMMENT ON COLUMN zoningsync.staged_rows.source_key IS 'Upstream key.';
COMMENT ON COLUMN zoningsync.staged_rows.chunk IS 'H3 chunk cell.';
COMMENT ON COLUMN zoningsync.staged_rows.parcel_id IS 'Parcel identifier.';
COMMENT ON COLUMN zoningsync.staged_rows.zoning_code IS 'Zoning code.';
COMMENT ON COLUMN zoningsync.staged_rows.zoning_desc IS 'Zoning description.';
COMMENT ON COLUMN zoningsync.staged_rows.attrs IS 'Other attributes.';
COMMENT ON COLUMN zoningsync.staged_rows.wkb IS 'Footprint as WKB (EPSG:4326, MultiPolygon); parsed into geometry only when merged.';
COMMENT ON COLUMN zoningsync.staged_rows.source_edited_at IS 'Upstream edit date.';
COMMENT ON COLUMN zoningsync.staged_rows.row_hash IS 'Content hash.';

CREATE UNLOGGED TABLE zoningsync.staged_pages (
    run_id   bigint NOT NULL,
    page_id  text NOT NULL,
    records  integer NOT NULL,
    PRIMARY KEY (run_id, page_id)
);
COMMENT ON TABLE zoningsync.staged_pages IS 'Pages a run in progress has staged, so a resumed run does not fetch them again.';
COMMENT ON COLUMN zoningsync.staged_pages.run_id IS 'Run.';
COMMENT ON COLUMN zoningsync.staged_pages.page_id IS 'Page id within the run''s fetch plan.';
COMMENT ON COLUMN zoningsync.staged_pages.records IS 'Upstream records the page held.';

CREATE UNLOGGED TABLE zoningsync.staged_keys (
    run_id      bigint NOT NULL,
    source_key  text NOT NULL
);
CREATE INDEX staged_keys_run_key_idx ON zoningsync.staged_keys (run_id, source_key);
COMMENT ON TABLE zoningsync.staged_keys IS 'Every key upstream holds, read by an incremental run to find deletions.';
COMMENT ON COLUMN zoningsync.staged_keys.run_id IS 'Run.';
COMMENT ON COLUMN zoningsync.staged_keys.source_key IS 'Upstream key.';

CREATE UNLOGGED TABLE zoningsync.retiring (
    run_id      bigint NOT NULL,
    source_key  text NOT NULL,
    PRIMARY KEY (run_id, source_key)
);
COMMENT ON TABLE zoningsync.retiring IS 'Keys a run in progress will retire, chunk by chunk.';
COMMENT ON COLUMN zoningsync.retiring.run_id IS 'Run.';
COMMENT ON COLUMN zoningsync.retiring.source_key IS 'Key of a stored feature that vanished upstream.';
