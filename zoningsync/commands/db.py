"""`zoningsync db start|stop|status|url`: the embedded PostgreSQL cluster."""

from __future__ import annotations

import asyncio

import click
import orjson

from zoningsync.pgcluster import EmbeddedCluster
from zoningsync.settings import Settings

NOT_RUNNING_EXIT = 3


def cluster_of(ctx: click.Context) -> EmbeddedCluster:
    settings = ctx.find_object(Settings)
    assert settings is not None
    return EmbeddedCluster(settings.state_dir, cluster_user=settings.cluster_user)


@click.group()
def db() -> None:
    """The embedded PostgreSQL + PostGIS cluster under the state directory."""


@db.command()
@click.pass_context
def start(ctx: click.Context) -> None:
    """Start (or reuse) the cluster; return once it accepts connections; print its URL."""
    click.echo(asyncio.run(cluster_of(ctx).start()))


@db.command()
@click.pass_context
def stop(ctx: click.Context) -> None:
    """Stop the cluster (fast shutdown); nothing to do if it is not running."""
    was_running = asyncio.run(cluster_of(ctx).stop())
    click.echo("stopped" if was_running else "not running")


@db.command()
@click.option("--json", "as_json", is_flag=True, help="Answer as JSON.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Say whether the cluster runs; exit 0 if it does, 3 if it does not."""
    found = asyncio.run(cluster_of(ctx).status())
    if as_json:
        click.echo(orjson.dumps(found.__dict__, default=str).decode())
    elif found.running:
        click.echo(f"running (pid {found.pid}, port {found.port}, PostgreSQL {found.version})"
                   f"\n{found.url}")
    elif found.initialized:
        click.echo(f"stopped (data in {found.data_dir})")
    else:
        click.echo(f"not initialized (state dir {found.data_dir.parent.parent})")
    if not found.running:
        ctx.exit(NOT_RUNNING_EXIT)


@db.command()
@click.pass_context
def url(ctx: click.Context) -> None:
    """Print only the cluster's libpq URL, for `psql "$(zoningsync db url)"`."""
    click.echo(cluster_of(ctx).url())
