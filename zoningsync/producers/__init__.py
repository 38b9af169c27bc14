"""Producers: each turns one kind of upstream source into pages of records."""
