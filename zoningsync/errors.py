"""The exceptions zoningsync raises on purpose.

Every error a user can cause derives from `ZoningsyncError`; the CLI prints its
message as one line and exits with its `exit_code`. A subclass's docstring is its
default message, so raising `ClusterNotRunning()` alone already says something
useful. Library errors (asyncpg, aiohttp, OSError) are converted at the boundary
where they happen, never shown to a user as tracebacks.
"""

from __future__ import annotations


class ZoningsyncError(Exception):
    """zoningsync failed."""

    exit_code = 1

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())

    @property
    def message(self) -> str:
        return str(self.args[0])


class UsageError(ZoningsyncError):
    """The command line or a setting is invalid."""

    exit_code = 2


class SettingsError(UsageError):
    """A setting is invalid."""


class SourceConfigError(UsageError):
    """A sources/*.toml file is invalid."""


class DatabaseError(ZoningsyncError):
    """The database refused or failed a request."""


class DatabaseUnreachable(DatabaseError):
    """The database cannot be reached."""


class PostgisMissing(DatabaseError):
    """PostGIS is not available in the database."""


class MigrationError(DatabaseError):
    """A migration could not be applied."""


class SchemaOutdated(DatabaseError):
    """The database schema is older than this zoningsync: run `zoningsync migrate`."""


class ClusterError(ZoningsyncError):
    """The embedded PostgreSQL cluster failed."""


class BinariesMissing(ClusterError):
    """PostgreSQL server binaries are not installed."""


class ClusterNotRunning(ClusterError):
    """The embedded PostgreSQL cluster is not running: run `zoningsync db start`."""


class FeedBusy(ZoningsyncError):
    """Another zoningsync process is syncing this feed right now."""

    # EX_TEMPFAIL (sysexits.h): nothing failed, try again later; a scheduler or a
    # cron wrapper can tell it from a failed run (1).
    exit_code = 75


class RunFailed(ZoningsyncError):
    """The run failed; it resumes where it stopped on the next sync."""


class FetchError(ZoningsyncError):
    """An upstream server did not give a usable answer."""


class TokenRejected(FetchError):
    """The upstream server rejected the access token."""


class CircuitOpen(FetchError):
    """Too many consecutive failures from this host; zoningsync stopped asking it for now."""


class UpstreamRefused(FetchError):
    """The upstream server refused the request; asking again will not help."""


MAX_FAILURE_CHARS = 500


def describe_failure(exc: BaseException) -> str:
    """Any exception as one redacted line: what a run records and a user reads.

    A ZoningsyncError says what happened in its own words; anything else (a
    KeyError from a weird answer, a RecursionError) is named by its type, since
    its text alone ('PIN') means nothing.
    """
    from zoningsync.redact import redact

    if isinstance(exc, ZoningsyncError):
        text = exc.message
    else:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    line = " ".join(redact(text).split())
    if len(line) > MAX_FAILURE_CHARS:
        line = line[:MAX_FAILURE_CHARS - 1] + "…"
    return line
