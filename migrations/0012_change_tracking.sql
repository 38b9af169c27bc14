-- ArcGIS change tracking (extractChanges with server generations).
--
-- A run of a change-tracking layer records the layer's server generation: a
-- full read the generation it saw before reading, a change read the generation
-- its extract answered. It sits beside the high-water mark of the edit-date
-- strategy and, like it, counts only on a succeeded run, which the run's last
-- merged chunk commits with.
--
-- extractChanges names deleted features by object id only; the OID a stored
-- feature had upstream is kept for change-tracking feeds alone (other feeds
-- never write here), so a delete retires the key it maps to.

ALTER TABLE zoningsync.runs ADD COLUMN server_gen bigint;
COMMENT ON COLUMN zoningsync.runs.server_gen IS
    'Server generation of a change-tracking layer this run brought the feed to (extractChanges starts from it); null for other layers.';

CREATE TABLE zoningsync.feature_oids (
    feed        text NOT NULL,
    source_oid  bigint NOT NULL,
    source_key  text NOT NULL,
    PRIMARY KEY (feed, source_oid)
);
COMMENT ON TABLE zoningsync.feature_oids IS
    'Upstream object id of each stored feature of a change-tracking feed, to map extractChanges deletes to keys.';
COMMENT ON COLUMN zoningsync.feature_oids.feed IS 'Feed id.';
COMMENT ON COLUMN zoningsync.feature_oids.source_oid IS 'Upstream object id.';
COMMENT ON COLUMN zoningsync.feature_oids.source_key IS 'Key of the stored feature that object id carries.';

GRANT SELECT, INSERT, UPDATE, DELETE ON zoningsync.feature_oids TO zoningsync_writer;
