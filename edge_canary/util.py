"""Small helpers every tool shares."""

from __future__ import annotations


def truthy(value: str | None) -> bool:
    """A make/environment flag: 1, true, yes or on (any case) is set; anything else is not."""
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}
