"""The rows of docs/CALIBRATION.md: settings (production, lab) and the traffic of each row."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from watcher.calibration.harness import WindowOutcome, run_window
from watcher.calibration.traffic import Latency, Mix, Phase, Series, background, simulate, with_fault
from watcher.options import OPTIONS
from watcher.settings import Settings, build_settings

# group_vars/all.yml (production) and group_vars/lab.yml, as the sli_watch role hands them over.
PRODUCTION: dict[str, Any] = {
    "window": 3600.0, "interval": 30.0, "scrape_interval": 15.0,
    "p95_threshold": 0.5, "err_threshold": 0.005,
}  # fmt: skip
LAB: dict[str, Any] = {
    "window": 30.0, "interval": 3.0, "scrape_interval": 1.0,
    "p95_threshold": 0.3, "err_threshold": 0.01,
}  # fmt: skip
# make rollout: the 1 % stage's hold, and the lab's rollout_watch_settings.
PRODUCTION_ROLLOUT = {**PRODUCTION, "window": 1800.0}
LAB_ROLLOUT = {**LAB, "window": 45.0, "min_requests": 3, "range": 30.0, "promote_fraction": 0.5}
LAB_LATENCY = Latency(median=0.004, sigma=0.5, tail_share=0.0)


def settings_for(overrides: Mapping[str, Any]) -> Settings:
    values = {o.name: o.default for o in OPTIONS}
    values.update(
        prom_url="http://prometheus:9090",
        canary_selector='job="edge",node="edge-2"',
        control_selector='job="edge",node!="edge-2"',
        revert_action="none",
    )
    values.update(overrides)
    return build_settings(values, None)


@dataclass(frozen=True)
class Scenario:
    name: str
    settings: Mapping[str, Any]
    rate: float = 50.0 / 3  # requests per second per node
    nodes: int = 3
    background: float = 0.0  # 5xx share on every node
    latency: Latency = field(default_factory=Latency)
    fleet_code: str | None = None  # a fleet-wide incident on every node
    fleet_share: float = 0.0
    fleet_slower: float = 0.0
    code: str | None = None  # the canary's fault
    share: float = 0.0
    slower: float = 0.0
    fault_at: float = 0.0  # watch seconds the canary's fault starts (its first bad request)
    rollout: float | None = None  # share of traffic on the new code path (canary = variant new)
    miss: float = 0.0  # chance a scrape fails
    fail: float = 0.0  # chance a query fails
    outage: str | None = None  # from fault_at: "target" (every canary scrape fails), "prometheus"

    @property
    def faulty(self) -> bool:
        return bool(self.code and self.share) or bool(self.slower) or self.outage is not None


def _sides(s: Scenario, cfg: Settings, rng: np.random.Generator) -> tuple[list[Series], list[Series]]:
    begin = -max(600.0, 2 * cfg.range_seconds)
    end = cfg.window + cfg.interval
    base = background(s.rate, s.background, s.latency)
    node = with_fault(base, s.fleet_code, s.fleet_share, s.fleet_slower)
    bad = with_fault(node, s.code, s.share, s.slower)

    def sim(phases: list[Phase], restart: float | None) -> Series:
        return simulate(rng, phases, begin, end, cfg.scrape_interval, restart, miss=s.miss)

    if s.rollout is not None:
        new = Mix(node.rate * s.rollout, node.errors, node.latency)
        legacy = Mix(node.rate * (1 - s.rollout), node.errors, node.latency)
        new_bad = with_fault(new, s.code, s.share, s.slower)
        canary = [sim([Phase(begin, new), Phase(s.fault_at, new_bad)], None) for _ in range(s.nodes)]
        control = [sim([Phase(begin, legacy)], None) for _ in range(s.nodes)]
        return canary, control
    phases = [Phase(begin, node)] + ([Phase(s.fault_at, bad)] if s.faulty else [])
    canary = [sim(phases, 0.0)]
    if s.outage == "target":  # the canary's target is down: each scrape fails, a staleness marker
        c = canary[0]
        up = c.times < s.fault_at
        canary = [Series(c.times[up], c.codes[up], c.buckets[up], np.union1d(c.stale, c.times[~up]))]
    control = [sim([Phase(begin, node)], None) for _ in range(s.nodes - 1)]
    return canary, control


@dataclass(frozen=True)
class Result:
    scenario: Scenario
    windows: int
    verdicts: Mapping[str, int]
    blind_reverts: int
    early: int  # faulty rows: reverted before the fault began (a false revert, not a catch)
    delays: tuple[float, ...]  # seconds from the first bad request to the revert (faulty only)

    def share(self, verdict: str) -> float:
        return self.verdicts.get(verdict, 0) / self.windows

    @property
    def caught(self) -> float:
        return len(self.delays) / self.windows

    def delay(self, q: float) -> float | None:
        if not self.delays:
            return None
        if q == 0.5:
            return statistics.median(self.delays)
        ordered = sorted(self.delays)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(s: Scenario, windows: int, seed: int) -> Result:
    cfg = settings_for(s.settings)
    rng = np.random.default_rng(seed)
    verdicts: Counter[str] = Counter()
    blind = 0
    delays: list[float] = []
    early = 0
    for _ in range(windows):
        canary, control = _sides(s, cfg, rng)
        down = s.fault_at if s.outage == "prometheus" else None
        out: WindowOutcome = run_window(cfg, canary, control, rng, s.fail, down)
        verdicts[out.verdict] += 1
        blind += out.verdict == "reverted" and out.blind
        if out.verdict == "reverted" and out.at is not None and s.faulty:
            if out.at >= s.fault_at:
                delays.append(out.at - s.fault_at)
            else:
                early += 1
    return Result(s, windows, dict(verdicts), blind, early, tuple(delays))


def false_revert_rows() -> list[Scenario]:
    rows = [
        Scenario(f"healthy, background 5xx {bg * 100:g} %", PRODUCTION, background=bg)
        for bg in (0.0, 0.0005, 0.001, 0.002, 0.004)
    ]
    rows += [
        Scenario("off-peak 0.5 req/s per node, no 5xx (latency only)", PRODUCTION, rate=0.5),
        Scenario("off-peak 0.5 req/s per node, background 5xx 0.1 %", PRODUCTION, rate=0.5,
                 background=0.001),
        Scenario("rollout stage 1 % (production, 1800 s hold), background 0.1 %",
                 PRODUCTION_ROLLOUT, background=0.001, rollout=0.01),
        Scenario("rollout stage 1 % (lab rollout settings)", LAB_ROLLOUT, background=0.001,
                 rollout=0.01, latency=LAB_LATENCY),
        Scenario("fleet-wide 0.7 % 503 incident", PRODUCTION, background=0.001, fleet_code="503",
                 fleet_share=0.007),
        Scenario("fleet-wide 3 % 502 incident", PRODUCTION, background=0.001, fleet_code="502",
                 fleet_share=0.03),
        Scenario("fleet-wide +0.5 s latency incident", PRODUCTION, background=0.001,
                 fleet_slower=0.5),
        Scenario("healthy, background 0.1 %, 1 % missed scrapes, 1 % failed queries", PRODUCTION,
                 background=0.001, miss=0.01, fail=0.01),
        Scenario("lab, healthy", LAB, latency=LAB_LATENCY),
    ]  # fmt: skip
    return rows


def detection_rows() -> list[Scenario]:
    return [
        Scenario("1.5 % 503", PRODUCTION, background=0.001, code="503", share=0.015),
        Scenario("5 % 503", PRODUCTION, background=0.001, code="503", share=0.05),
        Scenario("+0.25 s on every request", PRODUCTION, background=0.001, slower=0.25),
        Scenario("+0.8 s on every request", PRODUCTION, background=0.001, slower=0.8),
        Scenario("1.5 % 503 from minute 40", PRODUCTION, background=0.001, code="503",
                 share=0.015, fault_at=2400.0),
        Scenario("canary's target down from minute 5 (blind)", PRODUCTION, background=0.001,
                 outage="target", fault_at=300.0),
        Scenario("Prometheus down from minute 5 (blind)", PRODUCTION, background=0.001,
                 outage="prometheus", fault_at=300.0),
        Scenario("lab v2-errors (20 % 502)", LAB, code="502", share=0.2, latency=LAB_LATENCY),
        Scenario("lab v2-slow (+0.6 s)", LAB, slower=0.6, latency=LAB_LATENCY),
    ]  # fmt: skip
