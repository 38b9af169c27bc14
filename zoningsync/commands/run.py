"""`zoningsync run`: the daemon, in the foreground until SIGTERM/SIGINT."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import click

from zoningsync.commands.context import run_async, settings_of
from zoningsync.errors import UsageError
from zoningsync.settings import Settings

DEFAULT_METRICS = "127.0.0.1:9464"
EXAMPLE_WEBHOOKS = "127.0.0.1:9465"
WEBHOOKS_SETTING = "--webhooks / ZONINGSYNC_WEBHOOKS / [webhooks] listen"


def parse_listen_address(text: str, *, what: str, setting: str, example: str
                         ) -> tuple[str, int] | None:
    """`host:port` (IPv6 as `[::1]:PORT`), or None for `off`; a usage error otherwise.

    The host is never implied: `:9464` is refused rather than read as every
    interface, so a server listens on 0.0.0.0 only where someone wrote 0.0.0.0.
    `what` is the server, `setting` where its address is set (flag, environment, file key).
    """
    value = text.strip()
    if value.lower() == "off":
        return None
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    fix = (f"use host:port such as {example} or [::1]:{example.rpartition(':')[2]}, or off "
           f"({setting})")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise UsageError(f"{what} address '{value[:80]}' is invalid; {fix}")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost":
            raise UsageError(f"{what} address '{value[:80]}' needs an IP address or "
                             f"localhost; {fix}") from None
    return host, int(port)


def parse_metrics_address(text: str) -> tuple[str, int] | None:
    return parse_listen_address(text, what="metrics", setting="--metrics / ZONINGSYNC_METRICS",
                                example=DEFAULT_METRICS)


def parse_webhooks_address(text: str, origin: str = WEBHOOKS_SETTING
                           ) -> tuple[str, int] | None:
    """The receiver's address; `origin` is the file and key when the settings file gave it."""
    return parse_listen_address(text, what="webhooks", setting=origin, example=EXAMPLE_WEBHOOKS)


@click.command()
@click.option("--sources", "sources_dir", envvar="ZONINGSYNC_SOURCES", show_envvar=True,
              type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory of jurisdiction TOML files (default: the settings file's "
                   "`sources`, else ./sources).")
@click.option("--max-concurrent", envvar="ZONINGSYNC_MAX_CONCURRENT", show_envvar=True,
              type=click.IntRange(1, 256), default=4,
              help="Feed runs this daemon runs at once.")
@click.option("--metrics", "metrics_address", envvar="ZONINGSYNC_METRICS", show_envvar=True,
              default=DEFAULT_METRICS,
              help="host:port of /metrics and /healthz, or off. 0.0.0.0 only if you "
                   "give it here.")
@click.option("--webhooks", "webhooks_address", envvar="ZONINGSYNC_WEBHOOKS", show_envvar=True,
              default=None,
              help="host:port of the signed-hook receiver (POST /hooks/JURISDICTION/FEED), "
                   "or off (default: the settings file's [webhooks] listen, else off). "
                   "0.0.0.0 only if you give it.")
@click.option("--node", envvar="ZONINGSYNC_NODE", show_envvar=True, default=None,
              help="This daemon's name in `status` and in lease holders "
                   "(default: hostname:pid).")
@click.option("--shutdown-grace", "shutdown_grace_s", envvar="ZONINGSYNC_SHUTDOWN_GRACE_S",
              show_envvar=True, type=click.FloatRange(0, 3600), default=30.0,
              help="Seconds in-flight runs get to stop on SIGTERM before the daemon aborts.")
@click.pass_context
def run(ctx: click.Context, sources_dir: Path | None, max_concurrent: int,
        metrics_address: str, webhooks_address: str | None, node: str | None,
        shutdown_grace_s: float) -> None:
    """Run every feed on its schedule until SIGTERM/SIGINT (SIGHUP reloads the sources).

    Any number of daemons may share one database: each feed runs on one of
    them at a time. Exit 0 after a graceful stop, 1 when a side task crashed.
    """
    from zoningsync.daemon.main import DaemonOptions, run_daemon
    from zoningsync.store.lease import default_node

    settings = settings_of(ctx)
    options = DaemonOptions(
        sources=sources_dir or settings.sources,
        max_concurrent=max_concurrent,
        metrics=parse_metrics_address(metrics_address),
        webhooks=_webhooks(webhooks_address, settings),
        node=(node or "").strip() or default_node(),
        shutdown_grace_s=shutdown_grace_s,
    )
    code = run_async(run_daemon(settings, options))
    if code:
        ctx.exit(code)


def _webhooks(flag: str | None, settings: Settings) -> tuple[str, int] | None:
    """The flag (or ZONINGSYNC_WEBHOOKS), else the settings file; off when neither says."""
    if flag is not None:
        return parse_webhooks_address(flag)
    if settings.webhooks_listen is None:
        return None
    return parse_webhooks_address(settings.webhooks_listen, settings.webhooks_origin)
