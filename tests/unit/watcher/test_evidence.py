"""True counts: raw counters at a pinned time, differenced per series, resets, retries, spans."""

from __future__ import annotations

import math

import pytest

from watcher.evidence import Prober, combine, difference, subtract
from watcher.prom import PromError, QueryResult, Sample
from watcher.promql import Queries, render
from watcher.sli import SideSLI

NOW = 1_700_000_000.0


def key(**labels: str) -> frozenset[tuple[str, str]]:
    return frozenset(labels.items())


def test_difference_per_series_with_a_reset_and_a_new_series() -> None:
    before = {key(node="a", code="200"): ("200", 1000.0), key(node="b", code="200"): ("200", 500.0)}
    after = {
        key(node="a", code="200"): ("200", 1100.0),  # +100
        key(node="b", code="200"): ("200", 30.0),  # restarted: 30 since
        key(node="b", code="503"): ("503", 2.0),  # born since: 2
    }
    counts, resets = difference(before, after)
    assert counts == {"200": 130.0, "503": 2.0} and resets == 1


def test_combine_and_subtract_are_inverse() -> None:
    a = SideSLI(100, {"200": 99, "500": 1}, range_seconds=30, buckets={0.1: 90, math.inf: 100})
    b = SideSLI(50, {"200": 50}, range_seconds=30, buckets={0.1: 50, math.inf: 50})
    total = combine([a, b])
    assert total.requests == 150 and total.errors == 1 and total.buckets[math.inf] == 150
    assert subtract(total, a).codes == {"200": 50, "500": 0} and subtract(total, a).range_seconds == 30


class Counting:
    """Raw counters per node that grow by `step` per call; records every pinned time."""

    def __init__(self, fail_first: int = 0) -> None:
        self.times: list[float | None] = []
        self.value = 0.0
        self.fail_first = fail_first
        self.calls = 0

    def query(self, promql: str, time: float | None = None) -> QueryResult:
        self.calls += 1
        if self.calls <= self.fail_first:
            raise PromError("timeout")
        self.times.append(time)
        if promql.startswith("max(timestamp"):
            return QueryResult(promql, "vector", (Sample({}, (time or NOW) - 2, time or NOW),))
        if "bucket" in promql:
            samples = (Sample({"le": "0.1"}, self.value, NOW), Sample({"le": "+Inf"}, self.value, NOW))
            return QueryResult(promql, "vector", samples)
        self.value += 100
        return QueryResult(promql, "vector", (Sample({"code": "200"}, self.value, NOW),))


def _prober(client: Counting, sliding: float = 60.0) -> Prober:
    q = {s: render(Queries(), f'node="{s}"', 60) for s in ("canary", "control")}
    return Prober(client, q, sliding=sliding, retries=1)


def test_every_query_of_a_probe_is_pinned_to_one_time() -> None:
    client = Counting()
    prober = _prober(client)
    assert prober.baseline(0.0, NOW) is None
    prober.probe(30.0, NOW + 30)
    assert set(client.times[:6]) == {NOW} and set(client.times[6:]) == {NOW + 30}


def test_counts_since_start_and_over_the_sliding_span() -> None:
    client = Counting()
    prober = _prober(client, sliding=60.0)
    prober.baseline(0.0, NOW)
    probes = [prober.probe(t, NOW + t) for t in (30.0, 60.0, 90.0, 120.0)]
    last = probes[-1]
    assert last.canary is not None and last.canary_total is not None and last.canary_recent is not None
    # The canary's counter grows by 200 per reading (its counts query, then the control's).
    assert last.canary.requests == 200 and last.canary_total.requests == 800
    assert last.canary_recent.requests == 400 and last.canary_recent.range_seconds == 60
    assert last.canary.newest_sample_age == pytest.approx(2.0)


def test_a_failed_query_is_retried_within_the_probe() -> None:
    client = Counting(fail_first=1)
    prober = _prober(client)
    assert prober.baseline(0.0, NOW) is None
    assert prober.probe(30.0, NOW + 30).error is None


def test_a_probe_still_failing_is_blind_and_the_next_covers_the_gap() -> None:
    client = Counting()
    prober = _prober(client)
    prober.baseline(0.0, NOW)
    client.fail_first, client.calls = 2, 0
    assert prober.probe(30.0, NOW + 30).error == "timeout"
    after = prober.probe(60.0, NOW + 60)
    assert after.canary is not None and after.canary.range_seconds == 60


def test_the_first_reading_is_the_baseline_when_the_baseline_failed() -> None:
    client = Counting(fail_first=2)
    prober = _prober(client)
    assert prober.baseline(0.0, NOW) == "timeout"
    first = prober.probe(30.0, NOW + 30)
    assert first.canary is not None and first.canary.requests == 0
    assert first.note is not None and "baseline" in first.note


class Staling:
    """Each side's one counter series; a side in `stale` answers no series at all (Prometheus marks
    a target's series stale when its scrape fails, and instant queries then return none)."""

    def __init__(self) -> None:
        self.value = {"canary": 1000.0, "control": 1_000_000.0}  # counted since each process started
        self.stale: set[str] = set()

    def query(self, promql: str, time: float | None = None) -> QueryResult:
        side = "canary" if 'node="canary"' in promql else "control"
        now = time or NOW
        if side in self.stale:
            return QueryResult(promql, "vector", ())
        if promql.startswith("max(timestamp"):
            return QueryResult(promql, "vector", (Sample({}, now - 2, now),))
        v = self.value[side]
        if "bucket" in promql:
            return QueryResult(promql, "vector", (Sample({"le": "0.1"}, v, now), Sample({"le": "+Inf"}, v, now)))
        return QueryResult(promql, "vector", (Sample({"code": "200"}, v, now),))


@pytest.mark.parametrize("side", ["canary", "control"])
def test_a_series_gone_stale_for_a_probe_is_not_counted_again_from_its_start(side: str) -> None:
    client = Staling()
    q = {s: render(Queries(), f'node="{s}"', 60) for s in ("canary", "control")}
    prober = Prober(client, q, sliding=300.0)
    prober.baseline(0.0, NOW)
    for at in (30.0, 60.0, 90.0):
        client.value["canary"] += 100
        client.value["control"] += 200
        client.stale = {side} if at == 60.0 else set()
        last = prober.probe(at, NOW + at)
    assert last.canary_total is not None and last.control_total is not None
    # 300 and 600 since the baseline: not the 1000 and 1 000 000 the counters held before it.
    assert (last.canary_total.requests, last.control_total.requests) == (300, 600)
    gone = last.canary if side == "canary" else last.control
    assert gone is not None and gone.requests == (200 if side == "canary" else 400)  # two probes' worth


def test_a_series_back_from_stale_after_a_restart_counts_from_0() -> None:
    client = Staling()
    q = {s: render(Queries(), f'node="{s}"', 60) for s in ("canary", "control")}
    prober = Prober(client, q, sliding=300.0)
    prober.baseline(0.0, NOW)
    client.stale = {"canary"}
    prober.probe(30.0, NOW + 30)
    client.stale, client.value["canary"] = set(), 40.0  # restarted while it was not scraped
    back = prober.probe(60.0, NOW + 60)
    assert back.canary is not None and back.canary.requests == 40
    assert back.note is not None and "restarted" in back.note
