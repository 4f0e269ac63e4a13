"""Simulated windows through the watcher's own probe (evidence.Prober) and judge.

SimProm answers the watcher's rendered queries from simulated samples, as Prometheus would at
the pinned `time=` of each probe: raw counters and bucket counters per series (the newest
sample within the lookback; none after a failed scrape until the next good one), and
max(timestamp()). run_window() drives the Prober and the judge exactly as watch.run_watch does,
probe by probe, and reports what the window ended in and when.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from watcher import judge
from watcher.calibration import promsim
from watcher.calibration.traffic import CODES, LE, Series
from watcher.evidence import Prober
from watcher.prom import PromError, QueryResult, Sample
from watcher.settings import Settings
from watcher.watch import rendered

EPOCH = 1_700_000_000.0  # Prometheus' clock at watch time 0


@dataclass
class SideAnswers:
    """What Prometheus would answer about one side's series at each probe time (row p)."""

    codes: list[np.ndarray]  # per series: (P, codes) newest raw value, NaN = none
    buckets: list[np.ndarray]  # per series: (P, le)
    stamps: list[np.ndarray]  # per series: (P,) newest sample time (watch seconds)


def answers(series: Sequence[Series], times: np.ndarray) -> SideAnswers:
    codes, buckets, stamps = [], [], []
    for s in series:
        vals, stamp = promsim.latest(s, s.codes, times)
        codes.append(vals)
        buckets.append(promsim.latest(s, s.buckets, times)[0])
        stamps.append(stamp)
    return SideAnswers(codes, buckets, stamps)


class SimProm:
    """A Querier answering the watcher's queries at the row of the pinned time asked for."""

    def __init__(
        self,
        settings: Settings,
        sides: dict[str, SideAnswers],
        times: np.ndarray,
        rng: np.random.Generator,
        fail: float = 0.0,
        down: float | None = None,
    ) -> None:
        self.fail = fail
        self.down = None if down is None else EPOCH + down
        self.rng = rng
        self.rows = {round(EPOCH + float(t), 3): i for i, t in enumerate(times)}
        self.kinds: dict[str, tuple[str, str]] = {}
        for side, q in rendered(settings).items():
            self.kinds[q.counts] = (side, "counts")
            self.kinds[q.buckets] = (side, "buckets")
            self.kinds[q.freshness] = (side, "freshness")
        self.sides = sides

    def query(self, promql: str, time: float | None = None) -> QueryResult:
        if self.fail and self.rng.random() < self.fail:
            raise PromError(f"query {promql!r}: simulated timeout")
        if self.down is not None and time is not None and time >= self.down:
            raise PromError(f"query {promql!r}: Prometheus is down")
        assert time is not None, "the watcher pins every query's time"
        side, kind = self.kinds[promql]
        a, p = self.sides[side], self.rows[round(time, 3)]
        samples: list[Sample] = []
        if kind == "freshness":
            newest = [float(st[p]) for st in a.stamps if not math.isnan(st[p])]
            if newest:
                samples.append(Sample({}, EPOCH + max(newest), time))
        else:
            label, names, per_series = (
                ("code", CODES, a.codes) if kind == "counts" else ("le", LE, a.buckets)
            )
            for i, values in enumerate(per_series):
                for name, v in zip(names, values[p], strict=True):
                    if not math.isnan(v):
                        samples.append(Sample({"series": str(i), label: name}, float(v), time))
        return QueryResult(promql, "vector", tuple(samples))


@dataclass(frozen=True)
class WindowOutcome:
    verdict: str  # promote | reverted | hold
    at: float | None  # watch seconds of the acting probe (None: the window ran out)
    blind: bool  # acted on the blind policy
    kinds: tuple[str, ...]  # red kinds of the acting probe


def run_window(
    settings: Settings,
    canary: Sequence[Series],
    control: Sequence[Series],
    rng: np.random.Generator,
    fail: float = 0.0,
    down: float | None = None,
) -> WindowOutcome:
    """One window; `fail`: chance a query fails, `down`: watch seconds from which every query fails."""
    n = settings.planned_probes
    times = np.arange(0, n + 1) * settings.interval  # the baseline at 0, then every probe
    sides = {"canary": answers(canary, times), "control": answers(control, times)}
    client = SimProm(settings, sides, times, rng, fail, down)
    rules = settings.rules
    prober = Prober(client, rendered(settings), rules.sliding, settings.query_retries)
    prober.baseline(0.0, EPOCH)
    state = judge.WatchState()
    for k in range(1, n + 1):
        at = float(times[k])
        probe = prober.probe(at, EPOCH + at)
        result = judge.evaluate_probe(probe, rules)
        state, decision = judge.advance(state, result, rules)
        if decision is not None:
            verdict = "reverted" if decision.action == "revert" else "hold"
            return WindowOutcome(verdict, at, decision.blind, tuple(sorted(result.red_kinds)))
    return WindowOutcome(judge.final_verdict(state, rules).verdict, None, False, ())


__all__ = ["LE", "SimProm", "WindowOutcome", "answers", "run_window"]
