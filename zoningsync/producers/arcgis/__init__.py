"""ArcGIS REST FeatureServer/MapServer layers."""
