-- Queries of store/lease.py: feed leases as session advisory locks.

-- name: try_lease
SELECT pg_try_advisory_lock($1, hashtext($2));

-- name: lease_holder
-- Who holds a feed's lease: its lease connection names the host and pid in
-- application_name (store/lease.py).
SELECT a.pid, a.application_name, a.backend_start
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.classid = $1
  AND l.objid = hashtext($2)::oid AND l.granted;
