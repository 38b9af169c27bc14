"""Subcommands of the `zoningsync` command, one module per family."""
