"""The daemon: `zoningsync run`'s lifecycle, scheduler, systemd notifications and side tasks."""
