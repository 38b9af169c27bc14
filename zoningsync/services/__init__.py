"""What the CLI and the daemon both do: sync feeds, pause, resume, roll back, report status.

Commands parse flags and format answers; services act, on the Settings the CLI
was given. Nothing here imports click or the CLI, and the daemon builds its
feed runs with the same `runtime.sync_runtime` as `zoningsync sync`.
"""
