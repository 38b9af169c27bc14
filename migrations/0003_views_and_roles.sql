-- What planners read, and who may read or write what. Roles are cluster-wide:
-- they are created only when absent, so many zoningsync databases can share a
-- cluster and two migrations racing on different databases both succeed.

CREATE VIEW zoningsync.parcels AS
SELECT id, jurisdiction, feed, source_key, parcel_id, zoning_code, zoning_desc, attrs,
       geom, h3, source_edited_at, updated_at
FROM zoningsync.features
WHERE kind = 'parcels';
COMMENT ON VIEW zoningsync.parcels IS 'Current parcels with their zoning, one row per parcel.';
COMMENT ON COLUMN zoningsync.parcels.id IS 'Row id (stable while the parcel exists).';
COMMENT ON COLUMN zoningsync.parcels.jurisdiction IS 'Jurisdiction id (e.g. wake-county-nc).';
COMMENT ON COLUMN zoningsync.parcels.feed IS 'Feed id (jurisdiction/feed).';
COMMENT ON COLUMN zoningsync.parcels.source_key IS 'Upstream key of the parcel.';
COMMENT ON COLUMN zoningsync.parcels.parcel_id IS 'Parcel identifier (PIN/APN).';
COMMENT ON COLUMN zoningsync.parcels.zoning_code IS 'Zoning district code.';
COMMENT ON COLUMN zoningsync.parcels.zoning_desc IS 'Zoning district description.';
COMMENT ON COLUMN zoningsync.parcels.attrs IS 'Every other upstream attribute.';
COMMENT ON COLUMN zoningsync.parcels.geom IS 'Parcel footprint, EPSG:4326 MultiPolygon.';
COMMENT ON COLUMN zoningsync.parcels.h3 IS 'H3 cell of a point on the parcel.';
COMMENT ON COLUMN zoningsync.parcels.source_edited_at IS 'Upstream edit date.';
COMMENT ON COLUMN zoningsync.parcels.updated_at IS 'When zoningsync last saw the parcel change.';

CREATE VIEW zoningsync.zoning_districts AS
SELECT id, jurisdiction, feed, source_key, parcel_id, zoning_code, zoning_desc, attrs,
       geom, h3, source_edited_at, updated_at
FROM zoningsync.features
WHERE kind = 'zoning_districts';
COMMENT ON VIEW zoningsync.zoning_districts IS 'Current zoning district polygons.';
COMMENT ON COLUMN zoningsync.zoning_districts.id IS 'Row id (stable while the district exists).';
COMMENT ON COLUMN zoningsync.zoning_districts.jurisdiction IS 'Jurisdiction id.';
COMMENT ON COLUMN zoningsync.zoning_districts.feed IS 'Feed id (jurisdiction/feed).';
COMMENT ON COLUMN zoningsync.zoning_districts.source_key IS 'Upstream key of the district.';
COMMENT ON COLUMN zoningsync.zoning_districts.parcel_id IS 'Parcel identifier, where the layer carries one (usually null).';
COMMENT ON COLUMN zoningsync.zoning_districts.zoning_code IS 'Zoning district code.';
COMMENT ON COLUMN zoningsync.zoning_districts.zoning_desc IS 'Zoning district description.';
COMMENT ON COLUMN zoningsync.zoning_districts.attrs IS 'Every other upstream attribute.';
COMMENT ON COLUMN zoningsync.zoning_districts.geom IS 'District polygon, EPSG:4326 MultiPolygon.';
COMMENT ON COLUMN zoningsync.zoning_districts.h3 IS 'H3 cell of a point on the district.';
COMMENT ON COLUMN zoningsync.zoning_districts.source_edited_at IS 'Upstream edit date.';
COMMENT ON COLUMN zoningsync.zoning_districts.updated_at IS 'When zoningsync last saw the district change.';

CREATE VIEW zoningsync.zoning_changes_recent AS
SELECT c.id, c.jurisdiction, c.feed, c.kind, c.source_key, c.parcel_id, c.old_code,
       c.new_code, c.detected_at, c.run_id, c.geom
FROM zoningsync.zoning_changes AS c
JOIN zoningsync.runs AS r ON r.id = c.run_id
WHERE c.detected_at > now() - interval '90 days' AND r.status <> 'rolled_back';
COMMENT ON VIEW zoningsync.zoning_changes_recent IS 'Zoning code changes seen in the last 90 days (rolled-back runs excluded).';
COMMENT ON COLUMN zoningsync.zoning_changes_recent.id IS 'Event id.';
COMMENT ON COLUMN zoningsync.zoning_changes_recent.jurisdiction IS 'Jurisdiction id.';
COMMENT ON COLUMN zoningsync.zoning_changes_recent.feed IS 'Feed id.';
COMMENT ON COLUMN zoningsync.zoning_changes_recent.kind IS 'parcels or zoning_districts.';
COMMENT ON COLUMN zoningsync.zoning_changes_recent.source_key IS 'Upstream key of the feature.';
COMMENT ON COLUMN zoningsync.zoning_changes_recent.parcel_id IS 'Parcel identifier.';
COMMENT ON COLUMN zoningsync.zoning_changes_recent.old_code IS 'Zoning code before.';
COMMENT ON COLUMN zoningsync.zoning_changes_recent.new_code IS 'Zoning code after.';
COMMENT ON COLUMN zoningsync.zoning_changes_recent.detected_at IS 'When zoningsync saw the change.';
COMMENT ON COLUMN zoningsync.zoning_changes_recent.run_id IS 'Run that saw it.';
COMMENT ON COLUMN zoningsync.zoning_changes_recent.geom IS 'Footprint after the change (EPSG:4326).';

CREATE VIEW zoningsync.pending_cases AS
SELECT id, jurisdiction, feed, case_number, title, status, filed_at, hearing_at,
       from_zoning, to_zoning, parcel_ids, address, document_url, updated_at
FROM zoningsync.cases
WHERE status_class = 'pending';
COMMENT ON VIEW zoningsync.pending_cases IS 'Rezoning cases not yet decided.';
COMMENT ON COLUMN zoningsync.pending_cases.id IS 'Case row id.';
COMMENT ON COLUMN zoningsync.pending_cases.jurisdiction IS 'Jurisdiction id.';
COMMENT ON COLUMN zoningsync.pending_cases.feed IS 'Feed id.';
COMMENT ON COLUMN zoningsync.pending_cases.case_number IS 'Case number as published.';
COMMENT ON COLUMN zoningsync.pending_cases.title IS 'Case title or request summary.';
COMMENT ON COLUMN zoningsync.pending_cases.status IS 'Status as published.';
COMMENT ON COLUMN zoningsync.pending_cases.filed_at IS 'When filed.';
COMMENT ON COLUMN zoningsync.pending_cases.hearing_at IS 'Next public hearing.';
COMMENT ON COLUMN zoningsync.pending_cases.from_zoning IS 'Current zoning.';
COMMENT ON COLUMN zoningsync.pending_cases.to_zoning IS 'Requested zoning.';
COMMENT ON COLUMN zoningsync.pending_cases.parcel_ids IS 'Parcels the case covers.';
COMMENT ON COLUMN zoningsync.pending_cases.address IS 'Site address.';
COMMENT ON COLUMN zoningsync.pending_cases.document_url IS 'Source document.';
COMMENT ON COLUMN zoningsync.pending_cases.updated_at IS 'When the case last changed.';

DO $$
DECLARE
    role_name text;
BEGIN
    FOREACH role_name IN ARRAY ARRAY['zoningsync_reader', 'zoningsync_writer', 'zoningsync_admin']
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = role_name) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', role_name);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;  -- another database's migration created it a moment ago
            END;
        END IF;
    END LOOP;
END
$$;

GRANT USAGE ON SCHEMA zoningsync TO zoningsync_reader, zoningsync_writer, zoningsync_admin;
GRANT SELECT ON zoningsync.parcels, zoningsync.zoning_districts, zoningsync.zoning_changes_recent,
                zoningsync.pending_cases
    TO zoningsync_reader;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA zoningsync TO zoningsync_writer;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA zoningsync TO zoningsync_writer;
GRANT zoningsync_writer TO zoningsync_admin;
GRANT TRUNCATE ON ALL TABLES IN SCHEMA zoningsync TO zoningsync_admin;
