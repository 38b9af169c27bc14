"""Rezoning cases: the case model and how cases are read from HTML, PDF and Legistar."""
