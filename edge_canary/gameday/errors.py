"""The ways a drill stops early, each with a message that says what to do."""

from __future__ import annotations


class RunError(RuntimeError):
    """A tool could not be run as the drill needs; the message says what to do."""


class DrillError(RuntimeError):
    """The drill cannot go on; the message says why and what to do."""


class NotReady(DrillError):
    """The drill cannot start: nothing was changed."""
