-- A first load writes each staged page's new rows while later pages are still
-- being fetched (see premerge_page in store.sql); the ledger remembers which
-- pages are written, and rows are found by page.
ALTER TABLE zoningsync.staged_pages ADD COLUMN premerged boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN zoningsync.staged_pages.premerged IS
    'The page''s new rows are already in features (first loads only).';
CREATE INDEX staged_rows_run_page_idx ON zoningsync.staged_rows (run_id, page_id);
