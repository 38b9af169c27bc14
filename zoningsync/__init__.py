"""zoningsync keeps a PostGIS mirror of municipal zoning data with full change history."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("zoningsync")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
