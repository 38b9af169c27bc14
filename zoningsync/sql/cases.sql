-- Queries of zoningsync.store.cases: staging, planning and merging a case run's
-- cases, and the documents they were read from.
-- $1 is the run id and $2 the feed id wherever both appear.

-- name: create_case_scratch
-- One batch of cases, COPYed here first: COPY cannot replace a case the run
-- staged already, the INSERT below can.
CREATE TEMP TABLE case_scratch (LIKE zoningsync.staged_cases) ON COMMIT DROP;

-- name: stage_case_scratch
INSERT INTO zoningsync.staged_cases AS s
SELECT * FROM case_scratch
ON CONFLICT (run_id, case_number) DO UPDATE
SET title = EXCLUDED.title, case_type = EXCLUDED.case_type, status = EXCLUDED.status,
    status_class = EXCLUDED.status_class, filed_at = EXCLUDED.filed_at,
    hearing_at = EXCLUDED.hearing_at, decided_at = EXCLUDED.decided_at,
    from_zoning = EXCLUDED.from_zoning, to_zoning = EXCLUDED.to_zoning,
    acreage = EXCLUDED.acreage, address = EXCLUDED.address, applicant = EXCLUDED.applicant,
    parcel_ids = EXCLUDED.parcel_ids, detail_url = EXCLUDED.detail_url,
    document_url = EXCLUDED.document_url, document_sha256 = EXCLUDED.document_sha256,
    pages = EXCLUDED.pages, attrs = EXCLUDED.attrs, row_hash = EXCLUDED.row_hash;

-- name: clear_case_staging
-- This run's staged cases ($1), and those of the feed's ($2) runs closed for good
-- (held, cancelled for changed settings, abandoned as stale): the shared run
-- lifecycle drops the spatial staging of those, and case staging is only ours.
DELETE FROM zoningsync.staged_cases s
USING zoningsync.runs r
WHERE r.id = s.run_id AND r.feed = $2 AND (r.id = $1 OR r.phase = 'done');

-- name: plan_case_merge
-- What merge_cases would write ($3: the read was complete, so absent cases retire).
SELECT count(*) FILTER (WHERE c.id IS NULL) AS inserting,
       count(*) FILTER (WHERE c.row_hash <> s.row_hash) AS updating,
       count(*) FILTER (WHERE c.row_hash = s.row_hash) AS unchanged,
       CASE WHEN $3::boolean THEN (
           SELECT count(*) FROM zoningsync.cases k
           WHERE k.feed = $2
             AND NOT EXISTS (SELECT 1 FROM zoningsync.staged_cases t
                             WHERE t.run_id = $1 AND t.case_number = k.case_number))
       ELSE 0 END AS retiring,
       (SELECT count(*) FROM zoningsync.cases k WHERE k.feed = $2) AS current
FROM zoningsync.staged_cases s
LEFT JOIN zoningsync.cases c ON c.feed = $2 AND c.case_number = s.case_number
WHERE s.run_id = $1;

-- name: merge_cases_upsert
-- Insert new cases and update changed ones ($3 the jurisdiction); history for
-- every insert and update (with the replaced version), and one status-history
-- row per watched field that moved. All sub-statements see one snapshot, so
-- `old` holds the versions replaced, and a case not in it is an insert (the
-- system column xmax, which told them apart before, is not returned from an
-- upsert into a partitioned table).
WITH src AS (
    SELECT s.* FROM zoningsync.staged_cases s
    WHERE s.run_id = $1
      AND NOT EXISTS (SELECT 1 FROM zoningsync.cases c
                      WHERE c.feed = $2 AND c.case_number = s.case_number
                        AND c.row_hash = s.row_hash)
), old AS (
    SELECT c.* FROM zoningsync.cases c
    JOIN src s ON c.feed = $2 AND c.case_number = s.case_number
), upserted AS (
    INSERT INTO zoningsync.cases AS c
        (feed, jurisdiction, case_number, title, case_type, status, status_class, filed_at,
         hearing_at, decided_at, from_zoning, to_zoning, acreage, address, applicant,
         parcel_ids, detail_url, document_url, document_sha256, pages, attrs, row_hash,
         first_run, last_run)
    SELECT $2, $3, s.case_number, s.title, s.case_type, s.status, s.status_class, s.filed_at,
           s.hearing_at, s.decided_at, s.from_zoning, s.to_zoning, s.acreage, s.address,
           s.applicant, s.parcel_ids, s.detail_url, s.document_url, s.document_sha256,
           s.pages, s.attrs, s.row_hash, $1, $1
    FROM src s
    ON CONFLICT (feed, case_number) DO UPDATE
    SET jurisdiction = EXCLUDED.jurisdiction, title = EXCLUDED.title,
        case_type = EXCLUDED.case_type, status = EXCLUDED.status,
        status_class = EXCLUDED.status_class, filed_at = EXCLUDED.filed_at,
        hearing_at = EXCLUDED.hearing_at, decided_at = EXCLUDED.decided_at,
        from_zoning = EXCLUDED.from_zoning, to_zoning = EXCLUDED.to_zoning,
        acreage = EXCLUDED.acreage, address = EXCLUDED.address,
        applicant = EXCLUDED.applicant, parcel_ids = EXCLUDED.parcel_ids,
        detail_url = EXCLUDED.detail_url, document_url = EXCLUDED.document_url,
        document_sha256 = EXCLUDED.document_sha256, pages = EXCLUDED.pages,
        attrs = EXCLUDED.attrs, row_hash = EXCLUDED.row_hash, last_run = EXCLUDED.last_run,
        updated_at = now()
    WHERE c.row_hash IS DISTINCT FROM EXCLUDED.row_hash
    RETURNING c.id, c.case_number, c.row_hash
), history AS (
    INSERT INTO zoningsync.case_history
        (run_id, op, feed, case_number, new_row_hash, case_id, jurisdiction, title, case_type,
         status, status_class, filed_at, hearing_at, decided_at, from_zoning, to_zoning,
         acreage, address, applicant, parcel_ids, detail_url, document_url, document_sha256,
         pages, attrs, row_hash, first_run, last_run, created_at, updated_at)
    SELECT $1, 'update', $2, o.case_number, u.row_hash, o.id, o.jurisdiction, o.title,
           o.case_type, o.status, o.status_class, o.filed_at, o.hearing_at, o.decided_at,
           o.from_zoning, o.to_zoning, o.acreage, o.address, o.applicant, o.parcel_ids,
           o.detail_url, o.document_url, o.document_sha256, o.pages, o.attrs, o.row_hash,
           o.first_run, o.last_run, o.created_at, o.updated_at
    FROM old o JOIN upserted u ON u.case_number = o.case_number
    UNION ALL
    SELECT $1, 'insert', $2, u.case_number, u.row_hash, NULL, NULL, NULL, NULL, NULL, NULL,
           NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
           NULL, NULL, NULL, NULL, NULL, NULL
    FROM upserted u
    WHERE NOT EXISTS (SELECT 1 FROM old o WHERE o.case_number = u.case_number)
    RETURNING op
), moved AS (
    INSERT INTO zoningsync.case_status_history
        (case_id, feed, case_number, field, old_value, new_value, old_status, new_status,
         run_id)
    SELECT u.id, $2, o.case_number, m.field, m.old_value, m.new_value,
           CASE WHEN m.field = 'status' THEN m.old_value END,
           CASE WHEN m.field = 'status' THEN m.new_value END, $1
    FROM old o
    JOIN upserted u ON u.case_number = o.case_number
    JOIN src s ON s.case_number = o.case_number
    CROSS JOIN LATERAL (VALUES
        ('status', o.status, s.status),
        ('hearing_at',
         to_char(o.hearing_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
         to_char(s.hearing_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')),
        ('from_zoning', o.from_zoning, s.from_zoning),
        ('to_zoning', o.to_zoning, s.to_zoning)
    ) AS m(field, old_value, new_value)
    WHERE m.old_value IS DISTINCT FROM m.new_value
    RETURNING 1
)
SELECT (SELECT count(*) FROM history WHERE op = 'insert') AS inserted,
       (SELECT count(*) FROM history WHERE op = 'update') AS updated,
       (SELECT count(*) FROM moved) AS moved;

-- name: absent_cases
-- After a complete read: the feed's cases it did not stage are gone upstream.
SELECT c.case_number FROM zoningsync.cases c
WHERE c.feed = $2
  AND NOT EXISTS (SELECT 1 FROM zoningsync.staged_cases s
                  WHERE s.run_id = $1 AND s.case_number = c.case_number);

-- name: retire_cases
-- Retired by run $1 (a sync, or a rollback undoing an insert): each case's last
-- version goes to history, where a later rollback can restore it from.
WITH gone AS (
    DELETE FROM zoningsync.cases c
    WHERE c.feed = $2 AND c.case_number = ANY($3::text[])
    RETURNING c.*
), history AS (
    INSERT INTO zoningsync.case_history
        (run_id, op, feed, case_number, new_row_hash, case_id, jurisdiction, title, case_type,
         status, status_class, filed_at, hearing_at, decided_at, from_zoning, to_zoning,
         acreage, address, applicant, parcel_ids, detail_url, document_url, document_sha256,
         pages, attrs, row_hash, first_run, last_run, created_at, updated_at)
    SELECT $1, 'retire', $2, g.case_number, NULL, g.id, g.jurisdiction, g.title, g.case_type,
           g.status, g.status_class, g.filed_at, g.hearing_at, g.decided_at, g.from_zoning,
           g.to_zoning, g.acreage, g.address, g.applicant, g.parcel_ids, g.detail_url,
           g.document_url, g.document_sha256, g.pages, g.attrs, g.row_hash, g.first_run,
           g.last_run, g.created_at, g.updated_at
    FROM gone g
    RETURNING 1
)
SELECT count(*) FROM history;

-- name: count_staged_cases
SELECT count(*) FROM zoningsync.staged_cases WHERE run_id = $1;

-- name: document_state
SELECT d.etag, d.last_modified, d.sha256, d.size, d.content_type, d.fetched_at,
       d.changed_at, d.extracted_cases, d.quarantine_id, d.quarantine_reason,
       d.quarantine_detail, d.last_run, d.links
FROM zoningsync.documents d
WHERE d.feed = $1 AND d.url = $2;

-- name: lock_document
-- Two sessions saving one document take turns, so a quarantined content gets
-- one quarantine row.
SELECT pg_advisory_xact_lock(hashtext('zoningsync.documents'), hashtext($1 || ' ' || $2));

-- name: quarantine_document
INSERT INTO zoningsync.quarantine (feed, run_id, source_key, reason, detail, raw)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING id;

-- name: save_document
-- An answer that changes nothing of the row writes nothing; changed_at moves
-- only when the content (sha256) does.
INSERT INTO zoningsync.documents AS d
    (feed, url, etag, last_modified, sha256, size, content_type, extracted_cases,
     quarantine_id, quarantine_reason, quarantine_detail, last_run, links, fetched_at,
     changed_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, now(), now())
ON CONFLICT (feed, url) DO UPDATE
SET etag = EXCLUDED.etag, last_modified = EXCLUDED.last_modified, sha256 = EXCLUDED.sha256,
    size = EXCLUDED.size, content_type = EXCLUDED.content_type,
    extracted_cases = EXCLUDED.extracted_cases, quarantine_id = EXCLUDED.quarantine_id,
    quarantine_reason = EXCLUDED.quarantine_reason,
    quarantine_detail = EXCLUDED.quarantine_detail, last_run = EXCLUDED.last_run,
    links = EXCLUDED.links, fetched_at = now(),
    changed_at = CASE WHEN d.sha256 IS DISTINCT FROM EXCLUDED.sha256 THEN now()
                      ELSE d.changed_at END
WHERE (d.etag, d.last_modified, d.sha256, d.size, d.content_type, d.extracted_cases,
       d.quarantine_id, d.quarantine_reason, d.quarantine_detail, d.links)
      IS DISTINCT FROM
      (EXCLUDED.etag, EXCLUDED.last_modified, EXCLUDED.sha256, EXCLUDED.size,
       EXCLUDED.content_type, EXCLUDED.extracted_cases, EXCLUDED.quarantine_id,
       EXCLUDED.quarantine_reason, EXCLUDED.quarantine_detail, EXCLUDED.links);

-- name: set_cases_fetched
-- A case run's fetched: the cases it read (combined by number, as staged).
UPDATE zoningsync.runs SET fetched = $2 WHERE id = $1;

-- name: add_case_merge_stats
UPDATE zoningsync.runs
SET inserted = inserted + $2, updated = updated + $3, retired = retired + $4
WHERE id = $1;

-- name: count_cases
SELECT count(*) FROM zoningsync.cases WHERE feed = $1;

-- name: quarantine_case_rows
-- Rows of a document that could not become cases (no case number, unreadable
-- values): one quarantine row each, keyed by the document they came from.
INSERT INTO zoningsync.quarantine (feed, run_id, source_key, reason, detail, raw)
SELECT $1, $2, $3, r.reason, r.detail, r.raw
FROM unnest($4::text[], $5::text[], $6::jsonb[]) AS r (reason, detail, raw);

-- name: add_quarantined
UPDATE zoningsync.runs SET quarantined = quarantined + $2 WHERE id = $1;
