-- zoningsync schema: feeds, runs, current features, their history, chunk
-- checkpoints, zoning-change events, rezoning cases, fetched documents and the
-- quarantine of rejected records. Planners read the views of 0002; the daemon
-- writes these tables.

CREATE EXTENSION IF NOT EXISTS postgis WITH SCHEMA public;

CREATE SCHEMA IF NOT EXISTS zoningsync;
COMMENT ON SCHEMA zoningsync IS
    'zoningsync: a PostGIS mirror of municipal zoning data with full change history. '
    'Planners query the views parcels, zoning_districts, zoning_changes_recent and pending_cases.';

CREATE TABLE zoningsync.feeds (
    id                text PRIMARY KEY,
    jurisdiction      text NOT NULL,
    feed              text NOT NULL,
    kind              text NOT NULL CHECK (kind IN ('parcels', 'zoning_districts', 'cases')),
    source_type       text NOT NULL,
    url               text NOT NULL,
    config            jsonb NOT NULL DEFAULT '{}'::jsonb,
    paused            boolean NOT NULL DEFAULT false,
    paused_reason     text,
    paused_at         timestamptz,
    last_success_run  bigint,
    last_success_at   timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (jurisdiction, feed)
);
COMMENT ON TABLE zoningsync.feeds IS 'One row per jurisdiction feed that zoningsync mirrors.';
COMMENT ON COLUMN zoningsync.feeds.id IS 'Feed id across jurisdictions: jurisdiction/feed.';
COMMENT ON COLUMN zoningsync.feeds.jurisdiction IS 'Jurisdiction id from the source file (e.g. wake-county-nc).';
COMMENT ON COLUMN zoningsync.feeds.feed IS 'Feed id within its jurisdiction (e.g. parcels).';
COMMENT ON COLUMN zoningsync.feeds.kind IS 'What the feed holds: parcels, zoning_districts or cases.';
COMMENT ON COLUMN zoningsync.feeds.source_type IS 'Producer that reads the feed: arcgis, html, pdf.';
COMMENT ON COLUMN zoningsync.feeds.url IS 'Upstream URL of the feed (ArcGIS layer URL, portal page).';
COMMENT ON COLUMN zoningsync.feeds.config IS 'The feed configuration as last loaded from its source file.';
COMMENT ON COLUMN zoningsync.feeds.paused IS 'True while an operator has paused the feed; paused feeds are not synced.';
COMMENT ON COLUMN zoningsync.feeds.paused_reason IS 'Why the operator paused the feed.';
COMMENT ON COLUMN zoningsync.feeds.paused_at IS 'When the feed was paused.';
COMMENT ON COLUMN zoningsync.feeds.last_success_run IS 'Id of the last run that succeeded.';
COMMENT ON COLUMN zoningsync.feeds.last_success_at IS 'When the last successful run finished.';
COMMENT ON COLUMN zoningsync.feeds.created_at IS 'When zoningsync first saw this feed.';
COMMENT ON COLUMN zoningsync.feeds.updated_at IS 'When this row last changed.';

CREATE TABLE zoningsync.runs (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    feed               text NOT NULL REFERENCES zoningsync.feeds (id),
    status             text NOT NULL DEFAULT 'running'
                       CHECK (status IN ('running', 'succeeded', 'failed', 'cancelled', 'rolled_back')),
    mode               text NOT NULL CHECK (mode IN ('full', 'incremental')),
    started_at         timestamptz NOT NULL DEFAULT now(),
    finished_at        timestamptz,
    resumed            integer NOT NULL DEFAULT 0,
    phase              text NOT NULL DEFAULT 'fetch',
    cursor             jsonb NOT NULL DEFAULT '{}'::jsonb,
    high_water_mark    timestamptz,
    expected           bigint,
    layer_count        bigint,
    oid_set_hash       text,
    fetched            bigint NOT NULL DEFAULT 0,
    inserted           bigint NOT NULL DEFAULT 0,
    updated            bigint NOT NULL DEFAULT 0,
    retired            bigint NOT NULL DEFAULT 0,
    unchanged          bigint NOT NULL DEFAULT 0,
    quarantined        bigint NOT NULL DEFAULT 0,
    duplicates         bigint NOT NULL DEFAULT 0,
    repaired           bigint NOT NULL DEFAULT 0,
    chunks_total       bigint NOT NULL DEFAULT 0,
    chunks_written     bigint NOT NULL DEFAULT 0,
    chunks_skipped     bigint NOT NULL DEFAULT 0,
    requests           bigint NOT NULL DEFAULT 0,
    retries            bigint NOT NULL DEFAULT 0,
    bytes              bigint NOT NULL DEFAULT 0,
    seconds            double precision NOT NULL DEFAULT 0,
    warnings           jsonb NOT NULL DEFAULT '[]'::jsonb,
    error              text
);
CREATE INDEX runs_feed_started_idx ON zoningsync.runs (feed, started_at DESC);
COMMENT ON TABLE zoningsync.runs IS 'One row per sync run of a feed, with its outcome and counts.';
COMMENT ON COLUMN zoningsync.runs.id IS 'Run id; history, checkpoints and quarantine rows point here.';
COMMENT ON COLUMN zoningsync.runs.feed IS 'Feed id (jurisdiction/feed).';
COMMENT ON COLUMN zoningsync.runs.status IS 'running, succeeded, failed, cancelled or rolled_back.';
COMMENT ON COLUMN zoningsync.runs.mode IS 'full: read the whole layer; incremental: read edits since the high-water mark.';
COMMENT ON COLUMN zoningsync.runs.started_at IS 'When the run started.';
COMMENT ON COLUMN zoningsync.runs.finished_at IS 'When the run ended (null while running).';
COMMENT ON COLUMN zoningsync.runs.resumed IS 'How many times an interrupted run was resumed.';
COMMENT ON COLUMN zoningsync.runs.phase IS 'Where the run is: fetch, merge or done; a resumed run continues from here.';
COMMENT ON COLUMN zoningsync.runs.cursor IS 'Fetch plan of the run, so a resumed run skips pages it already staged.';
COMMENT ON COLUMN zoningsync.runs.high_water_mark IS 'Latest upstream edit date seen; the next incremental run reads edits after it.';
COMMENT ON COLUMN zoningsync.runs.expected IS 'Features the run set out to fetch: the whole layer (full) or the edited ones (incremental).';
COMMENT ON COLUMN zoningsync.runs.layer_count IS 'Features the whole layer held (returnCountOnly of the feed''s where) when the run started.';
COMMENT ON COLUMN zoningsync.runs.oid_set_hash IS 'Hash of the layer''s object id set; unchanged with same count means no deletions to look for.';
COMMENT ON COLUMN zoningsync.runs.fetched IS 'Distinct upstream records fetched.';
COMMENT ON COLUMN zoningsync.runs.inserted IS 'Features inserted.';
COMMENT ON COLUMN zoningsync.runs.updated IS 'Features whose content changed.';
COMMENT ON COLUMN zoningsync.runs.retired IS 'Features that vanished upstream and were retired.';
COMMENT ON COLUMN zoningsync.runs.unchanged IS 'Fetched features whose content was already stored.';
COMMENT ON COLUMN zoningsync.runs.quarantined IS 'Records rejected into quarantine (duplicates included).';
COMMENT ON COLUMN zoningsync.runs.duplicates IS 'Records quarantined because another record of the run had the same key.';
COMMENT ON COLUMN zoningsync.runs.repaired IS 'Invalid geometries repaired (make_valid) and stored.';
COMMENT ON COLUMN zoningsync.runs.chunks_total IS 'H3 chunks the run compared with their checkpoints.';
COMMENT ON COLUMN zoningsync.runs.chunks_written IS 'Chunks whose hash changed and were merged.';
COMMENT ON COLUMN zoningsync.runs.chunks_skipped IS 'Chunks whose hash matched the checkpoint (zero writes).';
COMMENT ON COLUMN zoningsync.runs.requests IS 'HTTP requests made, retries included.';
COMMENT ON COLUMN zoningsync.runs.retries IS 'HTTP requests that were retries.';
COMMENT ON COLUMN zoningsync.runs.bytes IS 'Response bytes received.';
COMMENT ON COLUMN zoningsync.runs.seconds IS 'Wall time of the run, resumed parts included.';
COMMENT ON COLUMN zoningsync.runs.warnings IS 'Things worth an operator''s look that did not fail the run.';
COMMENT ON COLUMN zoningsync.runs.error IS 'Why the run failed (null on success).';

CREATE TABLE zoningsync.features (
    id                bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    feed              text NOT NULL REFERENCES zoningsync.feeds (id),
    source_key        text NOT NULL,
    jurisdiction      text NOT NULL,
    kind              text NOT NULL CHECK (kind IN ('parcels', 'zoning_districts')),
    parcel_id         text,
    zoning_code       text,
    zoning_desc       text,
    attrs             jsonb NOT NULL DEFAULT '{}'::jsonb,
    geom              geometry(MultiPolygon, 4326) NOT NULL,
    h3                text NOT NULL,
    row_hash          bytea NOT NULL,
    source_edited_at  timestamptz,
    first_run         bigint NOT NULL REFERENCES zoningsync.runs (id),
    last_run          bigint NOT NULL REFERENCES zoningsync.runs (id),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (feed, source_key)
);
CREATE INDEX features_geom_idx ON zoningsync.features USING gist (geom);
CREATE INDEX features_feed_h3_idx ON zoningsync.features (feed, h3);
CREATE INDEX features_parcel_id_idx ON zoningsync.features (parcel_id);
CREATE INDEX features_zoning_code_idx ON zoningsync.features (zoning_code);
COMMENT ON TABLE zoningsync.features IS 'Current state of every parcel and zoning district, one row per upstream feature.';
COMMENT ON COLUMN zoningsync.features.id IS 'Row id for GIS clients that need one integer key (QGIS); stable while the feature exists.';
COMMENT ON COLUMN zoningsync.features.feed IS 'Feed id (jurisdiction/feed) the feature comes from.';
COMMENT ON COLUMN zoningsync.features.source_key IS 'Upstream key of the feature (the feed''s key field; a JSON array for composite keys).';
COMMENT ON COLUMN zoningsync.features.jurisdiction IS 'Jurisdiction id (e.g. wake-county-nc).';
COMMENT ON COLUMN zoningsync.features.kind IS 'parcels or zoning_districts.';
COMMENT ON COLUMN zoningsync.features.parcel_id IS 'Parcel identifier (PIN/APN) as published upstream.';
COMMENT ON COLUMN zoningsync.features.zoning_code IS 'Zoning district code (e.g. R-4).';
COMMENT ON COLUMN zoningsync.features.zoning_desc IS 'Zoning district description.';
COMMENT ON COLUMN zoningsync.features.attrs IS 'Every other upstream attribute, unchanged (dates as ISO-8601 UTC strings).';
COMMENT ON COLUMN zoningsync.features.geom IS 'Footprint in WGS 84 (EPSG:4326), valid, as MultiPolygon, at 1e-7 degree precision.';
COMMENT ON COLUMN zoningsync.features.h3 IS 'H3 cell (feed resolution) of a point on the surface; the feature''s sync chunk.';
COMMENT ON COLUMN zoningsync.features.row_hash IS 'Hash of the feature''s content (attributes and geometry, never the upstream object id).';
COMMENT ON COLUMN zoningsync.features.source_edited_at IS 'Upstream edit date of the feature, where the layer tracks edits.';
COMMENT ON COLUMN zoningsync.features.first_run IS 'Run that first stored the feature.';
COMMENT ON COLUMN zoningsync.features.last_run IS 'Run that last changed the feature.';
COMMENT ON COLUMN zoningsync.features.created_at IS 'When the feature was first stored.';
COMMENT ON COLUMN zoningsync.features.updated_at IS 'When the feature''s content last changed.';

CREATE TABLE zoningsync.feature_history (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id            bigint NOT NULL REFERENCES zoningsync.runs (id),
    op                text NOT NULL CHECK (op IN ('insert', 'update', 'retire')),
    feed              text NOT NULL,
    source_key        text NOT NULL,
    recorded_at       timestamptz NOT NULL DEFAULT now(),
    new_row_hash      bytea,
    parcel_id         text,
    zoning_code       text,
    zoning_desc       text,
    attrs             jsonb,
    geom              geometry(MultiPolygon, 4326),
    h3                text,
    row_hash          bytea,
    source_edited_at  timestamptz,
    first_run         bigint,
    last_run          bigint,
    updated_at        timestamptz
);
CREATE INDEX feature_history_run_idx ON zoningsync.feature_history (run_id);
CREATE INDEX feature_history_key_idx ON zoningsync.feature_history (feed, source_key, id);
COMMENT ON TABLE zoningsync.feature_history IS
    'One row per insert, update or retirement of a feature, with the version it replaced, so any run can be rolled back.';
COMMENT ON COLUMN zoningsync.feature_history.id IS 'Order of the changes.';
COMMENT ON COLUMN zoningsync.feature_history.run_id IS 'Run that made the change.';
COMMENT ON COLUMN zoningsync.feature_history.op IS 'insert (new feature), update (content changed) or retire (vanished upstream).';
COMMENT ON COLUMN zoningsync.feature_history.feed IS 'Feed id of the feature.';
COMMENT ON COLUMN zoningsync.feature_history.source_key IS 'Upstream key of the feature.';
COMMENT ON COLUMN zoningsync.feature_history.recorded_at IS 'When the change was written.';
COMMENT ON COLUMN zoningsync.feature_history.new_row_hash IS 'Content hash after the change (null for a retirement).';
COMMENT ON COLUMN zoningsync.feature_history.parcel_id IS 'Prior version: parcel identifier (null for an insert).';
COMMENT ON COLUMN zoningsync.feature_history.zoning_code IS 'Prior version: zoning code (null for an insert).';
COMMENT ON COLUMN zoningsync.feature_history.zoning_desc IS 'Prior version: zoning description.';
COMMENT ON COLUMN zoningsync.feature_history.attrs IS 'Prior version: other attributes.';
COMMENT ON COLUMN zoningsync.feature_history.geom IS 'Prior version: footprint (EPSG:4326).';
COMMENT ON COLUMN zoningsync.feature_history.h3 IS 'Prior version: H3 chunk cell.';
COMMENT ON COLUMN zoningsync.feature_history.row_hash IS 'Prior version: content hash.';
COMMENT ON COLUMN zoningsync.feature_history.source_edited_at IS 'Prior version: upstream edit date.';
COMMENT ON COLUMN zoningsync.feature_history.first_run IS 'Prior version: run that first stored the feature.';
COMMENT ON COLUMN zoningsync.feature_history.last_run IS 'Prior version: run that had last changed it.';
COMMENT ON COLUMN zoningsync.feature_history.updated_at IS 'Prior version: when it had last changed.';

CREATE TABLE zoningsync.chunk_checkpoints (
    feed        text NOT NULL REFERENCES zoningsync.feeds (id),
    chunk       text NOT NULL,
    hash        bytea NOT NULL,
    row_count   integer NOT NULL,
    run_id      bigint NOT NULL REFERENCES zoningsync.runs (id),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (feed, chunk)
);
COMMENT ON TABLE zoningsync.chunk_checkpoints IS
    'Hash of each H3 chunk''s full upstream content as last stored; a chunk whose hash is unchanged is skipped with zero writes.';
COMMENT ON COLUMN zoningsync.chunk_checkpoints.feed IS 'Feed id.';
COMMENT ON COLUMN zoningsync.chunk_checkpoints.chunk IS 'H3 cell of the chunk.';
COMMENT ON COLUMN zoningsync.chunk_checkpoints.hash IS 'sha256 over the chunk''s sorted row hashes.';
COMMENT ON COLUMN zoningsync.chunk_checkpoints.row_count IS 'Features stored in the chunk.';
COMMENT ON COLUMN zoningsync.chunk_checkpoints.run_id IS 'Run that wrote this hash (in the same transaction as the chunk''s data).';
COMMENT ON COLUMN zoningsync.chunk_checkpoints.updated_at IS 'When the hash was written.';

CREATE TABLE zoningsync.zoning_changes (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    feed          text NOT NULL REFERENCES zoningsync.feeds (id),
    source_key    text NOT NULL,
    jurisdiction  text NOT NULL,
    kind          text NOT NULL,
    parcel_id     text,
    old_code      text,
    new_code      text,
    run_id        bigint NOT NULL REFERENCES zoningsync.runs (id),
    detected_at   timestamptz NOT NULL DEFAULT now(),
    geom          geometry(MultiPolygon, 4326)
);
CREATE INDEX zoning_changes_detected_idx ON zoningsync.zoning_changes (detected_at DESC);
CREATE INDEX zoning_changes_run_idx ON zoningsync.zoning_changes (run_id);
CREATE INDEX zoning_changes_geom_idx ON zoningsync.zoning_changes USING gist (geom);
COMMENT ON TABLE zoningsync.zoning_changes IS 'One event each time a stored feature''s zoning code changes upstream.';
COMMENT ON COLUMN zoningsync.zoning_changes.id IS 'Event id.';
COMMENT ON COLUMN zoningsync.zoning_changes.feed IS 'Feed id.';
COMMENT ON COLUMN zoningsync.zoning_changes.source_key IS 'Upstream key of the feature.';
COMMENT ON COLUMN zoningsync.zoning_changes.jurisdiction IS 'Jurisdiction id.';
COMMENT ON COLUMN zoningsync.zoning_changes.kind IS 'parcels or zoning_districts.';
COMMENT ON COLUMN zoningsync.zoning_changes.parcel_id IS 'Parcel identifier after the change.';
COMMENT ON COLUMN zoningsync.zoning_changes.old_code IS 'Zoning code before.';
COMMENT ON COLUMN zoningsync.zoning_changes.new_code IS 'Zoning code after.';
COMMENT ON COLUMN zoningsync.zoning_changes.run_id IS 'Run that saw the change.';
COMMENT ON COLUMN zoningsync.zoning_changes.detected_at IS 'When zoningsync saw the change.';
COMMENT ON COLUMN zoningsync.zoning_changes.geom IS 'Footprint after the change (EPSG:4326).';

CREATE TABLE zoningsync.documents (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    feed           text REFERENCES zoningsync.feeds (id),
    url            text NOT NULL UNIQUE,
    etag           text,
    last_modified  text,
    sha256         text,
    size           bigint,
    content_type   text,
    fetched_at     timestamptz NOT NULL DEFAULT now(),
    changed_at     timestamptz
);
COMMENT ON TABLE zoningsync.documents IS 'Upstream documents (portal pages, PDFs) zoningsync fetched, for conditional GETs and provenance.';
COMMENT ON COLUMN zoningsync.documents.id IS 'Document id.';
COMMENT ON COLUMN zoningsync.documents.feed IS 'Feed that fetched it.';
COMMENT ON COLUMN zoningsync.documents.url IS 'URL of the document.';
COMMENT ON COLUMN zoningsync.documents.etag IS 'ETag of the last answer, sent back as If-None-Match.';
COMMENT ON COLUMN zoningsync.documents.last_modified IS 'Last-Modified of the last answer, sent back as If-Modified-Since.';
COMMENT ON COLUMN zoningsync.documents.sha256 IS 'sha256 of the body, hex.';
COMMENT ON COLUMN zoningsync.documents.size IS 'Body size in bytes.';
COMMENT ON COLUMN zoningsync.documents.content_type IS 'Content-Type of the answer.';
COMMENT ON COLUMN zoningsync.documents.fetched_at IS 'When it was last fetched.';
COMMENT ON COLUMN zoningsync.documents.changed_at IS 'When its content last changed.';

CREATE TABLE zoningsync.cases (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    feed             text NOT NULL REFERENCES zoningsync.feeds (id),
    jurisdiction     text NOT NULL,
    case_number      text NOT NULL,
    title            text,
    status           text,
    status_class     text NOT NULL DEFAULT 'unknown'
                     CHECK (status_class IN ('pending', 'approved', 'denied', 'withdrawn', 'unknown')),
    filed_at         timestamptz,
    hearing_at       timestamptz,
    decided_at       timestamptz,
    from_zoning      text,
    to_zoning        text,
    parcel_ids       text[] NOT NULL DEFAULT '{}',
    address          text,
    document_url     text,
    document_sha256  text,
    attrs            jsonb NOT NULL DEFAULT '{}'::jsonb,
    first_run        bigint REFERENCES zoningsync.runs (id),
    last_run         bigint REFERENCES zoningsync.runs (id),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (feed, case_number)
);
COMMENT ON TABLE zoningsync.cases IS 'Rezoning cases read from county portal pages and planning PDFs.';
COMMENT ON COLUMN zoningsync.cases.id IS 'Case row id.';
COMMENT ON COLUMN zoningsync.cases.feed IS 'Feed id the case comes from.';
COMMENT ON COLUMN zoningsync.cases.jurisdiction IS 'Jurisdiction id.';
COMMENT ON COLUMN zoningsync.cases.case_number IS 'Case number as published (e.g. Z-12-2024).';
COMMENT ON COLUMN zoningsync.cases.title IS 'Case title or request summary.';
COMMENT ON COLUMN zoningsync.cases.status IS 'Status as published upstream.';
COMMENT ON COLUMN zoningsync.cases.status_class IS 'Status normalized: pending, approved, denied, withdrawn or unknown.';
COMMENT ON COLUMN zoningsync.cases.filed_at IS 'When the case was filed.';
COMMENT ON COLUMN zoningsync.cases.hearing_at IS 'Next or last public hearing.';
COMMENT ON COLUMN zoningsync.cases.decided_at IS 'When the case was decided.';
COMMENT ON COLUMN zoningsync.cases.from_zoning IS 'Current zoning of the site.';
COMMENT ON COLUMN zoningsync.cases.to_zoning IS 'Requested zoning.';
COMMENT ON COLUMN zoningsync.cases.parcel_ids IS 'Parcel identifiers the case covers.';
COMMENT ON COLUMN zoningsync.cases.address IS 'Site address.';
COMMENT ON COLUMN zoningsync.cases.document_url IS 'URL of the source document.';
COMMENT ON COLUMN zoningsync.cases.document_sha256 IS 'sha256 of the source document when read.';
COMMENT ON COLUMN zoningsync.cases.attrs IS 'Every other published field.';
COMMENT ON COLUMN zoningsync.cases.first_run IS 'Run that first saw the case.';
COMMENT ON COLUMN zoningsync.cases.last_run IS 'Run that last changed the case.';
COMMENT ON COLUMN zoningsync.cases.created_at IS 'When the case was first stored.';
COMMENT ON COLUMN zoningsync.cases.updated_at IS 'When the case last changed.';

CREATE TABLE zoningsync.case_status_history (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    case_id     bigint NOT NULL REFERENCES zoningsync.cases (id),
    old_status  text,
    new_status  text,
    run_id      bigint REFERENCES zoningsync.runs (id),
    changed_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE zoningsync.case_status_history IS 'Every status change of a rezoning case.';
COMMENT ON COLUMN zoningsync.case_status_history.id IS 'Order of the changes.';
COMMENT ON COLUMN zoningsync.case_status_history.case_id IS 'The case.';
COMMENT ON COLUMN zoningsync.case_status_history.old_status IS 'Status before.';
COMMENT ON COLUMN zoningsync.case_status_history.new_status IS 'Status after.';
COMMENT ON COLUMN zoningsync.case_status_history.run_id IS 'Run that saw the change.';
COMMENT ON COLUMN zoningsync.case_status_history.changed_at IS 'When zoningsync saw the change.';

CREATE TABLE zoningsync.quarantine (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    feed         text NOT NULL REFERENCES zoningsync.feeds (id),
    run_id       bigint NOT NULL REFERENCES zoningsync.runs (id),
    source_key   text,
    source_oid   bigint,
    reason       text NOT NULL,
    detail       text NOT NULL DEFAULT '',
    raw          jsonb,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX quarantine_feed_run_idx ON zoningsync.quarantine (feed, run_id);
COMMENT ON TABLE zoningsync.quarantine IS 'One row per upstream record a run rejected, with the reason; nothing is dropped silently.';
COMMENT ON COLUMN zoningsync.quarantine.id IS 'Row id.';
COMMENT ON COLUMN zoningsync.quarantine.feed IS 'Feed id.';
COMMENT ON COLUMN zoningsync.quarantine.run_id IS 'Run that rejected the record.';
COMMENT ON COLUMN zoningsync.quarantine.source_key IS 'Upstream key, when the record had one.';
COMMENT ON COLUMN zoningsync.quarantine.source_oid IS 'Upstream object id at the time.';
COMMENT ON COLUMN zoningsync.quarantine.reason IS 'Why: null_geometry, unrepairable_geometry, non_polygonal_geometry, coordinates_out_of_range, unsupported_curve, unknown_crs, missing_key, duplicate_key, parse_error.';
COMMENT ON COLUMN zoningsync.quarantine.detail IS 'Human-readable detail of the reason.';
COMMENT ON COLUMN zoningsync.quarantine.raw IS 'The record as received upstream.';
COMMENT ON COLUMN zoningsync.quarantine.created_at IS 'When it was rejected.';
