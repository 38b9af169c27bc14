-- Admin commands act through the database only: a row in admin_actions says who
-- asked what, from where and what came of it (the audit log), and a NOTIFY on
-- channel zoningsync_control wakes whoever runs the feed. An exact rollback of a
-- run needs, besides feature_history (the undo log of rows), the checkpoints the
-- run replaced (checkpoint_history), the identity and creation time of the rows
-- it retired (so a restored row is the same row), and a mark on the zoning
-- changes it undid.

CREATE TABLE zoningsync.admin_actions (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),
    action       text NOT NULL,
    target       text NOT NULL,
    reason       text,
    outcome      text NOT NULL CHECK (outcome IN ('done', 'refused')),
    detail       text NOT NULL DEFAULT '',
    os_user      text,
    hostname     text,
    client_addr  inet DEFAULT inet_client_addr(),
    db_user      text NOT NULL DEFAULT session_user,
    run_id       bigint REFERENCES zoningsync.runs (id)
);
CREATE INDEX admin_actions_target_idx ON zoningsync.admin_actions (target, id);
COMMENT ON TABLE zoningsync.admin_actions IS
    'Audit log of every admin command (pause, resume, rollback, quarantine retry and resolve): '
    'who asked what, when, from where, and what happened. Rows are never updated or deleted.';
COMMENT ON COLUMN zoningsync.admin_actions.id IS 'Order of the actions.';
COMMENT ON COLUMN zoningsync.admin_actions.at IS 'When the action was recorded.';
COMMENT ON COLUMN zoningsync.admin_actions.action IS
    'pause, resume, rollback, rollback_dry_run, quarantine_retry or quarantine_resolve.';
COMMENT ON COLUMN zoningsync.admin_actions.target IS
    'What it acted on: a feed or jurisdiction, a run id, a quarantine id.';
COMMENT ON COLUMN zoningsync.admin_actions.reason IS 'The operator''s reason or note.';
COMMENT ON COLUMN zoningsync.admin_actions.outcome IS 'done, or refused (then detail says why).';
COMMENT ON COLUMN zoningsync.admin_actions.detail IS 'One line: what was done, or why it was refused.';
COMMENT ON COLUMN zoningsync.admin_actions.os_user IS 'Operating-system user that ran the command (as it reported).';
COMMENT ON COLUMN zoningsync.admin_actions.hostname IS 'Host the command ran on (as it reported).';
COMMENT ON COLUMN zoningsync.admin_actions.client_addr IS 'Address the command connected from (inet_client_addr(); null over a unix socket).';
COMMENT ON COLUMN zoningsync.admin_actions.db_user IS 'Database user of the command''s session.';
COMMENT ON COLUMN zoningsync.admin_actions.run_id IS 'Run the action made or undid, where there is one (a rollback''s own run).';

-- The writer (the daemon) records actions and reads them; nobody but the owner
-- changes or removes them. The reader sees none of it (no grant).
GRANT SELECT, INSERT ON zoningsync.admin_actions TO zoningsync_writer;
GRANT USAGE, SELECT ON SEQUENCE zoningsync.admin_actions_id_seq TO zoningsync_writer;

CREATE TABLE zoningsync.checkpoint_history (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id        bigint NOT NULL,
    feed          text NOT NULL,
    chunk         text NOT NULL,
    hash          bytea NOT NULL,
    row_count     integer NOT NULL,
    prior_run_id  bigint NOT NULL,
    updated_at    timestamptz NOT NULL
);
CREATE INDEX checkpoint_history_run_idx ON zoningsync.checkpoint_history (run_id);
COMMENT ON TABLE zoningsync.checkpoint_history IS
    'Each chunk checkpoint a run replaced or dropped, as it was: a rollback puts it back. A '
    'chunk a run checkpointed without a row here had no checkpoint before that run.';
COMMENT ON COLUMN zoningsync.checkpoint_history.id IS 'Order of the changes.';
COMMENT ON COLUMN zoningsync.checkpoint_history.run_id IS 'Run that replaced or dropped the checkpoint (a runs.id; written only by the merge).';
COMMENT ON COLUMN zoningsync.checkpoint_history.feed IS 'Feed id.';
COMMENT ON COLUMN zoningsync.checkpoint_history.chunk IS 'H3 cell of the chunk.';
COMMENT ON COLUMN zoningsync.checkpoint_history.hash IS 'The replaced checkpoint''s hash.';
COMMENT ON COLUMN zoningsync.checkpoint_history.row_count IS 'The replaced checkpoint''s row count.';
COMMENT ON COLUMN zoningsync.checkpoint_history.prior_run_id IS 'Run that had written the replaced checkpoint.';
COMMENT ON COLUMN zoningsync.checkpoint_history.updated_at IS 'When the replaced checkpoint had been written.';
GRANT SELECT, INSERT, DELETE ON zoningsync.checkpoint_history TO zoningsync_writer;
GRANT USAGE, SELECT ON SEQUENCE zoningsync.checkpoint_history_id_seq TO zoningsync_writer;

-- A retired row's identity, so that a rollback restores the same row (its id is
-- what GIS clients key on), not a copy of it.
ALTER TABLE zoningsync.feature_history
    ADD COLUMN feature_id bigint,
    ADD COLUMN created_at timestamptz;
COMMENT ON COLUMN zoningsync.feature_history.feature_id IS
    'Prior version: features.id of a retired feature (null for inserts and updates, whose id does not change).';
COMMENT ON COLUMN zoningsync.feature_history.created_at IS
    'Prior version: when a retired feature had first been stored.';

ALTER TABLE zoningsync.zoning_changes ADD COLUMN rolled_back_by bigint REFERENCES zoningsync.runs (id);
COMMENT ON COLUMN zoningsync.zoning_changes.rolled_back_by IS
    'The rollback run that undid this change (null while it stands); planner views leave such changes out.';

-- A quarantined record an operator decided about is hidden from `quarantine list`.
ALTER TABLE zoningsync.quarantine ADD COLUMN resolved_by bigint REFERENCES zoningsync.admin_actions (id);
COMMENT ON COLUMN zoningsync.quarantine.resolved_by IS
    'The admin action (quarantine resolve) that recorded a decision about this record; null while open.';

-- `quarantine retry`: the feed's next run reads everything again, so every
-- quarantined record is fetched anew.
ALTER TABLE zoningsync.feeds ADD COLUMN reread_requested_at timestamptz;
COMMENT ON COLUMN zoningsync.feeds.reread_requested_at IS
    'Set by `quarantine retry`: the next run reads the whole feed again (cleared once it plans).';
