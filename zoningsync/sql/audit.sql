-- Queries of store/audit.py: the admin_actions log.

-- name: record_action
INSERT INTO zoningsync.admin_actions
    (action, target, reason, outcome, detail, os_user, hostname, run_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
RETURNING id;

-- name: list_actions
SELECT id, at, action, target, reason, outcome, detail, os_user, hostname,
       host(client_addr) AS client_addr, db_user, run_id
FROM zoningsync.admin_actions
WHERE ($1::text IS NULL OR target = $1)
ORDER BY id DESC
LIMIT $2;
