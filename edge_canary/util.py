"""Small helpers every tool shares."""

from __future__ import annotations

from datetime import datetime


def truthy(value: str | None) -> bool:
    """A make/environment flag: 1, true, yes or on (any case) is set; anything else is not."""
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def epoch(stamp: object) -> float | None:
    """An ISO 8601 time stamp (as the watcher's logs and ansible-runner's events write them) in epoch
    seconds; None when it is not one."""
    try:
        return datetime.fromisoformat(str(stamp)).timestamp()
    except ValueError:
        return None
