"""`zoningsync run`: the daemon from start to exit.

Start: the database reachable with its schema current, the sources loaded, the
feeds registered and scheduled, the metrics server listening: then READY=1.
Run: the supervised side tasks until a stop signal or a crash. Stop: STOPPING=1,
no new claims, in-flight runs cancelled (each ends `cancelled`, resumable), side
tasks stopped; exit 0 within the grace period, 1 after a crash or when the grace
period ran out (then as after `kill -9`: every interrupted run resumes).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import structlog

from zoningsync.config import Jurisdiction, SourceSet, load_sources
from zoningsync.daemon.control import listen_for_control
from zoningsync.daemon.hooks import HookRequests, serve_webhooks
from zoningsync.daemon.lifecycle import Lifecycle, abort
from zoningsync.daemon.notify import Notifier, ping_watchdog, watchdog_interval_s
from zoningsync.daemon.scheduler import Scheduler
from zoningsync.daemon.supervisor import Supervisor
from zoningsync.database import ready_database
from zoningsync.errors import ZoningsyncError, describe_failure
from zoningsync.metrics import database_health
from zoningsync.observability import LoopLagProbe
from zoningsync.redact import redact
from zoningsync.services.runtime import SESSIONS_PER_RUN, sync_runtime
from zoningsync.settings import Settings
from zoningsync.store.lease import use_node_name

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class DaemonOptions:
    """What `zoningsync run` was asked for (flags and environment, validated)."""

    sources: Path
    max_concurrent: int
    metrics: tuple[str, int] | None
    node: str
    shutdown_grace_s: float
    webhooks: tuple[str, int] | None = None


def log_source_errors(sources: SourceSet) -> None:
    for error in sources.errors:
        log.warning("source file skipped", file=str(error.file), error=redact(error.summary))


def merge_reload(old: tuple[Jurisdiction, ...], new: SourceSet) -> tuple[Jurisdiction, ...]:
    """The reloaded set, where a file that no longer loads keeps its old jurisdiction."""
    broken_files = {e.file for e in new.errors}
    broken_ids = {e.jurisdiction for e in new.errors}
    loaded = {j.id for j in new.jurisdictions}
    kept = [j for j in old if j.id not in loaded
            and (j.source_file in broken_files or j.id in broken_ids)]
    return (*new.jurisdictions, *kept)


async def run_daemon(settings: Settings, options: DaemonOptions) -> int:
    """Run until stopped; the process's exit code."""
    node = use_node_name(options.node)
    url = await ready_database(settings)
    sources = await asyncio.to_thread(load_sources, options.sources)
    log_source_errors(sources)
    lifecycle = Lifecycle()
    notifier = Notifier()
    try:
        async with sync_runtime(
                url, pool_size=options.max_concurrent * SESSIONS_PER_RUN + 2) as runtime:
            hooks = (HookRequests(runtime.pool, options.webhooks)
                     if options.webhooks is not None else None)
            scheduler = Scheduler(db_url=url, pool=runtime.pool, fetcher=runtime.fetcher,
                                  executor=runtime.executor, node=node,
                                  max_concurrent=options.max_concurrent,
                                  lifecycle=lifecycle, watcher=hooks)
            await scheduler.use_sources(sources.jurisdictions)
            if hooks is not None:
                hooks.use_feeds(scheduler.feeds.values())
            jurisdictions = sources.jurisdictions
            probe = LoopLagProbe()
            supervisor = Supervisor(lifecycle)
            with lifecycle.signals(asyncio.get_running_loop()):
                await _start_side_tasks(supervisor, scheduler, probe, runtime.pool, notifier,
                                        url, options)
                if hooks is not None:
                    await _start_receiver(supervisor, hooks)
                log.info("daemon ready", node=node, feeds=len(scheduler.feeds),
                         max_concurrent=options.max_concurrent)
                notifier.ready(scheduler.status_line())
                while not lifecycle.stop.is_set():
                    await _watch(supervisor, lifecycle)
                    if lifecycle.reload.is_set() and not lifecycle.stop.is_set():
                        lifecycle.reload.clear()
                        jurisdictions = await _reload(scheduler, jurisdictions, options)
                        if hooks is not None:
                            hooks.use_feeds(scheduler.feeds.values())
                    notifier.status(scheduler.status_line())
                return await _shutdown(supervisor, scheduler, notifier, lifecycle,
                                       options)
    finally:
        notifier.close()


async def _start_side_tasks(supervisor: Supervisor, scheduler: Scheduler,
                            probe: LoopLagProbe, pool: asyncpg.Pool[Any], notifier: Notifier,
                            url: str, options: DaemonOptions) -> None:
    """Every side task, named; the metrics server is listening before this returns."""
    supervisor.start("scheduler", scheduler.run())
    supervisor.start("control-listener", listen_for_control(url, scheduler.wake))
    supervisor.start("loop-lag-probe", probe.run())
    if (interval := watchdog_interval_s()) is not None:
        supervisor.start("watchdog", ping_watchdog(notifier, interval))
    if options.metrics is not None:
        from zoningsync.daemon.metrics_server import serve_metrics

        listening: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        task = supervisor.start("metrics-server",
                                serve_metrics(*options.metrics, database_health(pool, probe),
                                              listening))
        await asyncio.wait({task, listening}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            await supervisor.stop_all()
            task.result()


async def _start_receiver(supervisor: Supervisor, hooks: HookRequests) -> None:
    """The webhook receiver and its request task; listening before this returns."""
    listening: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    supervisor.start("webhook-requests", hooks.run())
    task = supervisor.start("webhook-receiver",
                            serve_webhooks(*hooks.address, hooks.app(), listening))
    await asyncio.wait({task, listening}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        await supervisor.stop_all()
        task.result()


async def _watch(supervisor: Supervisor, lifecycle: Lifecycle) -> None:
    """Wait for a stop, a crash or a reload request."""
    reload = asyncio.ensure_future(lifecycle.reload.wait())
    watch = asyncio.ensure_future(supervisor.watch())
    try:
        await asyncio.wait({reload, watch}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        reload.cancel()
        if not watch.done():
            watch.cancel()
        await asyncio.gather(reload, watch, return_exceptions=True)


async def _reload(scheduler: Scheduler, old: tuple[Jurisdiction, ...],
                  options: DaemonOptions) -> tuple[Jurisdiction, ...]:
    """The sources read again; on any failure, the old set stays and the log says why."""
    try:
        new = await asyncio.to_thread(load_sources, options.sources)
    except ZoningsyncError as exc:
        log.error("reload failed; the old sources stay", error=describe_failure(exc))
        return old
    for error in new.errors:
        log.error("reload: source file does not load; its old definition stays",
                  file=str(error.file), error=redact(error.summary))
    jurisdictions = merge_reload(old, new)
    try:
        await scheduler.use_sources(jurisdictions)
    except Exception as exc:
        log.error("reload failed; the old sources stay", error=describe_failure(exc))
        return old
    log.info("sources reloaded", feeds=len(scheduler.feeds), errors=len(new.errors))
    return jurisdictions


async def _shutdown(supervisor: Supervisor, scheduler: Scheduler, notifier: Notifier,
                    lifecycle: Lifecycle, options: DaemonOptions) -> int:
    notifier.stopping()
    log.info("stopping", reason=lifecycle.reason, runs=len(scheduler.running),
             grace_s=options.shutdown_grace_s)
    if not await scheduler.stop_runs(options.shutdown_grace_s):
        log.error("runs did not stop within the grace period; aborting (they resume on "
                  "their next run)", grace_s=options.shutdown_grace_s)
        abort(1)
    await supervisor.stop_all()
    log.info("stopped", exit_code=lifecycle.exit_code)
    return lifecycle.exit_code
