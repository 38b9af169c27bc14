"""A simulated county portal (ArcGIS REST, planning pages, agenda PDFs, Legistar) for
the demo, the tests and the benchmark.

`county` generates a deterministic Wake County (columns + footprints on demand,
`columns` and `shapes`), `where` parses the SQL subset, `query` answers one
`/query`, `behaviours` holds the fault knobs, `arcgis` maps them to HTTP routes.
`cases` generates rezoning cases on the county's parcels (`Cases.expected()` is
the ground truth integration tests check against), `pages` and `agendas` draw
them as HTML and PDF, `planning` serves those with conditional GET, `odata` and
`legistar` answer them as Legistar matters, and `server` starts it all
(`run_portal`, `python -m zoningsync.portal`).
"""

from zoningsync.portal.cases import Cases

__all__ = ["Cases"]
