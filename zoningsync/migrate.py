"""Apply the SQL migrations in `migrations/` (installed as `zoningsync.migrations`).

Each file runs in its own transaction and is recorded in
`zoningsync.schema_migrations` with its sha256, so an applied file that was later
edited is refused instead of silently diverging. A session advisory lock makes
concurrent `migrate` calls on one database take turns: the second finds
everything applied and does nothing.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import asyncpg

from zoningsync.errors import MigrationError, PostgisMissing, SchemaOutdated
from zoningsync.store.connect import connection

MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
LOCK_KEY = 0x7A6F6E6973796E63  # "zonisync": one advisory lock id for all migrate calls

BOOTSTRAP = """
CREATE SCHEMA IF NOT EXISTS zoningsync;
CREATE TABLE IF NOT EXISTS zoningsync.schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE zoningsync.schema_migrations IS
    'SQL migrations applied to this database, with the checksum of each file as applied.';
COMMENT ON COLUMN zoningsync.schema_migrations.version IS 'Number heading the file name.';
COMMENT ON COLUMN zoningsync.schema_migrations.name IS 'File name of the migration.';
COMMENT ON COLUMN zoningsync.schema_migrations.checksum IS 'sha256 of the file as applied.';
COMMENT ON COLUMN zoningsync.schema_migrations.applied_at IS 'When it was applied.';
"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclass(frozen=True)
class MigrationState:
    version: int
    name: str
    state: str  # applied | pending | changed
    applied_at: datetime | None


def available_migrations(directory: Path | None = None) -> list[Migration]:
    """The migrations shipped with this zoningsync (or those in `directory`), in order."""
    found: list[Migration] = []
    source = directory if directory is not None else resources.files("zoningsync.migrations")
    for entry in source.iterdir():
        match = MIGRATION_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError("two migration files share a version number; renumber one")
    return found


async def _applied(conn: asyncpg.Connection[Any]) -> dict[int, asyncpg.Record]:
    exists = await conn.fetchval("SELECT to_regclass('zoningsync.schema_migrations')")
    if exists is None:
        return {}
    rows = await conn.fetch(
        "SELECT version, name, checksum, applied_at FROM zoningsync.schema_migrations"
    )
    return {row["version"]: row for row in rows}


async def _require_postgis(conn: asyncpg.Connection[Any]) -> None:
    available = await conn.fetchval(
        "SELECT count(*) FROM pg_available_extensions WHERE name = 'postgis'"
    )
    if not available:
        major = int(await conn.fetchval("SHOW server_version_num")) // 10000
        raise PostgisMissing(
            "PostGIS is not installed on the database server; install it there "
            f"(Debian/Ubuntu: apt-get install postgresql-{major}-postgis-3)"
        )


def _check_unchanged(migration: Migration, record: asyncpg.Record) -> None:
    if record["checksum"] != migration.checksum:
        raise MigrationError(
            f"migration {migration.name} was edited after it was applied "
            f"(checksum {record['checksum'][:12]} in the database, "
            f"{migration.checksum[:12]} on disk); restore the original file and put the "
            "change in a new migration"
        )


async def apply_migrations(url: str, directory: Path | None = None) -> list[str]:
    """Apply every pending migration in order; return the names applied."""
    migrations = available_migrations(directory)
    applied_now: list[str] = []
    async with connection(url) as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
        try:
            await _require_postgis(conn)
            await conn.execute(BOOTSTRAP)
            applied = await _applied(conn)
            for migration in migrations:
                if migration.version in applied:
                    _check_unchanged(migration, applied[migration.version])
                    continue
                try:
                    async with conn.transaction():
                        await conn.execute(migration.sql)
                        await conn.execute(
                            "INSERT INTO zoningsync.schema_migrations (version, name, checksum)"
                            " VALUES ($1, $2, $3)",
                            migration.version, migration.name, migration.checksum,
                        )
                except asyncpg.PostgresError as exc:
                    raise MigrationError(
                        f"migration {migration.name} failed: {exc}; nothing of it was applied"
                    ) from exc
                applied_now.append(migration.name)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
    return applied_now


async def migration_status(url: str) -> list[MigrationState]:
    async with connection(url) as conn:
        applied = await _applied(conn)
    states: list[MigrationState] = []
    for migration in available_migrations():
        record = applied.get(migration.version)
        if record is None:
            states.append(MigrationState(migration.version, migration.name, "pending", None))
        else:
            state = "applied" if record["checksum"] == migration.checksum else "changed"
            states.append(
                MigrationState(migration.version, migration.name, state, record["applied_at"])
            )
    return states


async def require_current_schema(conn: asyncpg.Connection[Any]) -> None:
    """Refuse to work on a database whose schema is behind this zoningsync."""
    applied = await _applied(conn)
    missing = [m.name for m in available_migrations() if m.version not in applied]
    if missing:
        raise SchemaOutdated(
            f"the database lacks {len(missing)} migration(s) ({', '.join(missing)}); "
            "run `zoningsync migrate`"
        )
