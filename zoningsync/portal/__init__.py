"""A simulated county portal (ArcGIS REST) for the demo, the tests and the benchmark."""
