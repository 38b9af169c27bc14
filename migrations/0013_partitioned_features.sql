-- features and feature_history partitioned by feed, and every unique key of a
-- table that has a feed column made to include it (issue 11: the schema that
-- holds the nation, and that Citus could distribute by feed as it is).
--
-- PARTITION BY HASH (feed) into 16 partitions each. Every statement a run sends
-- names its feed (`feed = $2`), so it touches one partition; hash rather than
-- LIST by feed because a partition per feed is 6,200 partitions x 8 indexes,
-- which every planner query across counties would have to plan. 16 keeps the
-- relations few (planning a query over all feeds stays cheap) while a national
-- load (155 M parcels, docs/scaling.md) leaves each partition near 10 M rows,
-- small enough for autovacuum, ANALYZE and an index build to take one partition
-- at a time. The modulus is fixed here: changing it means moving every row, so
-- a bigger deployment would add a migration that splits each partition in two
-- (hash partitions with modulus 32 whose remainders r and r + 16 cover r).
--
-- Keys. A partitioned table's primary and unique keys must include the
-- partition column, which is also Citus's rule for a distribution column:
--   features         PK (feed, source_key), as before. UNIQUE (id) goes: nothing
--                    references features.id, rollback restores ids from history;
--                    a plain index on id stays for GIS clients that fetch a row
--                    by it (QGIS keys the parcels view on id). id stays an
--                    identity (GENERATED ALWAYS), which is what keeps it unique.
--   feature_history  PK (feed, id) instead of (id).
--   checkpoint_history, zoning_changes, case_history, case_status_history,
--   cases, documents: PK (feed, id) instead of (id); no foreign key and no
--                    ON CONFLICT names their id, and nothing looks them up by id
--                    alone (cases and documents keep UNIQUE (feed, case_number)
--                    and (feed, url), the conflict targets of their upserts).
-- Stays as it is:
--   runs             PK (id): every run_id foreign key (chunk_checkpoints,
--                    zoning_changes, documents, cases, quarantine, case_history,
--                    case_status_history, admin_actions) names runs (id) alone.
--   quarantine       PK (id): documents.quarantine_id references it (ON DELETE
--                    SET NULL), and `quarantine show/retry/resolve ID` look a row
--                    up by id alone.
--   feeds, schedules, feature_oids, chunk_checkpoints: their keys are or
--                    include the feed already; admin_actions and staging have no
--                    feed column (staging is keyed by run).
--
-- Existing rows and history move across unchanged (ids included), and the
-- identity continues from where the old sequence stood, so an id a retirement
-- freed is never given to another feature (a rollback puts it back). The views
-- over these tables are dropped and created again from their own definitions,
-- comments and grants, as the database holds them; a view that is not
-- zoningsync's own depending on these tables makes the migration fail (nothing
-- applied) rather than be dropped. The tables' comments and grants are copied
-- the same way, from the catalog, so they are exactly what 0001-0012 left.

-- What the owner granted on a relation, granted on another ('TABLE' or 'SEQUENCE'),
-- and the column comments of one relation put on another (columns matched by name).
-- Session-local: gone when the migration's session ends.
CREATE FUNCTION pg_temp.copy_grants(source regclass, target regclass, kind text)
    RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    grant_row record;
BEGIN
    FOR grant_row IN
        SELECT a.privilege_type, r.rolname
        FROM pg_class c, aclexplode(c.relacl) a
        JOIN pg_roles r ON r.oid = a.grantee
        WHERE c.oid = source AND a.grantee <> c.relowner
    LOOP
        EXECUTE format('GRANT %s ON %s %s TO %I', grant_row.privilege_type, kind, target,
                       grant_row.rolname);
    END LOOP;
END
$$;

CREATE FUNCTION pg_temp.copy_column_comments(source regclass, target regclass)
    RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    column_row record;
BEGIN
    FOR column_row IN
        SELECT a.attname, col_description(source, a.attnum) AS comment
        FROM pg_attribute a
        WHERE a.attrelid = source AND a.attnum > 0 AND NOT a.attisdropped
    LOOP
        EXECUTE format('COMMENT ON COLUMN %s.%I IS %L', target, column_row.attname,
                       column_row.comment);
    END LOOP;
END
$$;

-- The views over features and feature_history, in the order they are built
-- (pending_cases reads rezoning_cases), saved as the database holds them.
CREATE TEMPORARY TABLE saved_views ON COMMIT DROP AS
SELECT v.position, v.name, pg_get_viewdef(c.oid) AS definition,
       obj_description(c.oid, 'pg_class') AS comment, c.oid AS old_oid,
       (SELECT coalesce(jsonb_agg(jsonb_build_array(a.privilege_type, r.rolname)), '[]')
        FROM aclexplode(c.relacl) a JOIN pg_roles r ON r.oid = a.grantee
        WHERE a.grantee <> c.relowner) AS grants
FROM unnest(ARRAY['parcels', 'zoning_districts', 'parcel_history', 'rezoning_cases',
                  'pending_cases']) WITH ORDINALITY AS v(name, position)
JOIN pg_class c ON c.relname = v.name AND c.relkind = 'v'
JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'zoningsync';
CREATE TEMPORARY TABLE saved_view_columns ON COMMIT DROP AS
SELECT v.name, a.attname, col_description(v.old_oid, a.attnum) AS comment
FROM saved_views v
JOIN pg_attribute a ON a.attrelid = v.old_oid AND a.attnum > 0 AND NOT a.attisdropped;

DROP VIEW zoningsync.pending_cases, zoningsync.rezoning_cases, zoningsync.parcel_history,
          zoningsync.parcels, zoningsync.zoning_districts;

-- The tables, as partitioned ones ---------------------------------------------

ALTER TABLE zoningsync.features RENAME TO features_0012;
ALTER TABLE zoningsync.feature_history RENAME TO feature_history_0012;

CREATE TABLE zoningsync.features (
    id                bigint GENERATED ALWAYS AS IDENTITY,
    feed              text NOT NULL,
    source_key        text NOT NULL,
    jurisdiction      text NOT NULL,
    kind              text NOT NULL CONSTRAINT features_kind_check
                      CHECK (kind IN ('parcels', 'zoning_districts')),
    parcel_id         text,
    zoning_code       text,
    zoning_desc       text,
    attrs             jsonb NOT NULL DEFAULT '{}'::jsonb,
    geom              geometry(MultiPolygon, 4326) NOT NULL,
    h3                text NOT NULL,
    row_hash          bytea NOT NULL,
    source_edited_at  timestamptz,
    first_run         bigint NOT NULL,
    last_run          bigint NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    address           text
) PARTITION BY HASH (feed);

CREATE TABLE zoningsync.feature_history (
    id                bigint GENERATED ALWAYS AS IDENTITY,
    run_id            bigint NOT NULL,
    op                text NOT NULL CONSTRAINT feature_history_op_check
                      CHECK (op IN ('insert', 'update', 'retire')),
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
    updated_at        timestamptz,
    address           text,
    feature_id        bigint,
    created_at        timestamptz
) PARTITION BY HASH (feed);

DO $$
DECLARE
    parent text;
    partition_name text;
BEGIN
    FOREACH parent IN ARRAY ARRAY['features', 'feature_history'] LOOP
        FOR remainder IN 0 .. 15 LOOP
            partition_name := format('%s_p%s', parent, lpad(remainder::text, 2, '0'));
            EXECUTE format('CREATE TABLE zoningsync.%I PARTITION OF zoningsync.%I'
                           ' FOR VALUES WITH (MODULUS 16, REMAINDER %s)',
                           partition_name, parent, remainder);
            EXECUTE format('COMMENT ON TABLE zoningsync.%I IS %L', partition_name,
                           format('Partition %s of 16 of %s: the rows whose feed hashes to %s '
                                  '(read and write them through %s).',
                                  remainder, parent, remainder, parent));
            PERFORM pg_temp.copy_column_comments(format('zoningsync.%s_0012', parent)::regclass,
                                                 format('zoningsync.%I', partition_name)::regclass);
            -- LOCK and TRUNCATE of the parent check the partitions' grants too.
            PERFORM pg_temp.copy_grants(format('zoningsync.%s_0012', parent)::regclass,
                                        format('zoningsync.%I', partition_name)::regclass,
                                        'TABLE');
        END LOOP;
    END LOOP;
END
$$;

-- The rows, ids included; each identity goes on from where the old one stood.
INSERT INTO zoningsync.features OVERRIDING SYSTEM VALUE SELECT * FROM zoningsync.features_0012;
INSERT INTO zoningsync.feature_history OVERRIDING SYSTEM VALUE
SELECT * FROM zoningsync.feature_history_0012;
SELECT setval(pg_get_serial_sequence('zoningsync.features', 'id'), last_value, is_called)
FROM zoningsync.features_id_seq;
SELECT setval(pg_get_serial_sequence('zoningsync.feature_history', 'id'), last_value, is_called)
FROM zoningsync.feature_history_id_seq;

SELECT pg_temp.copy_grants('zoningsync.features_0012', 'zoningsync.features', 'TABLE'),
       pg_temp.copy_grants('zoningsync.feature_history_0012', 'zoningsync.feature_history',
                           'TABLE'),
       pg_temp.copy_grants('zoningsync.features_id_seq',
                           pg_get_serial_sequence('zoningsync.features', 'id')::regclass,
                           'SEQUENCE'),
       pg_temp.copy_grants('zoningsync.feature_history_id_seq',
                           pg_get_serial_sequence('zoningsync.feature_history', 'id')::regclass,
                           'SEQUENCE'),
       pg_temp.copy_column_comments('zoningsync.features_0012', 'zoningsync.features'),
       pg_temp.copy_column_comments('zoningsync.feature_history_0012',
                                    'zoningsync.feature_history');
DO $$
BEGIN
    EXECUTE format('COMMENT ON TABLE zoningsync.features IS %L',
                   obj_description('zoningsync.features_0012'::regclass, 'pg_class'));
    EXECUTE format('COMMENT ON TABLE zoningsync.feature_history IS %L',
                   obj_description('zoningsync.feature_history_0012'::regclass, 'pg_class'));
END
$$;

DROP TABLE zoningsync.features_0012, zoningsync.feature_history_0012;

-- The identity sequences take back the names they had.
DO $$
BEGIN
    EXECUTE format('ALTER SEQUENCE %s RENAME TO features_id_seq',
                   pg_get_serial_sequence('zoningsync.features', 'id'));
    EXECUTE format('ALTER SEQUENCE %s RENAME TO feature_history_id_seq',
                   pg_get_serial_sequence('zoningsync.feature_history', 'id'));
END
$$;

-- Keys and indexes, built once over the moved rows. The secondary indexes of
-- features are those store/bulk.py drops for a first load into an empty table.
ALTER TABLE zoningsync.features ADD CONSTRAINT features_pkey PRIMARY KEY (feed, source_key);
CREATE INDEX features_id_idx ON zoningsync.features (id);
CREATE INDEX features_geom_idx ON zoningsync.features USING gist (geom);
CREATE INDEX features_feed_h3_idx ON zoningsync.features (feed, h3);
CREATE INDEX features_parcel_id_idx ON zoningsync.features (parcel_id);
CREATE INDEX features_zoning_code_idx ON zoningsync.features (zoning_code);
CREATE INDEX features_parcel_id_norm_idx ON zoningsync.features
    (jurisdiction, zoningsync.normalize_parcel_id(parcel_id)) WHERE kind = 'parcels';
CREATE INDEX features_address_norm_idx ON zoningsync.features
    (jurisdiction, zoningsync.normalize_address(address))
    WHERE kind = 'parcels' AND address IS NOT NULL;

ALTER TABLE zoningsync.feature_history
    ADD CONSTRAINT feature_history_pkey PRIMARY KEY (feed, id);
CREATE INDEX feature_history_run_idx ON zoningsync.feature_history (run_id);
CREATE INDEX feature_history_key_idx ON zoningsync.feature_history (feed, source_key, id);

-- The other tables with a feed column: identity keys that include it --------

ALTER TABLE zoningsync.checkpoint_history
    DROP CONSTRAINT checkpoint_history_pkey,
    ADD CONSTRAINT checkpoint_history_pkey PRIMARY KEY (feed, id);
ALTER TABLE zoningsync.zoning_changes
    DROP CONSTRAINT zoning_changes_pkey,
    ADD CONSTRAINT zoning_changes_pkey PRIMARY KEY (feed, id);
ALTER TABLE zoningsync.case_history
    DROP CONSTRAINT case_history_pkey,
    ADD CONSTRAINT case_history_pkey PRIMARY KEY (feed, id);
ALTER TABLE zoningsync.case_status_history
    DROP CONSTRAINT case_status_history_pkey,
    ADD CONSTRAINT case_status_history_pkey PRIMARY KEY (feed, id);
ALTER TABLE zoningsync.cases
    DROP CONSTRAINT cases_pkey,
    ADD CONSTRAINT cases_pkey PRIMARY KEY (feed, id);
ALTER TABLE zoningsync.documents
    DROP CONSTRAINT documents_pkey,
    ADD CONSTRAINT documents_pkey PRIMARY KEY (feed, id);

-- The views again, as they were ---------------------------------------------

DO $$
DECLARE
    view_row record;
    column_row record;
    grant_row record;
BEGIN
    FOR view_row IN SELECT * FROM saved_views ORDER BY position LOOP
        EXECUTE format('CREATE VIEW zoningsync.%I AS %s', view_row.name, view_row.definition);
        EXECUTE format('COMMENT ON VIEW zoningsync.%I IS %L', view_row.name, view_row.comment);
        FOR column_row IN SELECT * FROM saved_view_columns WHERE name = view_row.name LOOP
            EXECUTE format('COMMENT ON COLUMN zoningsync.%I.%I IS %L', view_row.name,
                           column_row.attname, column_row.comment);
        END LOOP;
        FOR grant_row IN
            SELECT g ->> 0 AS privilege_type, g ->> 1 AS rolname
            FROM jsonb_array_elements(view_row.grants) AS g
        LOOP
            EXECUTE format('GRANT %s ON zoningsync.%I TO %I', grant_row.privilege_type,
                           view_row.name, grant_row.rolname);
        END LOOP;
    END LOOP;
END
$$;
