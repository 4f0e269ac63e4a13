"""The probe loop with a scripted Prometheus, a fake clock and a recording reverter."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from watcher.config import Settings, load_settings
from watcher.decision_log import DecisionLog, Scrubber
from watcher.metrics import WatcherMetrics
from watcher.prom import PromError, QueryResult, Sample
from watcher.revert import RevertOutcome
from watcher.watch import ABORT_CHECK_S, WatchOutcome, run_watch
from watcher.window import ready_time, rotation_signal

NOW = 1_700_000_000.0


class Clock:
    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds

    def wall(self) -> float:
        return NOW + self.t


# A scenario says, for probe k and side, (requests, errors, p95) or raises PromError.
Scenario = Callable[[int, str], tuple[float, float, float]]


BOUNDS = ("0.05", "0.1", "0.2", "0.5", "1.0", "2.0", "+Inf")


class ScriptedProm:
    """Raw counters that grow by the scenario's (requests, errors, p95) at each probe; k counts the
    probes (a new pinned time on the canary's counts query; the baseline reading is k=0)."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.k = -1
        self.last_time: float | None = None
        self.queries: list[str] = []
        self.codes = {"canary": {"200": 0.0, "500": 0.0}, "control": {"200": 0.0, "500": 0.0}}
        self.buckets = {"canary": dict.fromkeys(BOUNDS, 0.0), "control": dict.fromkeys(BOUNDS, 0.0)}
        self.applied = {"canary": 0, "control": 0}

    def _grow(self, side: str) -> None:
        if self.applied[side] >= self.k:
            return
        self.applied[side] = self.k
        requests, errors, p95 = self.scenario(self.k, side)
        self.codes[side]["200"] += requests - errors
        self.codes[side]["500"] += errors
        for le in BOUNDS:
            if float(le) >= p95:
                self.buckets[side][le] += requests

    def query(self, promql: str, time: float | None = None) -> QueryResult:
        self.queries.append(promql)
        side = "control" if 'node!="edge-2"' in promql else "canary"
        if promql.startswith("edge_http_requests_total{") and side == "canary" and time != self.last_time:
            self.last_time = time
            self.k += 1
        if promql.startswith("edge_http_requests_total{") and self.k > 0:
            self._grow(side)
        if promql.startswith("edge_http_requests_total{"):
            samples = [Sample({"node": side, "code": c}, v, NOW) for c, v in self.codes[side].items()]
            return QueryResult(promql, "vector", tuple(samples))
        if promql.startswith("edge_http_request_duration_seconds_bucket{"):
            samples = [Sample({"node": side, "le": le}, v, NOW) for le, v in self.buckets[side].items()]
            return QueryResult(promql, "vector", tuple(samples))
        requests, errors, p95 = self.scenario(max(self.k, 1), side)
        if promql.startswith("sum by (code)"):
            samples = [Sample({"code": "200"}, requests - errors, NOW)]
            if errors:
                samples.append(Sample({"code": "500"}, errors, NOW))
            return QueryResult(promql, "vector", tuple(samples))
        if promql.startswith("histogram_quantile"):
            return QueryResult(promql, "vector", (Sample({}, p95, NOW),))
        return QueryResult(promql, "vector", (Sample({}, NOW - 1, NOW),))


class Recorder:
    action = "command"

    def __init__(self, ok: bool = True) -> None:
        self.reasons: list[str] = []
        self.ok = ok

    def describe(self) -> str:
        return "the recorder"

    def revert(self, reason: str) -> RevertOutcome:
        self.reasons.append(reason)
        return RevertOutcome(self.action, self.ok, "done" if self.ok else "exited 2")


def settings(*extra: str) -> Settings:
    return load_settings(
        ["--prom-url", "http://127.0.0.1:9", "--canary-selector", 'node="edge-2"',
         "--control-selector", 'node!="edge-2"', "--revert-action", "none", "--window", "20",
         "--interval", "2", "--scrape-interval", "1", "--max-staleness", "5", *extra],
        environ={},
    )  # fmt: skip


def watch(
    tmp_path: Path, scenario: Scenario, reverter: Recorder, *extra: str
) -> tuple[WatchOutcome, list[dict[str, Any]], list[str], Clock]:
    clock = Clock()
    lines: list[str] = []
    log = DecisionLog(str(tmp_path / "d.jsonl"), Scrubber())
    outcome = run_watch(
        settings(*extra), ScriptedProm(scenario), reverter, log, WatcherMetrics(), lines.append,
        contextlib.nullcontext, clock=clock, sleep=clock.sleep, wall=lambda: NOW + clock.t,
    )  # fmt: skip
    log.close()
    records = [json.loads(x) for x in (tmp_path / "d.jsonl").read_text().splitlines()]
    return outcome, records, lines, clock


def healthy(k: int, side: str) -> tuple[float, float, float]:
    return (100.0, 0.0, 0.05) if side == "canary" else (400.0, 0.0, 0.05)


def test_healthy_window_promotes_after_every_planned_probe(tmp_path: Path) -> None:
    outcome, records, lines, clock = watch(tmp_path, healthy, Recorder())
    assert outcome.verdict.verdict == "promote" and outcome.state.probes == 10
    assert clock.sleeps == [2.0] * 10  # probes on the interval grid, not drifting
    assert [r["k"] for r in records] == list(range(1, 11))
    # p95 from the bucket counts, as histogram_quantile interpolates them (all in the 0.05 s bucket).
    assert lines[0].startswith("[1/10] canary p95 0.048s 5xx 0.00% (0/100)")
    assert lines[0].endswith("| GREEN")


def test_errors_revert_at_once_and_stop_probing(tmp_path: Path) -> None:
    def errors_from_3(k: int, side: str) -> tuple[float, float, float]:
        return (100.0, 30.0, 0.05) if side == "canary" and k >= 3 else healthy(k, side)

    reverter = Recorder()
    outcome, records, lines, _ = watch(tmp_path, errors_from_3, reverter)
    assert (outcome.verdict.verdict, outcome.verdict.exit_code) == ("reverted", 1)
    assert len(reverter.reasons) == 1 and "errors red in 1 consecutive" in reverter.reasons[0]
    assert [r["event"] for r in records] == ["probe"] * 3 + ["revert"]
    assert records[2]["state"] == "red" and records[2]["red_kinds"] == ["errors"]
    assert records[3]["ok"] is True
    assert any(line.startswith("[3/10]") and "RED (errors 1/1)" in line for line in lines)


def test_the_decision_log_gives_each_probe_its_p_value_level_and_budget_left(tmp_path: Path) -> None:
    # Issue 14: an on-call reads, for each probe, the test, its p-value and the budget left.
    # Probe 2 is blind (Prometheus unreachable), 1 and 3 green, 4 red: 30 % 5xx on the canary.
    def scenario(k: int, side: str) -> tuple[float, float, float]:
        if k == 2:
            raise PromError("cannot reach Prometheus at http://127.0.0.1:9: ConnectionError")
        return (100.0, 30.0, 0.05) if side == "canary" and k >= 4 else healthy(k, side)

    outcome, records, _, _ = watch(tmp_path, scenario, Recorder())
    assert outcome.verdict.verdict == "reverted"
    probes = [r for r in records if r["event"] == "probe"]
    assert [r["state"] for r in probes] == ["green", "blind", "green", "red"]
    s = settings()
    n, alpha = s.planned_probes, s.rules.alpha
    for r in probes:
        assert {"p_value", "level", "budget", "budget_left"} <= r.keys()
        assert r["n"] == n and r["budget"] == alpha == 0.01
        # The budget is spent evenly over the planned probes, blind ones included.
        assert r["budget_left"] == pytest.approx(alpha * (n - r["k"]) / n)
        assert 0 <= r["budget_left"] < r["budget"]
    assert [r["budget_left"] for r in probes] == sorted((r["budget_left"] for r in probes), reverse=True)
    green, blind, _, red = probes
    assert blind["p_value"] is None and blind["level"] is None  # no test ran on a blind probe
    for r in (green, red):
        assert r["level"] == pytest.approx(s.rules.level) and 0 < r["level"] < alpha
        assert 0 < r["p_value"] <= 1
    assert green["p_value"] >= green["level"]  # nothing significant: green
    assert red["p_value"] < red["level"] and red["decision"]["action"] == "revert"


def test_failed_revert_is_exit_3(tmp_path: Path) -> None:
    def bad(k: int, side: str) -> tuple[float, float, float]:
        return (100.0, 50.0, 0.05) if side == "canary" else healthy(k, side)

    outcome, _, lines, _ = watch(tmp_path, bad, Recorder(ok=False))
    assert (outcome.verdict.verdict, outcome.verdict.exit_code) == ("revert_failed", 3)
    assert "REVERT FAILED: exited 2" in lines


@pytest.mark.parametrize(("policy", "verdict"), [("revert", "reverted"), ("hold", "hold")])
def test_prometheus_outage_longer_than_max_staleness(
    tmp_path: Path, policy: str, verdict: str
) -> None:
    def outage_from_3(k: int, side: str) -> tuple[float, float, float]:
        if k >= 3:
            raise PromError("cannot reach Prometheus at http://127.0.0.1:9: ConnectionError")
        return healthy(k, side)

    reverter = Recorder()
    outcome, records, _, _ = watch(tmp_path, outage_from_3, reverter, "--blind-policy", policy)
    assert outcome.verdict.verdict == verdict
    # Fresh data up to t=3 (probe 2 at t=4, samples 1s old); blind at 6 and 8 (5s, not more).
    assert outcome.state.probes == 5 and outcome.state.blind == 3
    assert "blind for 7.0s, longer than max staleness 5s" in outcome.verdict.reason
    assert len(reverter.reasons) == (1 if policy == "revert" else 0)
    assert records[2]["state"] == "blind" and records[2]["decision"] is None
    assert records[4]["decision"]["blind"] is True


def test_outage_shorter_than_max_staleness_changes_nothing(tmp_path: Path) -> None:
    def blip(k: int, side: str) -> tuple[float, float, float]:
        if k in (4, 5):
            raise PromError("cannot reach Prometheus")
        return healthy(k, side)

    outcome, _, lines, _ = watch(tmp_path, blip, Recorder(), "--promote-fraction", "0.8")
    assert outcome.verdict.verdict == "promote"  # 8/10 green
    assert outcome.state.blind == 2 and outcome.state.blind_seconds == 4
    assert lines[3].startswith("[4/10] BLIND (3.0s without fresh data, max 5s)")


def test_malformed_result_is_blind_and_names_the_query(tmp_path: Path) -> None:
    class TwoSeries(ScriptedProm):
        def query(self, promql: str, time: float | None = None) -> QueryResult:
            if promql.startswith("edge_http_request_duration_seconds_bucket"):
                return QueryResult(promql, "vector", (Sample({"a": "1"}, 1, NOW),
                                                      Sample({"a": "2"}, 2, NOW)))  # fmt: skip
            return super().query(promql, time)

    clock = Clock()
    lines: list[str] = []
    outcome = run_watch(
        settings("--window", "4"), TwoSeries(healthy), Recorder(), DecisionLog(None, Scrubber()),
        WatcherMetrics(), lines.append, contextlib.nullcontext, clock=clock, sleep=clock.sleep,
    )  # fmt: skip
    assert outcome.state.blind == 2
    assert lines[0].startswith("baseline reading failed")
    assert "edge_http_request_duration_seconds_bucket" in lines[1] and "2 series" in lines[1]
    assert "each with a `le` label" in lines[1]


def test_the_window_waits_for_the_canarys_first_requests(tmp_path: Path) -> None:
    def idle_then_healthy(k: int, side: str) -> tuple[float, float, float]:
        return (0.0, 0.0, 0.05) if side == "canary" and k <= 4 else healthy(k, side)

    outcome, records, lines, clock = watch(tmp_path, idle_then_healthy, Recorder(), "--wait-for-traffic", "30")
    assert outcome.verdict.verdict == "promote" and outcome.state.probes == 10
    # The baseline reading at 0 s, four idle polls 1 s apart, the first requests at 5 s.
    assert records[0] == {**records[0], "event": "traffic", "seen": True, "waited": 5.0, "first_requests": 100}
    assert lines[1] == "the canary takes traffic after 5.0s: the window starts"
    # The first requests are in the first probe's evidence: counted from the reading before them.
    assert records[1]["canary_since_start"]["requests"] == 200


def test_a_canary_that_never_takes_traffic_still_gets_its_window_and_is_held(tmp_path: Path) -> None:
    def idle(k: int, side: str) -> tuple[float, float, float]:
        return (0.0, 0.0, 0.05) if side == "canary" else healthy(k, side)

    outcome, records, _, _ = watch(tmp_path, idle, Recorder(), "--wait-for-traffic", "3")
    assert records[0] == {**records[0], "event": "traffic", "seen": False}
    assert outcome.verdict.verdict == "hold"


ROTATION = 5.0  # seconds after the watcher's start when the deploy puts the canary back in rotation


class TimedProm:
    """Raw counters as functions of the pinned time. Before ROTATION the canary, out of rotation,
    answers 20 requests/s sent straight to its port with 503; after it, 50 requests/s through the
    load balancer with 200. The control serves 100 requests/s of 200 throughout."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def counts(self, side: str, t: float) -> dict[str, float]:
        if side == "control":
            return {"200": 100 * t, "503": 0.0}
        return {"200": 50 * max(0.0, t - ROTATION), "503": 20 * min(t, ROTATION)}

    def query(self, promql: str, time: float | None = None) -> QueryResult:
        assert time is not None
        self.times.append(time)
        side = "control" if 'node!="edge-2"' in promql else "canary"
        codes = self.counts(side, time - NOW)
        if promql.startswith("edge_http_requests_total{"):
            samples = [Sample({"code": c}, v, time) for c, v in codes.items()]
        elif promql.startswith("edge_http_request_duration_seconds_bucket{"):
            samples = [Sample({"le": le}, sum(codes.values()), time) for le in BOUNDS]
        else:
            samples = [Sample({}, time - 1, time)]
        return QueryResult(promql, "vector", tuple(samples))


def watch_rotation(
    tmp_path: Path, in_rotation: Callable[[], float | None] | None
) -> tuple[WatchOutcome, list[dict[str, Any]], TimedProm]:
    clock = Clock()
    prom = TimedProm()
    log = DecisionLog(str(tmp_path / "d.jsonl"), Scrubber())
    outcome = run_watch(
        settings("--wait-for-traffic", "30"), prom, Recorder(), log, WatcherMetrics(), lambda _: None,
        contextlib.nullcontext, clock=clock, sleep=clock.sleep, wall=lambda: NOW + clock.t,
        in_rotation=in_rotation and (lambda: in_rotation() if clock.t >= ROTATION else None),
    )  # fmt: skip
    log.close()
    return outcome, [json.loads(x) for x in (tmp_path / "d.jsonl").read_text().splitlines()], prom


def test_the_window_starts_at_the_first_requests_after_the_canary_is_back_in_rotation(tmp_path: Path) -> None:
    outcome, records, prom = watch_rotation(tmp_path, lambda: NOW + ROTATION)
    assert outcome.verdict.verdict == "promote", outcome.verdict.reason
    traffic = records[0]
    assert traffic["event"] == "traffic" and traffic["in_rotation_at"] == NOW + ROTATION
    assert traffic["window_start"] > NOW + ROTATION
    # The baseline is read pinned at the rotation time: the 503s served before it are not counted.
    assert prom.times[0] == NOW + ROTATION
    first = records[1]
    assert first["event"] == "probe" and first["canary_since_start"]["errors"] == 0
    assert first["canary_since_start"]["requests"] == 50 * (first["at"] + traffic["window_start"] - NOW - ROTATION)


def test_without_the_rotation_signal_traffic_before_rotation_would_be_judged(tmp_path: Path) -> None:
    """Why the deploy writes the ready file: a watcher started before the canary is back in rotation
    and counting from its own start judges what the canary answered while out of rotation."""
    outcome, records, _ = watch_rotation(tmp_path, None)
    assert records[0]["event"] == "traffic" and records[0]["waited"] == 1.0
    assert outcome.verdict.verdict == "reverted"


def test_the_ready_file_holds_the_rotation_time(tmp_path: Path) -> None:
    ready = tmp_path / "canary-ready"
    assert ready_time(str(ready)) is None
    ready.write_text("1700000123.5\n")
    assert ready_time(str(ready)) == 1700000123.5
    ready.write_text("not a time")
    assert ready_time(str(ready)) == pytest.approx(ready.stat().st_mtime)
    signal = rotation_signal(settings("--ready-file", str(ready)))
    assert signal is not None and signal() == pytest.approx(ready.stat().st_mtime)
    assert rotation_signal(settings()) is None


def test_a_ready_file_that_never_comes_reverts_without_judging(tmp_path: Path) -> None:
    """The play that started the watcher stopped before its ready (Ctrl-C, a dead controller): the canary
    it left drained on the new release is put back on .previous, not judged on traffic it never got."""
    clock = Clock()
    log = DecisionLog(str(tmp_path / "d.jsonl"), Scrubber())
    reverter = Recorder()
    outcome = run_watch(
        settings("--wait-for-traffic", "3", "--ready-file", str(tmp_path / "never")), TimedProm(), reverter,
        log, WatcherMetrics(), lambda _: None, contextlib.nullcontext, clock=clock, sleep=clock.sleep,
        wall=lambda: NOW + clock.t,
    )  # fmt: skip
    log.close()
    records = [json.loads(line) for line in (tmp_path / "d.jsonl").read_text().splitlines()]
    assert records[0] == {**records[0], "event": "traffic", "in_rotation": False, "seen": False, "waited": 3.0}
    assert [r["event"] for r in records] == ["traffic", "revert"]
    assert outcome.state.probes == 0 and reverter.reasons == [outcome.verdict.reason]
    assert outcome.verdict.verdict == "reverted"
    assert outcome.verdict.reason == (
        "no ready signal within 3s of this watcher's start: the play that started it stopped before it put "
        "the canary back in rotation (interrupted, or its controller died)")


class FailingOnce(ScriptedProm):
    """Fails exactly one query: the n-th the watcher asks."""

    def __init__(self, scenario: Scenario, n: int) -> None:
        super().__init__(scenario)
        self.n, self.calls = n, 0

    def query(self, promql: str, time: float | None = None) -> QueryResult:
        self.calls += 1
        if self.calls == self.n:
            raise PromError("Prometheus at http://127.0.0.1:9 did not answer within 5s")
        return super().query(promql, time)


@pytest.mark.parametrize("retries", ["0", "1"])
def test_one_failed_prometheus_query_never_reverts(tmp_path: Path, retries: str) -> None:
    # Each query (6 a reading) of the baseline, the first, a middle and the last probe: whichever
    # fails, the window promotes.
    for n in [*range(1, 13), *range(31, 37), *range(61, 67)]:
        reverter = Recorder()
        clock = Clock()
        outcome = run_watch(
            settings("--query-retries", retries), FailingOnce(healthy, n), reverter, DecisionLog(None, Scrubber()),
            WatcherMetrics(), lambda _: None, contextlib.nullcontext, clock=clock, sleep=clock.sleep,
            wall=clock.wall,
        )  # fmt: skip
        assert outcome.verdict.verdict == "promote" and not reverter.reasons, (n, outcome.verdict.reason)
        assert outcome.state.blind <= (1 if retries == "0" else 0)


@pytest.mark.parametrize("last_good", range(0, 8))
def test_a_real_outage_trips_the_blind_policy_within_max_staleness_plus_two_intervals(
    tmp_path: Path, last_good: int
) -> None:
    # The defaults: max_staleness 3 probe intervals (6 s), blind_probes 3. Prometheus is gone from
    # just after probe `last_good` (0: from the start, after the baseline).
    def outage(k: int, side: str) -> tuple[float, float, float]:
        if k > last_good:
            raise PromError("cannot reach Prometheus at http://127.0.0.1:9: ConnectionError")
        return healthy(k, side)

    s = settings()
    outcome, records, _, _ = watch(tmp_path, outage, Recorder(), "--max-staleness", "6")
    assert outcome.verdict.verdict == "reverted" and outcome.decision is not None and outcome.decision.blind
    gone = last_good * s.interval
    acted = records[-2]["at"]  # the probe that decided, before the revert record
    assert records[-2]["decision"]["blind"] is True
    assert acted - gone <= 6 + 2 * s.interval, f"blind revert {acted - gone:.1f}s after the outage began"


def test_an_operators_abort_reverts_between_probes_with_its_reason(tmp_path: Path) -> None:
    """make abort during the window: a healthy canary is reverted within ABORT_CHECK_S of the ask, not at the
    next probe, the probes stop, and the verdict gives the operator's reason."""
    clock, lines, reverter = Clock(), list[str](), Recorder()
    log = DecisionLog(str(tmp_path / "d.jsonl"), Scrubber())
    asked_at = 5.2  # between probe 2 (4 s) and probe 3 (6 s)
    outcome = run_watch(
        settings(), ScriptedProm(healthy), reverter, log, WatcherMetrics(), lines.append, contextlib.nullcontext,
        clock=clock, sleep=clock.sleep, wall=clock.wall,
        abort_asked=lambda: "aborted by alice (make abort)" if clock.t >= asked_at else None,
    )  # fmt: skip
    log.close()
    records = [json.loads(x) for x in (tmp_path / "d.jsonl").read_text().splitlines()]
    assert (outcome.verdict.verdict, outcome.verdict.reason) == ("reverted", "aborted by alice (make abort)")
    assert reverter.reasons == ["aborted by alice (make abort)"]
    assert [r["event"] for r in records] == ["probe", "probe", "abort", "revert"]
    assert asked_at <= clock.t <= asked_at + ABORT_CHECK_S


def test_an_abort_asked_during_the_last_probe_still_reverts(tmp_path: Path) -> None:
    clock, reverter, asks_at_20 = Clock(), Recorder(), []

    def asked() -> str | None:  # None at the last probe's start (t = 20 s), asked by the time it is judged
        if clock.t >= 20:
            asks_at_20.append(clock.t)
        return "aborted by bob (make abort)" if len(asks_at_20) > 1 else None

    log = DecisionLog(str(tmp_path / "d.jsonl"), Scrubber())
    outcome = run_watch(
        settings(), ScriptedProm(healthy), reverter, log, WatcherMetrics(), list[str]().append,
        contextlib.nullcontext, clock=clock, sleep=clock.sleep, wall=clock.wall, abort_asked=asked,
    )  # fmt: skip
    log.close()
    assert outcome.verdict.verdict == "reverted" and outcome.state.probes == 10, "not a promote"
