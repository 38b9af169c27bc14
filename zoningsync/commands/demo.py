"""`zoningsync demo`: a self-contained tour that ends by saying how to connect.

It starts the embedded PostGIS (or uses the configured database), serves the
simulated county portal on 127.0.0.1, syncs its parcels and zoning districts,
publishes a changed version of the county, syncs again (incrementally), prints
both runs' summaries and what changed, and exits.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import click

from zoningsync.settings import Settings

DEMO_SOURCE = "demo-county.toml"
DEMO_PARCELS = 20_000
# The simulated county lives in memory; the benchmark's largest county is 400k.
MAX_DEMO_PARCELS = 1_000_000
DEMO_COLUMNS = ("feed", "mode", "fetched", "inserted", "updated", "retired", "unchanged",
                "quarantined", "repaired", "chunks_written", "chunks_total", "requests",
                "seconds")
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
        "First queries:",
        f'  psql "{url}" -c "SELECT zoning_code, count(*) FROM zoningsync.parcels '
        'GROUP BY 1 ORDER BY 2 DESC"',
        f'  psql "{url}" -c "SELECT parcel_id, old_code, new_code, detected_at '
        'FROM zoningsync.zoning_changes_recent LIMIT 10"',
    ]
    return "\n".join(lines)


async def run_demo(settings: Settings, parcels: int) -> tuple[str, list[dict[str, Any]]]:
    from zoningsync.config import load_source_file
    from zoningsync.database import ready_database
    from zoningsync.errors import SourceConfigError
    from zoningsync.portal.county import County
    from zoningsync.portal.server import run_portal
    from zoningsync.services.sync import sync_feeds

    source = settings.sources / DEMO_SOURCE
    if not source.exists():
        raise SourceConfigError(
            f"{source}: the demo jurisdiction is missing; run the demo from the zoningsync "
            "repository or point --sources / ZONINGSYNC_SOURCES at its sources/ directory")
    configured = load_source_file(source).feeds
    url = await ready_database(settings)
    summaries: list[dict[str, Any]] = []
    async with run_portal(County(parcels, seed=1)) as portal:
        feeds = [dataclasses.replace(feed, url=portal.layer_url(index))
                 for index, feed in enumerate(configured)]
        click.echo(f"Simulated county portal: {portal.base_url} ({parcels} parcels)", err=True)
        # A full read: the first load on a first demo; on a rerun it brings the demo
        # feeds back to the restarted portal's first version, whose old edit dates
        # an incremental read would not see.
        summaries += await sync_feeds(settings, feeds, full=True)
        published = portal.county.publish(0.01, seed=1)
        click.echo(f"The county published a new version: {published['changed']} parcels "
                   f"changed, {published['deleted']} deleted, {published['added']} added.",
                   err=True)
        summaries += await sync_feeds(settings, feeds[:1], full=False)
    return url, summaries


@click.command()
@click.option("--parcels", default=DEMO_PARCELS, show_default=True,
              type=click.IntRange(1, MAX_DEMO_PARCELS),
              help="Parcels in the simulated county.")
@click.pass_context
def demo(ctx: click.Context, parcels: int) -> None:
    """Sync a simulated county into PostGIS, change it, sync again, show how to connect."""
    from zoningsync.commands.context import run_async
    from zoningsync.commands.sync import print_table

    settings = ctx.find_object(Settings)
    assert settings is not None
    url, summaries = run_async(run_demo(settings, parcels))
    print_table(summaries, DEMO_COLUMNS, "Demo runs: a full read of both feeds, then the "
                "changed county")
    click.echo(connection_help(url))
    if any(s.get("status") != "succeeded" for s in summaries):
        ctx.exit(1)
