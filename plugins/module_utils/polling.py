"""Polling with a deadline: read until a condition holds, never longer than the timeout."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class WaitOutcome:
    done: bool
    waited: float
    last: Any


def poll_until(
    read: Callable[[], Any],
    done: Callable[[Any], bool],
    timeout: float,
    interval: float = 0.5,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> WaitOutcome:
    """Read until `done(reading)`, never longer than `timeout` seconds; the last reading is kept."""
    start = clock()
    deadline = start + timeout
    while True:
        reading = read()
        now = clock()
        if done(reading):
            return WaitOutcome(True, now - start, reading)
        if now >= deadline:
            return WaitOutcome(False, now - start, reading)
        sleep(max(0.0, min(interval, deadline - now)))
