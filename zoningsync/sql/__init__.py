"""SQL queries, kept as SQL files and loaded by name."""
