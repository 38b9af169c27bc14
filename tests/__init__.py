"""zoningsync test suite: real PostGIS, real local HTTP servers."""
