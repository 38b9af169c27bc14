-- Staging fills with a run's rows and empties when the run ends. Autovacuum saw
-- a 100k first load's inserts and vacuumed and analyzed staged_rows (every
-- column, wkb and attrs included) in the middle of the load, 0.5 s of CPU taken
-- from the load itself; the run analyzes the columns its queries use once the
-- fetch ends (analyze_staging in store.sql). Vacuum after a run's DELETE, which
-- makes the space reusable, still runs as usual.
ALTER TABLE zoningsync.staged_rows SET (
    autovacuum_vacuum_insert_threshold = -1, autovacuum_analyze_threshold = 2147483647);
ALTER TABLE zoningsync.staged_keys SET (
    autovacuum_vacuum_insert_threshold = -1, autovacuum_analyze_threshold = 2147483647);
