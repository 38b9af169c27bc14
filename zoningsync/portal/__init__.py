"""A simulated county portal (ArcGIS REST) for the demo, the tests and the benchmark.

`county` generates a deterministic Wake County (columns + footprints on demand,
`columns` and `shapes`), `where` parses the SQL subset, `query` answers one
`/query`, `behaviours` holds the fault knobs, `arcgis` maps them to HTTP routes,
and `server` starts it all (`run_portal`, `python -m zoningsync.portal`).
"""
