"""The `zoningsync` command.

Every option has an environment variable (shown in --help). Logs go to stderr;
stdout carries only each command's answer, so scripts can pipe it. Errors are one
line on stderr and an exit code: 2 for usage and configuration, 1 for a failed
run or an unreachable service.
"""

from __future__ import annotations

import sys

import click

from zoningsync import __version__
from zoningsync.commands.admin import audit, pause, resume
from zoningsync.commands.context import emit_json, run_async, settings_of
from zoningsync.commands.db import db
from zoningsync.commands.demo import demo
from zoningsync.commands.quarantine import quarantine
from zoningsync.commands.rollback import rollback
from zoningsync.commands.run import run
from zoningsync.commands.sources import sources
from zoningsync.commands.status import status
from zoningsync.commands.sync import runs, sync
from zoningsync.errors import ZoningsyncError
from zoningsync.gc_policy import tune_for_bulk_parsing
from zoningsync.observability import configure_logging
from zoningsync.redact import redact
from zoningsync.settings import load_settings


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="zoningsync")
@click.option("--database-url", envvar="ZONINGSYNC_DATABASE_URL", show_envvar=True,
              help="libpq URL of the PostGIS database; unset: the embedded cluster.")
@click.option("--state-dir", envvar="ZONINGSYNC_STATE_DIR", show_envvar=True,
              help="State directory (embedded cluster). Default: XDG data dir, or "
                   "/var/lib/zoningsync for root and services.")
@click.option("--config", "config_file", envvar="ZONINGSYNC_CONFIG", show_envvar=True,
              help="Settings file. Default: /etc/zoningsync/zoningsync.toml if present.")
@click.option("--log-level", envvar="ZONINGSYNC_LOG_LEVEL", show_envvar=True,
              type=click.Choice(["debug", "info", "warning", "error"]), default=None,
              help="Log level (default info).")
@click.pass_context
def cli(ctx: click.Context, database_url: str | None, state_dir: str | None,
        config_file: str | None, log_level: str | None) -> None:
    """Keep a PostGIS mirror of municipal zoning data, with full change history."""
    settings = load_settings(
        {"database_url": database_url, "state_dir": state_dir, "log_level": log_level},
        config_file=config_file,
    )
    configure_logging(settings.log_level)
    ctx.obj = settings


cli.add_command(db)
cli.add_command(demo)
cli.add_command(sync)
cli.add_command(runs)
cli.add_command(quarantine)
cli.add_command(sources)
cli.add_command(run)
cli.add_command(status)
cli.add_command(pause)
cli.add_command(resume)
cli.add_command(rollback)
cli.add_command(audit)


@cli.command()
@click.option("--status", "show_status", is_flag=True, help="List applied and pending migrations.")
@click.option("--json", "as_json", is_flag=True, help="Answer as JSON.")
@click.pass_context
def migrate(ctx: click.Context, show_status: bool, as_json: bool) -> None:
    """Apply pending schema migrations (each in its own transaction)."""
    from zoningsync.database import database_url
    from zoningsync.migrate import apply_migrations, migration_status

    settings = settings_of(ctx)

    async def go() -> None:
        url = await database_url(settings)
        if show_status:
            states = await migration_status(url)
            if as_json:
                emit_json([s.__dict__ for s in states])
            else:
                for s in states:
                    when = s.applied_at.isoformat() if s.applied_at else ""
                    click.echo(f"{s.name:40} {s.state:8} {when}")
            return
        applied = await apply_migrations(url)
        if as_json:
            emit_json({"applied": applied})
        else:
            click.echo("\n".join(f"applied {name}" for name in applied) or "schema is current")

    run_async(go())


def main() -> None:
    tune_for_bulk_parsing()
    try:
        code = cli.main(prog_name="zoningsync", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("zoningsync: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ZoningsyncError as exc:
        click.echo(redact(f"zoningsync: error: {' '.join(exc.message.split())}"), err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("zoningsync: interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    except Exception as exc:  # a bug or an unconverted library error: still one line
        click.echo(redact(f"zoningsync: internal error: {type(exc).__name__}: "
                          f"{' '.join(str(exc).split())}"), err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)

