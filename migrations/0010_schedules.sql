-- When each feed is next due, shared by every daemon on this database.
--
-- Which daemon runs a due feed is decided here, never in a daemon's memory: a
-- daemon claims due rows with FOR UPDATE SKIP LOCKED in one short transaction,
-- then runs each feed under its lease (a session advisory lock). A claim names
-- the daemon's node; a daemon's sessions carry `zoningsync <node>` as their
-- application_name, so a claim whose node has no session left (kill -9) is
-- taken over at the next tick. The due_at index keeps each tick's cost to the
-- feeds that are due.

CREATE TABLE zoningsync.schedules (
    feed                  text PRIMARY KEY REFERENCES zoningsync.feeds (id) ON DELETE CASCADE,
    due_at                timestamptz NOT NULL DEFAULT now(),
    claimed_by            text,
    claimed_at            timestamptz,
    consecutive_failures  integer NOT NULL DEFAULT 0 CHECK (consecutive_failures >= 0),
    last_attempt_at       timestamptz,
    last_outcome          text CHECK (last_outcome IN ('succeeded', 'failed', 'held', 'busy',
                                                       'cancelled', 'paused')),
    run_now_requested_at  timestamptz,
    updated_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX schedules_due_idx ON zoningsync.schedules (due_at);
CREATE INDEX schedules_run_now_idx ON zoningsync.schedules (run_now_requested_at)
    WHERE run_now_requested_at IS NOT NULL;

COMMENT ON TABLE zoningsync.schedules IS
    'When each feed is next due and which daemon claimed it: the scheduling state every daemon shares.';
COMMENT ON COLUMN zoningsync.schedules.feed IS 'Feed id (jurisdiction/feed).';
COMMENT ON COLUMN zoningsync.schedules.due_at IS
    'When the feed is next due: its schedule and jitter after its last success, or its back-off after a failure.';
COMMENT ON COLUMN zoningsync.schedules.claimed_by IS
    'Node name of the daemon that claimed the feed for a run (null when unclaimed); a claim of a node with no live session is void.';
COMMENT ON COLUMN zoningsync.schedules.claimed_at IS 'When the feed was last claimed (kept after the claim ends).';
COMMENT ON COLUMN zoningsync.schedules.consecutive_failures IS
    'Runs that failed (or were held) since the last success; sets the back-off.';
COMMENT ON COLUMN zoningsync.schedules.last_attempt_at IS 'When a daemon last claimed the feed to run it.';
COMMENT ON COLUMN zoningsync.schedules.last_outcome IS
    'How the last attempt ended: succeeded, failed, held, busy (another process held the lease), cancelled (shutdown) or paused.';
COMMENT ON COLUMN zoningsync.schedules.run_now_requested_at IS
    'Set by `zoningsync sync --now`: the feed is due at once; cleared by the claim.';
COMMENT ON COLUMN zoningsync.schedules.updated_at IS 'When the row last changed.';

GRANT SELECT, INSERT, UPDATE, DELETE ON zoningsync.schedules TO zoningsync_writer;
GRANT TRUNCATE ON zoningsync.schedules TO zoningsync_admin;
