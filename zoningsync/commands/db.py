"""`zoningsync db start|stop|status|url`: the embedded PostgreSQL cluster.

stdout carries only each command's answer (the URL, the status), so that
`psql "$(zoningsync db url)"` works; logs go to stderr.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import click
import orjson
import structlog

from zoningsync.settings import Settings

if TYPE_CHECKING:  # the cluster code loads only when a `db` command runs, not with the CLI
    from zoningsync.pgcluster import ClusterStatus, EmbeddedCluster

NOT_RUNNING_EXIT = 3

log = structlog.get_logger(__name__)
pass_settings = click.make_pass_decorator(Settings)


def cluster_of(settings: Settings) -> EmbeddedCluster:
    from zoningsync.pgcluster import EmbeddedCluster

    return EmbeddedCluster(settings.state_dir, cluster_user=settings.cluster_user)


def describe(found: ClusterStatus) -> str:
    """A short human summary of the cluster's state."""
    if found.running:
        return (f"running: PostgreSQL {found.version}, pid {found.pid}, port {found.port}\n"
                f"url: {found.url}")
    if found.initialized:
        return f"stopped: PostgreSQL {found.version} cluster in {found.data_dir}"
    return f"not initialized: no cluster in {found.data_dir}"


def status_json(found: ClusterStatus) -> str:
    return orjson.dumps(found, default=str).decode()


@click.group()
def db() -> None:
    """The embedded PostgreSQL + PostGIS cluster under the state directory."""


@db.command()
@pass_settings
def start(settings: Settings) -> None:
    """Start (or reuse) the cluster; return once it accepts connections; print its URL."""
    if settings.database_url:
        log.warning("a database URL is configured, so zoningsync will not use this cluster")
    click.echo(asyncio.run(cluster_of(settings).start()))


@db.command()
@pass_settings
def stop(settings: Settings) -> None:
    """Stop the cluster (fast shutdown); nothing to do if it is not running."""
    if not asyncio.run(cluster_of(settings).stop()):
        log.info("the embedded cluster was not running")


@db.command()
@click.option("--json", "as_json", is_flag=True, help="Answer as JSON.")
@pass_settings
@click.pass_context
def status(ctx: click.Context, settings: Settings, as_json: bool) -> None:
    """Say whether the cluster runs; exit 0 if it does, 3 if it does not."""
    found = asyncio.run(cluster_of(settings).status())
    click.echo(status_json(found) if as_json else describe(found))
    if not found.running:
        ctx.exit(NOT_RUNNING_EXIT)


@db.command()
@pass_settings
def url(settings: Settings) -> None:
    """Print only the cluster's libpq URL, for `psql "$(zoningsync db url)"`."""
    click.echo(cluster_of(settings).url())
