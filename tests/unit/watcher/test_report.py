"""The watcher's live line per probe, as the operator reads it during a deploy."""

from __future__ import annotations

from watcher.judge import ProbeInput, Rules, WatchState, evaluate_probe
from watcher.report import live_line
from watcher.sli import SideSLI

RULES = Rules(planned_probes=10)


def side(requests: float) -> SideSLI:
    return SideSLI(requests=requests, codes={"200": requests}, newest_sample_age=1.0, range_seconds=30,
                   buckets={0.1: requests})


def test_an_inconclusive_probe_says_so_once() -> None:
    probe = ProbeInput(at=9.0, canary=side(2), control=side(2))
    line = live_line(3, 10, probe, evaluate_probe(probe, RULES), WatchState(), RULES)
    assert line.endswith("| INCONCLUSIVE: only 2 canary requests since it started serving (need 20)"), line


def test_a_blind_probe_says_why_and_for_how_long() -> None:
    probe = ProbeInput(at=9.0, error="prometheus: connection refused")
    line = live_line(3, 10, probe, evaluate_probe(probe, RULES), WatchState(last_fresh_at=2.0), RULES)
    assert line.startswith("[3/10] BLIND (7.0s without fresh data"), line
    assert "prometheus: connection refused" in line and "blind: " not in line, line
