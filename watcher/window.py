"""When the window starts: at the canary's first requests after it is back in rotation.

The deploy starts the watcher while the canary is still out of rotation and, just before it puts
the canary back, writes that time into `ready_file`. The watcher waits for the file, reads both
sides' raw counters pinned at that time (the evidence baseline: nothing the canary served before
it was back in rotation is counted), then reads them every scrape interval until the canary's
counters rise. The window starts there, and its first probe counts those first requests. Without
a ready file (a rollout stage, a watcher run by hand) the baseline is the watcher's first reading.
Both waits together are bounded by `wait_for_traffic`. Past it without the ready file, the play that
started the watcher stopped before putting the canary back (Ctrl-C, a killed controller, a cancelled
AWX job): the canary is left drained on the new release, so the watcher reverts it instead of judging
a window it cannot see. Past it with the ready file but no canary traffic, the window starts anyway.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from watcher.decision_log import DecisionLog
from watcher.evidence import Counters, Prober, difference
from watcher.prom import PromError
from watcher.settings import Settings
from watcher.sli import ShapeError

# How often the ready file is looked for: it is a local file, and the canary's first requests
# follow it within a second.
READY_POLL_S = 0.2


def ready_time(path: str) -> float | None:
    """The time written in the ready file (its mtime if unreadable as a number); None: not there."""
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
        mtime = os.stat(path).st_mtime
    except (OSError, UnicodeDecodeError):
        return None
    try:
        return float(text)
    except ValueError:
        return mtime


def first_requests(base: dict[str, Counters], now: dict[str, Counters]) -> float:
    """The canary's requests between two readings (a restarted counter counts from 0)."""
    codes, _ = difference(base["canary"].counts, now["canary"].counts)
    return sum(codes.values())


def wait_for_window(
    settings: Settings,
    prober: Prober,
    log: DecisionLog,
    out: Callable[[str], None],
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    wall: Callable[[], float] | None,
    in_rotation: Callable[[], float | None] | None,
) -> bool:
    """Hold the window until the canary's first requests after it is back in rotation; leaves
    the baseline in `prober` (None when no reading succeeded: the first probe takes it). False when
    the canary was never put back in rotation (no ready signal in time): there is no window to judge."""
    began = clock()
    deadline = began + settings.wait_for_traffic

    def waited() -> float:
        return round(clock() - began, 3)

    rotation_at: float | None = None
    if in_rotation is not None:
        out(f"waiting up to {settings.wait_for_traffic:g}s for the canary to be put back in rotation")
        while (rotation_at := in_rotation()) is None:
            if clock() >= deadline:
                log.write("traffic", waited=waited(), in_rotation=False, seen=False)
                out(f"the canary was not put back in rotation within {settings.wait_for_traffic:g}s")
                return False
            sleep(min(READY_POLL_S, max(0.0, deadline - clock())))
        out(f"the canary is back in rotation after {waited():.1f}s: waiting for its first requests")
    out(f"waiting up to {max(0.0, deadline - clock()):.0f}s for the canary's first requests")
    # The baseline is read at the rotation time itself, so nothing served before it is counted.
    now = (lambda: wall()) if wall is not None else (lambda: None)
    first = min(rotation_at, wall()) if rotation_at is not None and wall is not None else now()
    base: dict[str, Counters] | None = None
    while True:
        try:
            reading = prober.read(first if base is None else now())
        except (PromError, ShapeError):
            reading = None
        if reading is not None and base is None:
            base = reading
        elif reading is not None and base is not None and (n := first_requests(base, reading)) > 0:
            prober.previous, prober.previous_at = base, 0.0
            log.write("traffic", waited=waited(), seen=True, in_rotation_at=rotation_at, first_requests=n,
                      window_start=round(wall(), 3) if wall else None)  # fmt: skip
            out(f"the canary takes traffic after {waited():.1f}s: the window starts")
            return True
        if clock() >= deadline:
            if base is not None:
                prober.previous, prober.previous_at = base, 0.0
            log.write("traffic", waited=waited(), in_rotation_at=rotation_at, seen=False)
            out("no canary traffic seen: the window starts anyway (its probes will be inconclusive)")
            return True
        sleep(min(settings.scrape_interval, max(0.0, deadline - clock())))


def rotation_signal(settings: Settings) -> Callable[[], float | None] | None:
    if not settings.ready_file:
        return None
    path = settings.ready_file
    return lambda: ready_time(path)


__all__ = ["first_requests", "ready_time", "rotation_signal", "wait_for_window"]
