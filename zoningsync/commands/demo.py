"""`zoningsync demo`: a self-contained tour that ends by saying how to connect.

It starts the embedded PostGIS (or uses the configured database), serves the
simulated county portal on 127.0.0.1, syncs its parcels, zoning districts and
rezoning cases, publishes a changed version of the county and moves its cases
one meeting on, syncs again (parcels incrementally), prints the runs'
summaries, a planner's query joining pending cases to parcels with its answer,
and how to connect, and exits.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import click

from zoningsync.settings import Settings
from zoningsync.store.planner import pending_cases_on_parcels, pending_cases_query

if TYPE_CHECKING:
    from zoningsync.config import FeedConfig


DEMO_SOURCE = "demo-county.toml"
DEMO_PARCELS = 20_000
# The simulated county lives in memory; the benchmark's largest county is 400k.
MAX_DEMO_PARCELS = 1_000_000
DEMO_JURISDICTION = "demo-county"
PLANNER_QUERY_ROWS = 5
PLANNER_QUERY_COLUMNS = ("case_number", "status", "request", "hearing", "matched_by",
                         "parcel_id", "zoned_now", "m2")
DEMO_COLUMNS = ("feed", "mode", "fetched", "inserted", "updated", "retired", "unchanged",
                "quarantined", "repaired", "chunks_written", "chunks_total", "requests",
                "seconds")
PLANNER_VIEWS = {
    "zoningsync.parcels": "current parcels with their zoning, one row per parcel",
    "zoningsync.zoning_districts": "current zoning district polygons",
    "zoningsync.zoning_changes_recent": "zoning code changes of the last 90 days",
    "zoningsync.rezoning_cases": "every current rezoning case, placed on its parcels",
    "zoningsync.pending_cases": "rezoning cases not yet decided",
}


def on_portal(feed: FeedConfig, base_url: str) -> FeedConfig:
    """The feed with its URL's origin replaced by the portal's (the port it got)."""
    parts = urlsplit(feed.url)
    return dataclasses.replace(feed, url=base_url + feed.url[len(f"{parts.scheme}://"
                                                                 f"{parts.netloc}"):])


def planner_query_text() -> str:
    """The demo's planner query as a planner would type it (parameters filled in)."""
    lines = [line for line in pending_cases_query().splitlines()
             if not line.startswith("--")]
    return ("\n".join(lines).replace("$1", f"'{DEMO_JURISDICTION}'")
            .replace("$2", str(PLANNER_QUERY_ROWS)))


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


async def run_demo(settings: Settings, parcels: int
                   ) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]]]:
    """Both rounds of syncs; the database URL, the run summaries and the planner's rows."""
    from zoningsync.config import load_source_file
    from zoningsync.database import ready_database
    from zoningsync.errors import SourceConfigError
    from zoningsync.portal.county import County
    from zoningsync.portal.server import run_portal
    from zoningsync.services.sync import sync_feeds
    from zoningsync.store.connect import connection

    source = settings.sources / DEMO_SOURCE
    if not source.exists():
        raise SourceConfigError(
            f"{source}: the demo jurisdiction is missing; run the demo from the zoningsync "
            "repository or point --sources / ZONINGSYNC_SOURCES at its sources/ directory")
    configured = load_source_file(source).feeds
    url = await ready_database(settings)
    summaries: list[dict[str, Any]] = []
    async with run_portal(County(parcels, seed=1)) as portal:
        feeds = [on_portal(feed, portal.base_url) for feed in configured]
        click.echo(f"Simulated county portal: {portal.base_url} ({parcels} parcels, "
                   f"{len(portal.cases.cases)} rezoning cases)", err=True)
        # A full read: the first load on a first demo; on a rerun it brings the demo
        # feeds back to the restarted portal's first version, whose old edit dates
        # an incremental read would not see.
        summaries += await sync_feeds(settings, feeds, full=True)
        published = portal.county.publish(0.01, seed=1)
        moved = portal.cases.publish()
        click.echo(f"The county published a new version: {published['changed']} parcels "
                   f"changed, {published['deleted']} deleted, {published['added']} added; "
                   f"{len(moved['changed'])} rezoning cases moved on "
                   f"({len(moved['filed'])} filed).", err=True)
        summaries += await sync_feeds(
            settings, [f for f in feeds if f.kind in ("parcels", "cases")], full=False)
    async with connection(url) as conn:
        rows = await pending_cases_on_parcels(conn, DEMO_JURISDICTION, PLANNER_QUERY_ROWS)
    return url, summaries, rows


@click.command()
@click.option("--parcels", default=DEMO_PARCELS, show_default=True,
              type=click.IntRange(1, MAX_DEMO_PARCELS),
              help="Parcels in the simulated county.")
@click.pass_context
def demo(ctx: click.Context, parcels: int) -> None:
    """Sync a simulated county and its cases, change both, sync again, show how to connect."""
    from zoningsync.commands.context import run_async
    from zoningsync.commands.sync import print_table

    settings = ctx.find_object(Settings)
    assert settings is not None
    url, summaries, pending = run_async(run_demo(settings, parcels))
    print_table(summaries, DEMO_COLUMNS, "Demo runs: a full read of every feed, then the "
                "changed county and its cases")
    click.echo("A planner's query: pending rezoning cases on the parcels they cover")
    click.echo(planner_query_text())
    print_table(pending, PLANNER_QUERY_COLUMNS, "Its answer")
    click.echo(connection_help(url))
    if any(s.get("status") != "succeeded" for s in summaries):
        ctx.exit(1)
