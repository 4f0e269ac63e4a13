"""What the nodes serve, and their counters as a 15 s scrape sees them (numpy, seeded).

A node's traffic is piecewise (Phase): request rate, 5xx share by code, latency distribution.
Counts between two instants are Poisson (requests) split multinomially into status codes and
histogram buckets, the buckets being those the lab's edge binary exports. A restart resets every
counter to 0 (the series are pre-initialised, as edge_app.metrics does); a missed scrape leaves
no sample but a staleness marker, as Prometheus writes for every series of a target whose scrape
fails: instant queries see none of them until the next good scrape.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from edge_app.metrics import BUCKETS

CODES = ("200", "500", "502", "503", "504")
# Background 5xx of a healthy fleet, by code (mostly upstream 503/502, some 500, rare 504).
BACKGROUND_CODES = (("503", 0.5), ("502", 0.3), ("500", 0.15), ("504", 0.05))
LE = (*(repr(float(b)) for b in BUCKETS), "+Inf")


@dataclass(frozen=True)
class Latency:
    """A mixture of two lognormals (body and heavy tail), shifted by `shift` seconds."""

    median: float = 0.06
    sigma: float = 0.6
    tail_share: float = 0.03
    tail_median: float = 0.35
    tail_sigma: float = 0.5
    shift: float = 0.0

    def cdf(self, x: float) -> float:
        x -= self.shift
        if x <= 0:
            return 0.0

        def ln_cdf(median: float, sigma: float) -> float:
            return 0.5 * (1 + math.erf(math.log(x / median) / (sigma * math.sqrt(2))))

        body = ln_cdf(self.median, self.sigma)
        tail = ln_cdf(self.tail_median, self.tail_sigma) if self.tail_share else 0.0
        return (1 - self.tail_share) * body + self.tail_share * tail

    def bucket_probs(self) -> np.ndarray:
        """P(latency in each non-cumulative bucket), the last one being +Inf."""
        cum = [self.cdf(b) for b in BUCKETS] + [1.0]
        return np.diff(np.array([0.0, *cum]))


@dataclass(frozen=True)
class Mix:
    """What one series set (a node, or a node's rollout variant) serves while a phase lasts."""

    rate: float  # requests per second
    errors: Sequence[tuple[str, float]] = ()  # (code, share of requests)
    latency: Latency = field(default_factory=Latency)

    def code_probs(self) -> np.ndarray:
        probs = dict.fromkeys(CODES, 0.0)
        for code, share in self.errors:
            probs[code] += share
        probs["200"] = max(0.0, 1.0 - sum(v for c, v in probs.items() if c != "200"))
        return np.array([probs[c] for c in CODES])


def background(rate: float, share: float, latency: Latency | None = None) -> Mix:
    """A healthy node: `share` of its requests answered 5xx in the fleet's usual mix of codes."""
    errors = tuple((code, share * w) for code, w in BACKGROUND_CODES) if share else ()
    return Mix(rate, errors, latency or Latency())


def with_fault(mix: Mix, code: str | None = None, share: float = 0.0, slower: float = 0.0) -> Mix:
    """`mix` plus a fault: `share` more requests answered `code`, every request `slower` later."""
    errors = tuple(mix.errors) + (((code, share),) if code and share else ())
    lat = mix.latency
    return Mix(mix.rate, errors, Latency(lat.median, lat.sigma, lat.tail_share, lat.tail_median,
                                         lat.tail_sigma, lat.shift + slower))  # fmt: skip


@dataclass(frozen=True)
class Phase:
    start: float  # watch seconds from which `mix` applies
    mix: Mix


@dataclass
class Series:
    """One series set's samples as Prometheus stored them: sample times, raw counter values."""

    times: np.ndarray  # (S,)
    codes: np.ndarray  # (S, len(CODES)) raw counter values
    buckets: np.ndarray  # (S, len(LE)) raw cumulative bucket counters
    stale: np.ndarray = field(default_factory=lambda: np.empty(0))  # staleness markers' times

    def corrected(self, values: np.ndarray) -> np.ndarray:
        """Values with Prometheus' counter-reset correction: after a drop, add the value before it."""
        drops = np.zeros_like(values)
        drops[1:] = np.where(values[1:] < values[:-1], values[:-1], 0.0)
        return values + np.cumsum(drops, axis=0)


def simulate(
    rng: np.random.Generator,
    phases: Sequence[Phase],
    begin: float,
    end: float,
    scrape: float,
    restart_at: float | None = None,
    uptime: float = 86400.0,
    miss: float = 0.0,
) -> Series:
    """Samples of one series set scraped every `scrape` s (random offset) from `begin` to `end`.

    Before `restart_at` the counters carry `uptime` seconds of the first phase's traffic; at it
    they restart from 0. `miss` is the chance that a scrape fails: no sample, a staleness marker.
    """
    offset = rng.uniform(0, scrape)
    scrapes = np.arange(begin + offset, end, scrape)
    cuts = {p.start for p in phases if begin < p.start < end}
    if restart_at is not None and begin < restart_at < end:
        cuts.add(restart_at)
    grid = np.unique(np.concatenate([[begin], scrapes, sorted(cuts)]))
    dur = np.diff(grid, append=grid[-1])  # counts in [grid[i], grid[i+1])
    starts = [p.start for p in phases]
    idx = np.clip(np.searchsorted(starts, grid, side="right") - 1, 0, len(phases) - 1)
    n_codes = np.zeros((len(grid), len(CODES)))
    n_buckets = np.zeros((len(grid), len(LE)))
    for i, phase in enumerate(phases):
        sel = idx == i
        if not sel.any():
            continue
        n = rng.poisson(phase.mix.rate * dur[sel])
        n_codes[sel] = rng.multinomial(n, phase.mix.code_probs())
        n_buckets[sel] = rng.multinomial(n, phase.mix.latency.bucket_probs())
    # Counter value at grid[i] = counts in [.., grid[i]): shift by one.
    c_codes = np.vstack([np.zeros(len(CODES)), np.cumsum(n_codes, axis=0)[:-1]])
    c_buckets = np.vstack([np.zeros(len(LE)), np.cumsum(np.cumsum(n_buckets, axis=1), axis=0)[:-1]])
    first = phases[0].mix
    base_codes = np.round(first.rate * uptime * first.code_probs())
    base_buckets = np.round(first.rate * uptime * np.cumsum(first.latency.bucket_probs()))
    if restart_at is not None and begin < restart_at < end:
        at = int(np.searchsorted(grid, restart_at))
        after = grid >= restart_at
        c_codes[after] -= c_codes[at]
        c_buckets[after] -= c_buckets[at]
        c_codes[~after] += base_codes
        c_buckets[~after] += base_buckets
    else:
        c_codes += base_codes
        c_buckets += base_buckets
    scraped = np.isin(grid, scrapes)
    keep = scraped.copy()
    if miss:
        keep &= rng.random(len(grid)) >= miss
    return Series(grid[keep], c_codes[keep], c_buckets[keep], grid[scraped & ~keep])
