"""`python -m zoningsync` is the `zoningsync` command."""

from zoningsync.cli import main

main()
