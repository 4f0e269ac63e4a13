"""What Prometheus answers, computed from simulated samples with Prometheus' own rules.

increase() takes the samples in (T - range, T], corrects counter resets (a drop adds the value
before it), and extrapolates the difference towards the range's edges: by the gap to an edge
when it is under 1.1 average sample intervals, else by half an interval, and never below zero
(a counter's first value limits the extrapolation to its start). A series with fewer than two
samples in range gives no result. histogram_quantile() interpolates linearly inside the bucket
where the rank falls (the +Inf bucket answers the highest finite bound). An instant selector
takes the newest sample at or before T within the 5-minute lookback, and returns nothing when a
staleness marker (a failed scrape) is newer than it; range selectors ignore the markers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from edge_app.metrics import BUCKETS

from watcher.calibration.traffic import Series

LOOKBACK = 300.0


def increase(series: Series, values: np.ndarray, times: np.ndarray, rng: float) -> np.ndarray:
    """increase(x[rng]) at each of `times` for every column of `values`: (P, M), NaN = no result."""
    t = series.times
    corr = series.corrected(values)
    lo = np.searchsorted(t, times - rng, side="right")
    hi = np.searchsorted(t, times, side="right") - 1
    ok = hi - lo >= 1
    lo_c, hi_c = np.where(ok, lo, 0), np.where(ok, hi, 0)
    result = corr[hi_c] - corr[lo_c]
    first = values[lo_c]
    sampled = t[hi_c] - t[lo_c]
    safe = np.where(ok, sampled, 1.0)
    avg = safe / np.maximum(hi_c - lo_c, 1)
    threshold = (avg * 1.1)[:, None]
    to_start = (t[lo_c] - (times - rng))[:, None] * np.ones_like(result)
    to_end = (times - t[hi_c])[:, None] * np.ones_like(result)
    half = (avg / 2)[:, None] * np.ones_like(result)
    to_start = np.where(to_start >= threshold, half, to_start)
    with np.errstate(divide="ignore", invalid="ignore"):
        to_zero = safe[:, None] * (first / result)
    limit = (result > 0) & (first >= 0) & (to_zero < to_start)
    to_start = np.where(limit, to_zero, to_start)
    to_end = np.where(to_end >= threshold, half, to_end)
    factor = (safe[:, None] + to_start + to_end) / safe[:, None]
    out = result * factor
    out[~ok] = np.nan
    return out


def latest(series: Series, values: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The instant selector at each of `times`: (values (P, M), sample times (P,)); NaN = none."""
    t = series.times
    hi = np.searchsorted(t, times, side="right") - 1
    hi_c = np.maximum(hi, 0)
    ok = (hi >= 0) & (times - t[hi_c] <= LOOKBACK)
    # A staleness marker after the newest sample hides the series until its next sample.
    marked = np.searchsorted(series.stale, times, side="right")
    ok &= marked == np.searchsorted(series.stale, t[hi_c], side="right")
    vals = values[hi_c].astype(float)
    vals[~ok] = np.nan
    stamp = np.where(ok, t[hi_c], np.nan)
    return vals, stamp


def nansum_present(parts: Sequence[np.ndarray]) -> np.ndarray:
    """sum() over series: NaN (no series) only where every part is NaN."""
    stack = np.stack(parts)
    out = np.nansum(stack, axis=0)
    out[np.all(np.isnan(stack), axis=0)] = np.nan
    return out


def histogram_quantile(q: float, cumulative: np.ndarray) -> float:
    """histogram_quantile(q, ...) for one row of cumulative bucket values (last = +Inf)."""
    if np.isnan(cumulative).all():
        return math.nan
    counts = np.maximum.accumulate(np.nan_to_num(cumulative))
    total = counts[-1]
    if total <= 0:
        return math.nan
    rank = q * total
    b = int(np.searchsorted(counts, rank, side="left"))
    if b >= len(BUCKETS):
        return float(BUCKETS[-1])
    start = 0.0 if b == 0 else float(BUCKETS[b - 1])
    below = 0.0 if b == 0 else counts[b - 1]
    inside = counts[b] - below
    if inside <= 0:
        return float(BUCKETS[b])
    return start + (float(BUCKETS[b]) - start) * (rank - below) / inside
