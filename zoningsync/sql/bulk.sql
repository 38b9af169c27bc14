-- Queries of store/bulk.py: the secondary indexes of features, dropped for a first
-- load into an empty table and built after it, and the statistics of that load.
-- The create_<index> statements are the one rebuild definition of those indexes
-- (SECONDARY_INDEXES is read from their names); tests/test_bulk.py holds them to
-- the migrated ones.

-- name: analyze_features
-- After a first load: a load finishes before autovacuum samples the table, and
-- without column statistics the next run's chunk hashes and merges were planned
-- blind (a 1% re-sync took 4.8 s instead of 1.7 s). Only the columns the runs'
-- queries filter and join on: the footprints and attributes took 0.6 of the 0.7 s
-- of CPU a whole-table ANALYZE costs, and an ANALYZE of some columns leaves the
-- table's change count alone, so autovacuum still analyzes all of it soon after.
ANALYZE zoningsync.features (feed, source_key, h3, row_hash);

-- name: features_stored
SELECT EXISTS (SELECT 1 FROM zoningsync.features);

-- name: index_missing
-- Asked under lock_index_build and after lock_features_for_build.
SELECT to_regclass('zoningsync.' || $1) IS NULL;

-- name: lock_features_for_build
-- The lock CREATE INDEX takes anyway. Taking a table lock makes the session read
-- the catalog changes other sessions committed (an advisory lock does not): a
-- twin's index built while this session waited for its turn is then seen.
LOCK TABLE zoningsync.features IN SHARE MODE;

-- name: missing_secondary_indexes_any
-- Asked without a lock first: the indexes are almost always there.
SELECT EXISTS (SELECT FROM unnest($1::text[]) AS n(name)
               WHERE to_regclass('zoningsync.' || name) IS NULL);

-- name: lock_index_build
-- One session at a time builds a given secondary index of features ($1 its name).
SELECT pg_advisory_xact_lock(hashtext('zoningsync.features index ' || $1));

-- name: create_features_geom_idx
CREATE INDEX IF NOT EXISTS features_geom_idx ON zoningsync.features USING gist (geom);

-- name: create_features_feed_h3_idx
-- Kept row by row, this (feed, h3) index took 0.26 PostgreSQL CPU seconds of a
-- 100k first load's COPY; built after it, 0.09. The run's own queries over a
-- first load's chunks read the staged rows, not this index.
CREATE INDEX IF NOT EXISTS features_feed_h3_idx ON zoningsync.features (feed, h3);

-- name: create_features_parcel_id_idx
CREATE INDEX IF NOT EXISTS features_parcel_id_idx ON zoningsync.features (parcel_id);

-- name: create_features_zoning_code_idx
CREATE INDEX IF NOT EXISTS features_zoning_code_idx ON zoningsync.features (zoning_code);

-- name: create_features_parcel_id_norm_idx
CREATE INDEX IF NOT EXISTS features_parcel_id_norm_idx ON zoningsync.features
    (jurisdiction, zoningsync.normalize_parcel_id(parcel_id)) WHERE kind = 'parcels';

-- name: create_features_address_norm_idx
CREATE INDEX IF NOT EXISTS features_address_norm_idx ON zoningsync.features
    (jurisdiction, zoningsync.normalize_address(address))
    WHERE kind = 'parcels' AND address IS NOT NULL;
