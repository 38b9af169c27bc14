"""zoningsync keeps a PostGIS mirror of municipal zoning data with full change history."""

__version__ = "0.1.0"  # the package's version: pyproject.toml reads it from here
