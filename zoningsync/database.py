"""Which database a command talks to: the configured URL, or the embedded cluster.

With no database URL configured, zoningsync starts (or reuses) its own PostGIS
cluster under the state directory and keeps its schema current itself. A
configured database belongs to its operators: zoningsync only checks that its
schema is current and says to run `zoningsync migrate` when it is not.
"""

from __future__ import annotations

from zoningsync.migrate import apply_migrations, require_current_schema
from zoningsync.settings import Settings
from zoningsync.store.connect import connection


async def database_url(settings: Settings) -> str:
    if settings.database_url:
        return settings.database_url
    # Only an embedded database needs the cluster code: off the path of `run` and `sync`
    # against a configured server.
    from zoningsync.pgcluster import EmbeddedCluster

    cluster = EmbeddedCluster(settings.state_dir, cluster_user=settings.cluster_user)
    return await cluster.start()


async def ready_database(settings: Settings) -> str:
    """A database URL whose schema is current, migrating the embedded one if needed."""
    url = await database_url(settings)
    if settings.database_url:
        async with connection(url) as conn:
            await require_current_schema(conn)
    else:
        await apply_migrations(url)
    return url
