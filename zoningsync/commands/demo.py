"""`zoningsync demo`: a self-contained tour that ends by saying how to connect."""

from __future__ import annotations

import click

from zoningsync.settings import Settings

PLANNER_VIEWS = {
    "zoningsync.parcels": "current parcels with their zoning, one row per parcel",
    "zoningsync.zoning_districts": "current zoning district polygons",
    "zoningsync.zoning_changes_recent": "zoning code changes of the last 90 days",
    "zoningsync.pending_cases": "rezoning cases not yet decided",
}


def connection_help(url: str) -> str:
    """How a planner reaches the database from psql and QGIS."""
    from urllib.parse import parse_qs, urlsplit

    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    host = query.get("host", parts.hostname or "localhost")
    port = query.get("port", str(parts.port or 5432))
    lines = [
        "Connect:",
        f'  psql "{url}"',
        "  QGIS: Layer > Add Layer > Add PostGIS Layers > New, with",
        f"    host {host}  port {port}  database {parts.path.lstrip('/')}  "
        f"user {parts.username or '(your login)'}",
        "Planner views (schema zoningsync):",
        *(f"  {name:36} {what}" for name, what in PLANNER_VIEWS.items()),
        "First query:",
        f'  psql "{url}" -c "SELECT zoning_code, count(*) FROM zoningsync.parcels '
        'GROUP BY 1 ORDER BY 2 DESC"',
    ]
    return "\n".join(lines)


@click.command()
@click.pass_context
def demo(ctx: click.Context) -> None:
    """Start the embedded PostGIS, prepare the schema, and show how to connect."""
    from zoningsync.cli import run_async
    from zoningsync.database import ready_database

    settings = ctx.find_object(Settings)
    assert settings is not None
    url = run_async(ready_database(settings))
    click.echo(connection_help(url))
