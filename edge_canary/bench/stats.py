"""The bench's arithmetic (pure): loadgen lines → drops and p99, time to revert, medians, ratios, fits.

Nothing here touches the lab; the bench (edge_canary.bench.cli) feeds it what it measured.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from edge_canary.lab.loadgen_records import NOT_SENT, Request, parse_requests  # noqa: F401 (parse_requests: st.parse_requests)
from edge_canary.util import epoch


@dataclass(frozen=True)
class Drops:
    """What the clients saw during one operation, the broken release's own failures set apart."""

    sent: int  # scheduled requests in the window (not-sent ones included)
    dropped: int  # failed, and not answered by the release under test: the operation's fault
    not_sent: int  # part of dropped: the loadgen's in-flight limit was full (the fleet stalled)
    by_release: int  # failures the broken release produced itself (not counted as dropped)


def between(requests: Sequence[Request], start: float, end: float) -> list[Request]:
    return [r for r in requests if start <= r.start < end]


def count_drops(requests: Sequence[Request], release: str | None = None) -> Drops:
    """Failures that are the operation's fault: a failure answered by `release` itself (its version header)
    is the broken binary doing what it was built to do, so it is counted apart."""
    by_release = [r for r in requests if r.failed and release is not None and r.version == release]
    dropped = [r for r in requests if r.failed and not (release is not None and r.version == release)]
    return Drops(sent=len(requests), dropped=len(dropped),
                 not_sent=sum(1 for r in dropped if r.error == NOT_SENT), by_release=len(by_release))


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def p99(requests: Sequence[Request], exclude_version: str | None = None) -> float | None:
    """p99 latency of the answered requests, leaving out a deliberately slow release's own answers."""
    return percentile([r.latency_s for r in requests
                       if r.latency_s is not None and r.status is not None
                       and (exclude_version is None or r.version != exclude_version)], 99)


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, or None when it is undefined (a missing value or a zero denominator)."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def median(values: Iterable[float | None]) -> float | None:
    """Median of the values that exist; None when none do."""
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def first_bad_answer(requests: Sequence[Request], release: str, slow_s: float) -> float | None:
    """When the release first served a bad answer (a failure, or slower than slow_s): the answer's time."""
    times = [r.answered_at for r in requests
             if r.version == release and r.answered_at is not None
             and (r.failed or (r.latency_s or 0.0) > slow_s)]
    return min(times) if times else None


def last_bad_answer(requests: Sequence[Request], release: str, slow_s: float) -> float | None:
    """When the release last served a bad answer: the end of the users' exposure to it."""
    times = [r.answered_at for r in requests
             if r.version == release and r.answered_at is not None
             and (r.failed or (r.latency_s or 0.0) > slow_s)]
    return max(times) if times else None


def slope(points: Sequence[tuple[float, float]]) -> float | None:
    """Least-squares slope of y over x (e.g. CPU seconds over nodes); None without two distinct x."""
    xs = [x for x, _ in points]
    if len(set(xs)) < 2:
        return None
    mx, my = statistics.fmean(xs), statistics.fmean(y for _, y in points)
    return sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x in xs)


def first_seen(samples: Sequence[tuple[float, str | None]], version: str, after: float) -> float | None:
    """The first poll at or after `after` at which the node answered /version with `version`."""
    times = [t for t, v in samples if t >= after and v == version]
    return min(times) if times else None


def floor_seconds(scrape_interval: float, range_s: float, interval: float, consecutive: int) -> float:
    """The earliest a probe can see a bad release: one scrape to get a sample in, the rate window to fill
    enough for the judge, and `consecutive` red probes one interval apart (the first at most one interval
    late); the revert itself comes on top."""
    return scrape_interval + range_s + interval * consecutive


@dataclass(frozen=True)
class Fit:
    fixed_s: float
    per_batch_s: float
    per_node_s: float
    # the free least-squares fit, when it made a term negative and this one is constrained to ≥ 0
    free: tuple[float, float, float] | None = None


TERMS = 3  # fixed, per batch, per node


def fit_roll_time(points: Sequence[tuple[int, int, float]]) -> Fit | None:
    """Least squares total ≈ fixed + per_batch·batches + per_node·nodes over (batches, nodes, total)
    points, no term negative; None when the points cannot separate the three (fewer than 3 or collinear).

    A roll cannot take negative time per batch or per node, but a free fit over fleet sizes that hardly
    vary their batch counts, or whose largest fleet saturated the machine, can say so: then the best fit
    with the offending terms at 0 is taken (the smallest residual over the subsets of terms, which is the
    non-negative least-squares solution for three terms) and the free one is kept beside it."""
    rows = [(1.0, float(b), float(n)) for b, n, _ in points]
    ys = [t for _, _, t in points]
    free = _least_squares(rows, ys, tuple(range(TERMS)))
    if free is None:
        return None
    if min(free) >= -1e-9 * max(abs(y) for y in ys):  # rounding, not a negative term
        return Fit(*free)
    feasible = [c for keep in _subsets() if (c := _least_squares(rows, ys, keep)) is not None and min(c) >= 0]
    best = min(feasible, key=lambda c: _residual(rows, ys, c), default=(0.0, 0.0, 0.0))
    return Fit(*best, free=free)


def _subsets() -> list[tuple[int, ...]]:
    return [tuple(i for i in range(TERMS) if mask >> i & 1) for mask in range(1, 2 ** TERMS - 1)]


def _residual(rows: list[tuple[float, float, float]], ys: list[float], coef: tuple[float, float, float]) -> float:
    return sum((y - sum(c * x for c, x in zip(coef, r, strict=True))) ** 2 for r, y in zip(rows, ys, strict=True))


def _least_squares(rows: list[tuple[float, float, float]], ys: list[float],
                   keep: tuple[int, ...]) -> tuple[float, float, float] | None:
    """The least-squares coefficients over the terms in `keep` (the others 0); None when the points
    cannot separate those terms."""
    if len(rows) < len(keep):
        return None
    ata = [[sum(r[i] * r[j] for r in rows) for j in keep] for i in keep]
    aty = [sum(r[i] * y for r, y in zip(rows, ys, strict=True)) for i in keep]
    solution = _solve(ata, aty)
    if solution is None:
        return None
    coef = [0.0] * TERMS
    for i, value in zip(keep, solution, strict=True):
        coef[i] = value
    return coef[0], coef[1], coef[2]


def _solve(a: list[list[float]], b: list[float]) -> list[float] | None:
    """Gauss-Jordan elimination with partial pivoting; None when `a` is singular."""
    n = len(b)
    m = [row[:] + [rhs] for row, rhs in zip(a, b, strict=True)]
    scale = max(1.0, max(abs(x) for row in a for x in row))
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(m[r][col]))
        if abs(m[pivot][col]) < 1e-9 * scale:
            return None
        m[col], m[pivot] = m[pivot], m[col]
        for r in range(n):
            if r != col:
                factor = m[r][col] / m[col][col]
                m[r] = [x - factor * y for x, y in zip(m[r], m[col], strict=True)]
    return [m[i][n] / m[i][i] for i in range(n)]


def step_durations(record: dict[str, object]) -> dict[str, float]:
    """Seconds per step of one node's deploy record (steps: [{step, at}, …] from the node_release role's roll)."""
    steps = record.get("steps")
    if not isinstance(steps, list):
        return {}
    out: dict[str, float] = {}
    previous: float | None = None
    for step in steps:
        try:
            at = float(step["at"])
        except (KeyError, TypeError, ValueError):
            continue
        if previous is not None:
            out[str(step.get("step"))] = at - previous
        previous = at
    return out


def node_span(record: dict[str, object]) -> tuple[float, float] | None:
    """(start, end) of one node's roll from its record."""
    steps = record.get("steps")
    if not isinstance(steps, list):
        return None
    times = []
    for step in steps:
        try:
            times.append(float(step["at"]))
        except (KeyError, TypeError, ValueError):
            continue
    return (min(times), max(times)) if len(times) >= 2 else None


def per_hour(amount: float, elapsed_s: float) -> float | None:
    return None if elapsed_s <= 0 else amount * 3600.0 / elapsed_s


def batches(peers: int, batch: int) -> int:
    """Batches the peers are rolled in, plus the canary's own."""
    return 1 + math.ceil(peers / batch) if peers > 0 else 1


def cpu_seconds(proc_stat: str, ticks_per_second: int) -> float:
    """utime + stime (+ waited-for children) from one /proc/<pid>/stat line."""
    fields = proc_stat.rsplit(")", 1)[1].split()
    # after the ")" field 3 is state; utime, stime, cutime, cstime are fields 14..17 of the full line
    utime, stime, cutime, cstime = (int(fields[i]) for i in range(11, 15))
    return (utime + stime + cutime + cstime) / ticks_per_second


def times_children_seconds(times_output: str) -> float:
    """CPU seconds of the children in the output of sh's `times`, appended once per run: each run's two
    lines are the shell's own user and system time, then its children's ("0m0.310000s 0m0.100000s")."""
    total = 0.0
    lines = [line.split() for line in times_output.splitlines() if line.strip()]
    for children in lines[1::2]:
        for value in children:
            minutes, _, seconds = value.rstrip("s").partition("m")
            total += int(minutes) * 60 + float(seconds)
    return total


def peak_rss_kib(proc_status: str) -> int | None:
    for line in proc_status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return None


@dataclass(frozen=True)
class WatcherTimeline:
    """What the watcher's decision log says about one auto-revert (epoch seconds)."""

    started_at: float | None  # the watcher's first line: it starts once the canary is rolled
    red_at: float | None  # the first red probe
    revert_s: float | None  # how long the rollback play it ran took
    verdict_at: float | None = None  # the probe that decided: the red verdict (the fast-path drain follows)


def watcher_timeline(records: Iterable[dict[str, object]]) -> WatcherTimeline:
    started = red = revert = verdict = None
    for record in records:
        event = record.get("event")
        if event == "start" and started is None:
            started = epoch(record.get("ts"))
        elif event == "probe" and record.get("state") == "red" and red is None:
            red = epoch(record.get("ts"))
        if event == "probe" and record.get("decision") and verdict is None:
            verdict = epoch(record.get("ts"))
        elif event == "revert" and revert is None:
            seconds = record.get("seconds")
            revert = float(seconds) if isinstance(seconds, int | float) else None
    return WatcherTimeline(started, red, revert, verdict)
