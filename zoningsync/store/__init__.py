"""Everything that talks to PostgreSQL: pool, staging, chunk merge, runs, leases."""
