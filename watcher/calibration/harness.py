"""Simulated windows through the watcher's own probe (watch.probe_once) and judge.

SimProm answers the watcher's rendered queries from simulated samples, as Prometheus would at
the probe's instant; run_window() then drives the judge exactly as watch.run_watch does, probe
by probe, and reports what the window ended in and when.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from watcher import judge
from watcher.calibration import promsim
from watcher.calibration.traffic import CODES, LE, Series
from watcher.prom import PromError, QueryResult, Sample
from watcher.promql import Queries, render
from watcher.settings import Settings
from watcher.watch import probe_once, rendered

EPOCH = 1_700_000_000.0  # Prometheus' clock at watch time 0


@dataclass
class SideAnswers:
    """Everything Prometheus would answer about one side at each probe time (row p)."""

    requests: np.ndarray  # (P, codes): sum by (code) (increase(...[range]))
    p95: np.ndarray  # (P,): histogram_quantile(0.95, sum by (le) (rate(...[range])))
    newest: np.ndarray  # (P,): max(timestamp(...)), watch seconds


def answers(series: Sequence[Series], times: np.ndarray, rng: float) -> SideAnswers:
    reqs = [promsim.increase(s, s.codes, times, rng) for s in series]
    buckets = [promsim.increase(s, s.buckets, times, rng) / rng for s in series]
    stamps = [promsim.latest(s, s.codes, times)[1] for s in series]
    summed = promsim.nansum_present(buckets)
    p95 = np.array([promsim.histogram_quantile(0.95, row) for row in summed])
    stack = np.stack(stamps)
    newest = np.max(np.where(np.isnan(stack), -np.inf, stack), axis=0)
    return SideAnswers(promsim.nansum_present(reqs), p95, np.where(np.isinf(newest), np.nan, newest))


class SimProm:
    """A Querier answering the default queries from precomputed answers at probe row `row`."""

    def __init__(
        self,
        settings: Settings,
        sides: dict[str, SideAnswers],
        rng: np.random.Generator,
        fail: float = 0.0,
    ) -> None:
        self.row = 0
        self.at = 0.0
        self.fail = fail
        self.rng = rng
        defaults = Queries()
        self.kinds: dict[str, tuple[str, str]] = {}
        for side, selector in (("canary", settings.canary_selector),
                               ("control", settings.control_selector)):  # fmt: skip
            r = render(defaults, selector, settings.range_seconds)
            self.kinds[r.requests] = (side, "requests")
            self.kinds[r.p95] = (side, "p95")
            self.kinds[r.freshness] = (side, "freshness")
        self.sides = sides

    def query(self, promql: str) -> QueryResult:
        if self.fail and self.rng.random() < self.fail:
            raise PromError(f"query {promql!r}: simulated timeout")
        side, kind = self.kinds[promql]
        a, p, now = self.sides[side], self.row, EPOCH + self.at
        if kind == "requests":
            samples = tuple(
                Sample({"code": code}, float(v), now)
                for code, v in zip(CODES, a.requests[p], strict=True)
                if not math.isnan(v)
            )
            return QueryResult(promql, "vector", samples)
        value = a.p95[p] if kind == "p95" else EPOCH + a.newest[p]
        if math.isnan(value):
            return QueryResult(promql, "vector", ())
        return QueryResult(promql, "vector", (Sample({}, float(value), now),))


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
) -> WindowOutcome:
    n = settings.planned_probes
    times = np.arange(1, n + 1) * settings.interval
    sides = {
        "canary": answers(canary, times, settings.range_seconds),
        "control": answers(control, times, settings.range_seconds),
    }
    client = SimProm(settings, sides, rng, fail)
    queries = rendered(settings)
    rules = settings.rules
    state = judge.WatchState()
    for k in range(n):
        client.row, client.at = k, float(times[k])
        probe = probe_once(client, queries, settings.range_seconds, float(times[k]))
        result = judge.evaluate_probe(probe, rules)
        state, decision = judge.advance(state, result, rules)
        if decision is not None:
            verdict = "reverted" if decision.action == "revert" else "hold"
            return WindowOutcome(verdict, float(times[k]), decision.blind,
                                 tuple(sorted(result.red_kinds)))  # fmt: skip
    return WindowOutcome(judge.final_verdict(state, rules).verdict, None, False, ())


__all__ = ["LE", "SimProm", "WindowOutcome", "answers", "run_window"]
