"""zoningsync's SQL migrations, applied in file-name order by `zoningsync migrate`.

This folder is the `zoningsync.migrations` package once installed, so the SQL
files travel with the code whatever the source layout.
"""
