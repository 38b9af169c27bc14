-- Rezoning cases: the case store (issue 10). Case feeds stage a run's cases,
-- then merge them by row hash like features: an unchanged case writes nothing,
-- every change keeps the version it replaced (case_history, an undo log) and
-- the field that moved (case_status_history), and a case missing from a
-- complete read is retired. Documents remember what was read from them, so an
-- unchanged document is neither parsed nor quarantined again. Planners read
-- rezoning_cases: each case with the parcels it names, matched by parcel id or
-- by normalized address. Parcel feeds gain a canonical `address` for that.

-- Parcel addresses -----------------------------------------------------------

ALTER TABLE zoningsync.features ADD COLUMN address text;
ALTER TABLE zoningsync.feature_history ADD COLUMN address text;
ALTER TABLE zoningsync.staged_rows ADD COLUMN address text;
COMMENT ON COLUMN zoningsync.features.address IS
    'Site address as published upstream (the feed''s canonical address field; null when unmapped).';
COMMENT ON COLUMN zoningsync.feature_history.address IS 'Prior version: site address.';
COMMENT ON COLUMN zoningsync.staged_rows.address IS 'Site address.';

-- Matching a case to parcels compares normalized forms on both sides. IMMUTABLE,
-- so the parcels side is an expression index; STRICT, so a null stays null and
-- matches nothing. translate, not a regular expression: the index build after a
-- first load pays it on every parcel.
CREATE FUNCTION zoningsync.normalize_parcel_id(parcel_id text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
SELECT nullif(translate(upper(parcel_id), E' \t\n\r.-', ''), '')
$$;
COMMENT ON FUNCTION zoningsync.normalize_parcel_id(text) IS
    'A parcel id as compared across sources: upper case, without blanks, dashes or dots '
    '(''12-345.6 A'' and ''123456a'' are one id); null when nothing is left.';

-- PL/pgSQL, word by word through a jsonb map: 6 µs an address, where one SQL
-- statement splitting, joining and aggregating the words took 27 µs (100k
-- parcel addresses; the index build after a first load pays it per row).
CREATE FUNCTION zoningsync.normalize_address(address text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
DECLARE
    usps constant jsonb := '{
        "NORTH": "N", "SOUTH": "S", "EAST": "E", "WEST": "W", "NORTHEAST": "NE",
        "NORTHWEST": "NW", "SOUTHEAST": "SE", "SOUTHWEST": "SW",
        "ALLEY": "ALY", "AVENUE": "AVE", "AV": "AVE", "BOULEVARD": "BLVD", "CIRCLE": "CIR",
        "COURT": "CT", "COVE": "CV", "CRESCENT": "CRES", "CROSSING": "XING", "DRIVE": "DR",
        "EXPRESSWAY": "EXPY", "FREEWAY": "FWY", "HIGHWAY": "HWY", "LANE": "LN",
        "PARKWAY": "PKWY", "PLACE": "PL", "PLAZA": "PLZ", "POINT": "PT", "RIDGE": "RDG",
        "ROAD": "RD", "ROUTE": "RTE", "SQUARE": "SQ", "STREET": "ST", "TERRACE": "TER",
        "TRAIL": "TRL"}'::jsonb;  -- typed, so parsed once per session, not per call
    words text[] := string_to_array(btrim(
        regexp_replace(
            regexp_replace(
                replace(upper(address), '''', ''),
                '(#|\m(APT|APARTMENT|UNIT|STE|SUITE|BLDG|BUILDING|FLOOR|RM|ROOM|SPC|SPACE|LOT|TRLR)\M)[.[:space:]]*[A-Z0-9-]*',
                ' ', 'g'),
            '[^A-Z0-9]+', ' ', 'g')), ' ');
BEGIN
    FOR i IN 1 .. coalesce(array_length(words, 1), 0) LOOP
        words[i] := coalesce(usps ->> words[i], words[i]);
    END LOOP;
    RETURN nullif(array_to_string(words, ' '), '');
END
$$;
COMMENT ON FUNCTION zoningsync.normalize_address(text) IS
    'A street address as compared across sources: upper case, apostrophes dropped, unit '
    'markers (#, APT, UNIT, SUITE...) and their designator removed, other punctuation as '
    'blanks, street types and directionals as USPS abbreviations (STREET = ST, NORTH = N); '
    'null when nothing is left.';

-- Only parcels are matched, within their jurisdiction. Built after a first load
-- into an empty table like the other secondary indexes (store/bulk.py).
CREATE INDEX features_parcel_id_norm_idx ON zoningsync.features
    (jurisdiction, zoningsync.normalize_parcel_id(parcel_id)) WHERE kind = 'parcels';
CREATE INDEX features_address_norm_idx ON zoningsync.features
    (jurisdiction, zoningsync.normalize_address(address))
    WHERE kind = 'parcels' AND address IS NOT NULL;

CREATE OR REPLACE VIEW zoningsync.parcels AS
SELECT id, jurisdiction, feed, source_key, parcel_id, zoning_code, zoning_desc, attrs,
       geom, h3, source_edited_at, updated_at, address
FROM zoningsync.features
WHERE kind = 'parcels';
COMMENT ON COLUMN zoningsync.parcels.address IS 'Site address, where the feed maps one.';

-- Cases ---------------------------------------------------------------------

ALTER TABLE zoningsync.cases
    ADD COLUMN case_type text,
    ADD COLUMN acreage double precision,
    ADD COLUMN applicant text,
    ADD COLUMN detail_url text,
    ADD COLUMN pages integer[] NOT NULL DEFAULT '{}',
    ADD COLUMN row_hash bytea NOT NULL DEFAULT '\x'::bytea;
ALTER TABLE zoningsync.cases ALTER COLUMN row_hash DROP DEFAULT;
CREATE INDEX cases_jurisdiction_idx ON zoningsync.cases (jurisdiction);
COMMENT ON COLUMN zoningsync.cases.case_type IS 'Kind of case as published (rezoning, conditional use...).';
COMMENT ON COLUMN zoningsync.cases.acreage IS 'Site area in acres.';
COMMENT ON COLUMN zoningsync.cases.applicant IS 'Applicant or owner named by the case.';
COMMENT ON COLUMN zoningsync.cases.detail_url IS 'URL of the case''s own page on the portal.';
COMMENT ON COLUMN zoningsync.cases.pages IS 'Pages (1-based) of the source document the case was read from.';
COMMENT ON COLUMN zoningsync.cases.row_hash IS
    'sha256 of the case''s content (CaseRecord.row_hash); an equal hash means an unchanged case.';

CREATE UNLOGGED TABLE zoningsync.staged_cases (
    run_id           bigint NOT NULL,
    case_number      text NOT NULL,
    title            text,
    case_type        text,
    status           text,
    status_class     text NOT NULL,
    filed_at         timestamptz,
    hearing_at       timestamptz,
    decided_at       timestamptz,
    from_zoning      text,
    to_zoning        text,
    acreage          double precision,
    address          text,
    applicant        text,
    parcel_ids       text[] NOT NULL,
    detail_url       text,
    document_url     text,
    document_sha256  text,
    pages            integer[] NOT NULL,
    attrs            jsonb NOT NULL,
    row_hash         bytea NOT NULL,
    PRIMARY KEY (run_id, case_number)
);
COMMENT ON TABLE zoningsync.staged_cases IS
    'Cases read by case runs in progress, before they are merged (emptied when a run ends); '
    'a case read twice in a run keeps its later reading.';
COMMENT ON COLUMN zoningsync.staged_cases.run_id IS 'Run that read the case.';
COMMENT ON COLUMN zoningsync.staged_cases.case_number IS 'Case number as published (the key).';
COMMENT ON COLUMN zoningsync.staged_cases.title IS 'Case title or request summary.';
COMMENT ON COLUMN zoningsync.staged_cases.case_type IS 'Kind of case as published.';
COMMENT ON COLUMN zoningsync.staged_cases.status IS 'Status as published.';
COMMENT ON COLUMN zoningsync.staged_cases.status_class IS 'Status normalized: pending, approved, denied, withdrawn or unknown.';
COMMENT ON COLUMN zoningsync.staged_cases.filed_at IS 'When the case was filed.';
COMMENT ON COLUMN zoningsync.staged_cases.hearing_at IS 'Next or last public hearing.';
COMMENT ON COLUMN zoningsync.staged_cases.decided_at IS 'When the case was decided.';
COMMENT ON COLUMN zoningsync.staged_cases.from_zoning IS 'Current zoning of the site.';
COMMENT ON COLUMN zoningsync.staged_cases.to_zoning IS 'Requested zoning.';
COMMENT ON COLUMN zoningsync.staged_cases.acreage IS 'Site area in acres.';
COMMENT ON COLUMN zoningsync.staged_cases.address IS 'Site address.';
COMMENT ON COLUMN zoningsync.staged_cases.applicant IS 'Applicant or owner.';
COMMENT ON COLUMN zoningsync.staged_cases.parcel_ids IS 'Parcel identifiers the case names.';
COMMENT ON COLUMN zoningsync.staged_cases.detail_url IS 'URL of the case''s own page.';
COMMENT ON COLUMN zoningsync.staged_cases.document_url IS 'URL of the source document.';
COMMENT ON COLUMN zoningsync.staged_cases.document_sha256 IS 'sha256 of the source document.';
COMMENT ON COLUMN zoningsync.staged_cases.pages IS 'Pages of the source document the case was read from.';
COMMENT ON COLUMN zoningsync.staged_cases.attrs IS 'Every other extracted field.';
COMMENT ON COLUMN zoningsync.staged_cases.row_hash IS 'Content hash (CaseRecord.row_hash).';

CREATE TABLE zoningsync.case_history (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id           bigint NOT NULL REFERENCES zoningsync.runs (id),
    op               text NOT NULL CHECK (op IN ('insert', 'update', 'retire')),
    feed             text NOT NULL,
    case_number      text NOT NULL,
    recorded_at      timestamptz NOT NULL DEFAULT now(),
    new_row_hash     bytea,
    case_id          bigint,
    jurisdiction     text,
    title            text,
    case_type        text,
    status           text,
    status_class     text,
    filed_at         timestamptz,
    hearing_at       timestamptz,
    decided_at       timestamptz,
    from_zoning      text,
    to_zoning        text,
    acreage          double precision,
    address          text,
    applicant        text,
    parcel_ids       text[],
    detail_url       text,
    document_url     text,
    document_sha256  text,
    pages            integer[],
    attrs            jsonb,
    row_hash         bytea,
    first_run        bigint,
    last_run         bigint,
    created_at       timestamptz,
    updated_at       timestamptz
);
CREATE INDEX case_history_run_idx ON zoningsync.case_history (run_id);
CREATE INDEX case_history_key_idx ON zoningsync.case_history (feed, case_number, id);
COMMENT ON TABLE zoningsync.case_history IS
    'One row per insert, update or retirement of a case, with the whole version it replaced, '
    'so any run''s cases can be restored exactly.';
COMMENT ON COLUMN zoningsync.case_history.id IS 'Order of the changes.';
COMMENT ON COLUMN zoningsync.case_history.run_id IS 'Run that made the change.';
COMMENT ON COLUMN zoningsync.case_history.op IS 'insert (new case), update (content changed) or retire (gone from a complete read).';
COMMENT ON COLUMN zoningsync.case_history.feed IS 'Feed id of the case.';
COMMENT ON COLUMN zoningsync.case_history.case_number IS 'Case number (the key within its feed).';
COMMENT ON COLUMN zoningsync.case_history.recorded_at IS 'When the change was written.';
COMMENT ON COLUMN zoningsync.case_history.new_row_hash IS 'Content hash after the change (null for a retirement).';
COMMENT ON COLUMN zoningsync.case_history.case_id IS 'Prior version: cases.id of the row (null for an insert).';
COMMENT ON COLUMN zoningsync.case_history.jurisdiction IS 'Prior version: jurisdiction id (null for an insert).';
COMMENT ON COLUMN zoningsync.case_history.title IS 'Prior version: title.';
COMMENT ON COLUMN zoningsync.case_history.case_type IS 'Prior version: case type.';
COMMENT ON COLUMN zoningsync.case_history.status IS 'Prior version: status as published.';
COMMENT ON COLUMN zoningsync.case_history.status_class IS 'Prior version: normalized status.';
COMMENT ON COLUMN zoningsync.case_history.filed_at IS 'Prior version: filing date.';
COMMENT ON COLUMN zoningsync.case_history.hearing_at IS 'Prior version: hearing date.';
COMMENT ON COLUMN zoningsync.case_history.decided_at IS 'Prior version: decision date.';
COMMENT ON COLUMN zoningsync.case_history.from_zoning IS 'Prior version: current zoning.';
COMMENT ON COLUMN zoningsync.case_history.to_zoning IS 'Prior version: requested zoning.';
COMMENT ON COLUMN zoningsync.case_history.acreage IS 'Prior version: acreage.';
COMMENT ON COLUMN zoningsync.case_history.address IS 'Prior version: site address.';
COMMENT ON COLUMN zoningsync.case_history.applicant IS 'Prior version: applicant.';
COMMENT ON COLUMN zoningsync.case_history.parcel_ids IS 'Prior version: parcel ids.';
COMMENT ON COLUMN zoningsync.case_history.detail_url IS 'Prior version: case page URL.';
COMMENT ON COLUMN zoningsync.case_history.document_url IS 'Prior version: source document URL.';
COMMENT ON COLUMN zoningsync.case_history.document_sha256 IS 'Prior version: source document sha256.';
COMMENT ON COLUMN zoningsync.case_history.pages IS 'Prior version: document pages.';
COMMENT ON COLUMN zoningsync.case_history.attrs IS 'Prior version: other fields.';
COMMENT ON COLUMN zoningsync.case_history.row_hash IS 'Prior version: content hash.';
COMMENT ON COLUMN zoningsync.case_history.first_run IS 'Prior version: run that first saw the case.';
COMMENT ON COLUMN zoningsync.case_history.last_run IS 'Prior version: run that had last changed it.';
COMMENT ON COLUMN zoningsync.case_history.created_at IS 'Prior version: when the case was first stored.';
COMMENT ON COLUMN zoningsync.case_history.updated_at IS 'Prior version: when it had last changed.';

-- A retired case leaves `cases`; its status history stays, keyed by feed and
-- case number (the id a case had is gone with it).
ALTER TABLE zoningsync.case_status_history
    DROP CONSTRAINT case_status_history_case_id_fkey,
    ADD COLUMN feed text NOT NULL,
    ADD COLUMN case_number text NOT NULL,
    ADD COLUMN field text NOT NULL
        CHECK (field IN ('status', 'hearing_at', 'from_zoning', 'to_zoning')),
    ADD COLUMN old_value text,
    ADD COLUMN new_value text;
CREATE INDEX case_status_history_key_idx ON zoningsync.case_status_history (feed, case_number, id);
CREATE INDEX case_status_history_run_idx ON zoningsync.case_status_history (run_id);
COMMENT ON TABLE zoningsync.case_status_history IS
    'Every change of a case''s status, hearing date or zoning from/to, one row per field, with the run that saw it.';
COMMENT ON COLUMN zoningsync.case_status_history.case_id IS 'cases.id of the case when the change was seen (gone once the case is retired).';
COMMENT ON COLUMN zoningsync.case_status_history.old_status IS 'Status before (status changes only).';
COMMENT ON COLUMN zoningsync.case_status_history.new_status IS 'Status after (status changes only).';
COMMENT ON COLUMN zoningsync.case_status_history.feed IS 'Feed id of the case.';
COMMENT ON COLUMN zoningsync.case_status_history.case_number IS 'Case number (the key within its feed).';
COMMENT ON COLUMN zoningsync.case_status_history.field IS 'Which field changed: status, hearing_at, from_zoning or to_zoning.';
COMMENT ON COLUMN zoningsync.case_status_history.old_value IS 'Value before (dates as ISO-8601 UTC).';
COMMENT ON COLUMN zoningsync.case_status_history.new_value IS 'Value after (dates as ISO-8601 UTC).';

-- Documents -----------------------------------------------------------------

-- Two feeds may read one URL (an agenda listing several jurisdictions' cases);
-- each keeps its own state of it. Nothing wrote documents before this migration.
ALTER TABLE zoningsync.documents
    DROP CONSTRAINT documents_url_key,
    ALTER COLUMN feed SET NOT NULL,
    ADD CONSTRAINT documents_feed_url_key UNIQUE (feed, url),
    ADD COLUMN extracted_cases jsonb,
    ADD COLUMN links jsonb NOT NULL DEFAULT '{}'::jsonb,
    ADD COLUMN quarantine_id bigint REFERENCES zoningsync.quarantine (id) ON DELETE SET NULL,
    ADD COLUMN quarantine_reason text,
    ADD COLUMN quarantine_detail text,
    ADD COLUMN last_run bigint REFERENCES zoningsync.runs (id);
CREATE INDEX documents_quarantine_idx ON zoningsync.documents (quarantine_id)
    WHERE quarantine_id IS NOT NULL;
COMMENT ON COLUMN zoningsync.documents.fetched_at IS 'When a fetch last changed this row (an unchanged answer writes nothing).';
COMMENT ON COLUMN zoningsync.documents.extracted_cases IS
    'The cases read from this content last time (a JSON list of CaseRecord.content()), '
    'carried forward while the document is unchanged.';
COMMENT ON COLUMN zoningsync.documents.links IS
    'What else the content said, for a read that carries it forward unparsed: the next '
    'list page, the PDFs it links, the values a detail page adds.';
COMMENT ON COLUMN zoningsync.documents.quarantine_id IS
    'quarantine row of this content, while the document gives no cases (null otherwise).';
COMMENT ON COLUMN zoningsync.documents.quarantine_reason IS
    'Why this content gave no cases (a DocumentQuarantine code), null when it gave cases.';
COMMENT ON COLUMN zoningsync.documents.quarantine_detail IS 'Human-readable detail of the quarantine reason.';
COMMENT ON COLUMN zoningsync.documents.last_run IS 'Run that last changed this row.';

-- Planner views -------------------------------------------------------------

CREATE VIEW zoningsync.rezoning_cases AS
SELECT c.jurisdiction, c.feed, c.case_number, c.title, c.case_type, c.status, c.status_class,
       c.filed_at, c.hearing_at, c.decided_at, c.from_zoning, c.to_zoning, c.acreage,
       c.address, c.applicant, c.parcel_ids, c.detail_url, c.document_url,
       c.document_sha256, c.pages, c.attrs, c.updated_at,
       matched.geom,
       coalesce(matched.parcel_ids, '{}') AS matched_parcel_ids,
       unmatched.parcel_ids AS unmatched_parcel_ids,
       CASE WHEN matched.parcels = 0 THEN 'none'
            WHEN cardinality(c.parcel_ids) > 0 THEN 'parcel_id'
            ELSE 'address' END AS match_method
FROM zoningsync.cases c
CROSS JOIN LATERAL (
    SELECT coalesce(array_agg(u.parcel_id ORDER BY u.n), '{}') AS parcel_ids
    FROM unnest(c.parcel_ids) WITH ORDINALITY AS u(parcel_id, n)
    WHERE NOT EXISTS (
        SELECT 1 FROM zoningsync.features f
        WHERE f.kind = 'parcels' AND f.jurisdiction = c.jurisdiction
          AND zoningsync.normalize_parcel_id(f.parcel_id)
              = zoningsync.normalize_parcel_id(u.parcel_id))
) AS unmatched
CROSS JOIN LATERAL (
    SELECT ST_Multi(ST_CollectionExtract(ST_Union(p.geom), 3))::geometry(MultiPolygon, 4326)
               AS geom,
           array_agg(DISTINCT p.parcel_id ORDER BY p.parcel_id)
               FILTER (WHERE p.parcel_id IS NOT NULL) AS parcel_ids,
           count(*) AS parcels
    FROM (
        SELECT f.geom, f.parcel_id
        FROM zoningsync.features f
        WHERE f.kind = 'parcels' AND f.jurisdiction = c.jurisdiction
          AND zoningsync.normalize_parcel_id(f.parcel_id) = ANY (ARRAY(
              SELECT zoningsync.normalize_parcel_id(u.parcel_id)
              FROM unnest(c.parcel_ids) AS u(parcel_id)))
        UNION ALL
        SELECT f.geom, f.parcel_id
        FROM zoningsync.features f
        WHERE cardinality(c.parcel_ids) = 0
          AND f.kind = 'parcels' AND f.jurisdiction = c.jurisdiction AND f.address IS NOT NULL
          AND zoningsync.normalize_address(f.address) = zoningsync.normalize_address(c.address)
    ) AS p
) AS matched;
COMMENT ON VIEW zoningsync.rezoning_cases IS
    'Every current rezoning case with the parcels it covers: matched by parcel id (formatting '
    'ignored), or by normalized site address when the case names no parcel id.';
COMMENT ON COLUMN zoningsync.rezoning_cases.jurisdiction IS 'Jurisdiction id.';
COMMENT ON COLUMN zoningsync.rezoning_cases.feed IS 'Feed id the case comes from.';
COMMENT ON COLUMN zoningsync.rezoning_cases.case_number IS 'Case number as published (the key within its feed).';
COMMENT ON COLUMN zoningsync.rezoning_cases.title IS 'Case title or request summary.';
COMMENT ON COLUMN zoningsync.rezoning_cases.case_type IS 'Kind of case as published.';
COMMENT ON COLUMN zoningsync.rezoning_cases.status IS 'Status as published.';
COMMENT ON COLUMN zoningsync.rezoning_cases.status_class IS 'Status normalized: pending, approved, denied, withdrawn or unknown.';
COMMENT ON COLUMN zoningsync.rezoning_cases.filed_at IS 'When filed.';
COMMENT ON COLUMN zoningsync.rezoning_cases.hearing_at IS 'Next or last public hearing.';
COMMENT ON COLUMN zoningsync.rezoning_cases.decided_at IS 'When decided.';
COMMENT ON COLUMN zoningsync.rezoning_cases.from_zoning IS 'Current zoning.';
COMMENT ON COLUMN zoningsync.rezoning_cases.to_zoning IS 'Requested zoning.';
COMMENT ON COLUMN zoningsync.rezoning_cases.acreage IS 'Site area in acres.';
COMMENT ON COLUMN zoningsync.rezoning_cases.address IS 'Site address as published.';
COMMENT ON COLUMN zoningsync.rezoning_cases.applicant IS 'Applicant or owner.';
COMMENT ON COLUMN zoningsync.rezoning_cases.parcel_ids IS 'Parcel ids as the case names them.';
COMMENT ON COLUMN zoningsync.rezoning_cases.detail_url IS 'The case''s own page.';
COMMENT ON COLUMN zoningsync.rezoning_cases.document_url IS 'Source document.';
COMMENT ON COLUMN zoningsync.rezoning_cases.document_sha256 IS 'sha256 of the source document when read.';
COMMENT ON COLUMN zoningsync.rezoning_cases.pages IS 'Pages of the source document the case was read from.';
COMMENT ON COLUMN zoningsync.rezoning_cases.attrs IS 'Every other extracted field.';
COMMENT ON COLUMN zoningsync.rezoning_cases.updated_at IS 'When the case last changed.';
COMMENT ON COLUMN zoningsync.rezoning_cases.geom IS 'Union of the matched parcels (EPSG:4326 MultiPolygon); null when none matched.';
COMMENT ON COLUMN zoningsync.rezoning_cases.matched_parcel_ids IS 'parcel_id of every matched parcel, as the parcels view has it.';
COMMENT ON COLUMN zoningsync.rezoning_cases.unmatched_parcel_ids IS 'The case''s parcel ids that name no parcel of its jurisdiction, as the case names them.';
COMMENT ON COLUMN zoningsync.rezoning_cases.match_method IS 'How parcels were found: parcel_id, address, or none.';

CREATE OR REPLACE VIEW zoningsync.pending_cases AS
SELECT c.id, r.jurisdiction, r.feed, r.case_number, r.title, r.status, r.filed_at,
       r.hearing_at, r.from_zoning, r.to_zoning, r.parcel_ids, r.address, r.document_url,
       r.updated_at, r.case_type, r.status_class, r.decided_at, r.acreage, r.applicant,
       r.detail_url, r.document_sha256, r.pages, r.attrs, r.geom, r.matched_parcel_ids,
       r.unmatched_parcel_ids, r.match_method
FROM zoningsync.rezoning_cases r
JOIN zoningsync.cases c ON c.feed = r.feed AND c.case_number = r.case_number
WHERE r.status_class = 'pending';
COMMENT ON VIEW zoningsync.pending_cases IS 'Rezoning cases not yet decided: the pending rows of rezoning_cases.';
COMMENT ON COLUMN zoningsync.pending_cases.case_type IS 'Kind of case as published.';
COMMENT ON COLUMN zoningsync.pending_cases.status_class IS 'Status normalized (always pending here).';
COMMENT ON COLUMN zoningsync.pending_cases.decided_at IS 'When decided (a pending case may carry an earlier decision date).';
COMMENT ON COLUMN zoningsync.pending_cases.acreage IS 'Site area in acres.';
COMMENT ON COLUMN zoningsync.pending_cases.applicant IS 'Applicant or owner.';
COMMENT ON COLUMN zoningsync.pending_cases.detail_url IS 'The case''s own page.';
COMMENT ON COLUMN zoningsync.pending_cases.document_sha256 IS 'sha256 of the source document when read.';
COMMENT ON COLUMN zoningsync.pending_cases.pages IS 'Pages of the source document the case was read from.';
COMMENT ON COLUMN zoningsync.pending_cases.attrs IS 'Every other extracted field.';
COMMENT ON COLUMN zoningsync.pending_cases.geom IS 'Union of the matched parcels (EPSG:4326 MultiPolygon); null when none matched.';
COMMENT ON COLUMN zoningsync.pending_cases.matched_parcel_ids IS 'parcel_id of every matched parcel.';
COMMENT ON COLUMN zoningsync.pending_cases.unmatched_parcel_ids IS 'The case''s parcel ids that name no parcel.';
COMMENT ON COLUMN zoningsync.pending_cases.match_method IS 'How parcels were found: parcel_id, address, or none.';

-- Roles ---------------------------------------------------------------------

GRANT SELECT ON zoningsync.rezoning_cases TO zoningsync_reader;
GRANT SELECT ON zoningsync.rezoning_cases TO zoningsync_writer;
GRANT SELECT, INSERT, UPDATE, DELETE ON zoningsync.staged_cases, zoningsync.case_history
    TO zoningsync_writer;
GRANT USAGE, SELECT ON SEQUENCE zoningsync.case_history_id_seq TO zoningsync_writer;
GRANT TRUNCATE ON zoningsync.staged_cases, zoningsync.case_history TO zoningsync_admin;
