"""The guard against a half-finished publish.

Counties republish by truncate-and-append: read in the middle of it, a layer
looks as if thousands of its features had been deleted. A run that would retire
more than a set share of what a feed stores stops before writing anything, and
says so; the feed's next run reads again. Pure, so every store (features today,
cases later) asks it the same way.
"""

from __future__ import annotations


def retire_guard(current: int, retiring: int, fraction: float, *,
                 what: str = "features") -> str | None:
    """Why retiring `retiring` of the `current` stored `what` looks wrong; None if it does not.

    Nothing stored yet (a first load) is never held; `fraction` 1 never holds a
    run, 0 holds any retirement.
    """
    if current <= 0 or retiring <= fraction * current:
        return None
    return (f"it would retire {retiring} of the {current} {what} stored "
            f"({retiring / current:.0%}), more than max_retire_fraction = {fraction:g} allows")
