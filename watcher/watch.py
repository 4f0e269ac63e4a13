"""The probe loop: query, judge, tell, and act when the judge says so.

Side effects come in through the arguments (Prometheus client, reverter, decision log,
metrics, output, clock), so the loop can run against fakes as well as the real things.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from watcher import judge
from watcher.decision_log import DecisionLog
from watcher.evidence import Prober
from watcher.judge import Decision, ProbeResult, Verdict, WatchState
from watcher.metrics import WatcherMetrics
from watcher.prom import QueryResult
from watcher.promql import RenderedQueries, render
from watcher.report import live_line
from watcher.revert import Reverter, RevertOutcome
from watcher.settings import Settings
from watcher.sli import SideSLI
from watcher.window import rotation_signal, wait_for_window


class Querier(Protocol):
    def query(self, promql: str, time: float | None = None) -> QueryResult: ...


@dataclass(frozen=True)
class WatchOutcome:
    verdict: Verdict
    state: WatchState
    decision: Decision | None
    revert: RevertOutcome | None
    prober: Prober | None = None  # to judge on after the window (watcher.awaiting)
    start: float = 0.0  # clock() at the window's start: probe times count from it


def side_record(sli: SideSLI | None) -> dict[str, Any] | None:
    if sli is None:
        return None
    return {
        "requests": round(sli.requests, 3),
        "request_rate": round(sli.request_rate, 3),
        "errors": round(sli.errors, 3),
        "error_ratio": sli.error_ratio,
        "error_codes": sli.error_codes,
        "p95": sli.p95,
        "newest_sample_age": sli.newest_sample_age,
    }


def rendered(settings: Settings) -> dict[str, RenderedQueries]:
    return {
        "canary": render(settings.queries, settings.canary_selector, settings.range_seconds),
        "control": render(settings.queries, settings.control_selector, settings.range_seconds),
    }


def never_in_rotation(settings: Settings) -> str:
    """Why a watcher whose ready signal never came reverts: nothing was judged, and the play is gone."""
    return (f"no ready signal within {settings.wait_for_traffic:g}s of this watcher's start: the play that "
            "started it stopped before it put the canary back in rotation (interrupted, or its controller died)")


ABORT_CHECK_S = 0.5  # how often an operator's abort is looked for between probes


def wait_unless_aborted(until: float, abort_asked: Callable[[], str | None] | None, clock: Callable[[], float],
                        sleep: Callable[[float], None]) -> str | None:
    """Sleep until `until` (clock time), looking for an abort every ABORT_CHECK_S; its reason, else None."""
    while True:
        aborted = abort_asked() if abort_asked else None
        left = until - clock()
        if aborted is not None or left <= 0:
            return aborted
        sleep(left if abort_asked is None else min(left, ABORT_CHECK_S))


def run_watch(
    settings: Settings,
    client: Querier,
    reverter: Reverter,
    log: DecisionLog,
    metrics: WatcherMetrics,
    out: Callable[[str], None],
    # Held around the revert: a termination signal must not leave it half done.
    defer_signals: Callable[[], AbstractContextManager[Any]],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    wall: Callable[[], float] | None = None,
    in_rotation: Callable[[], float | None] | None = None,
    abort_asked: Callable[[], str | None] | None = None,
) -> WatchOutcome:
    """wall: Prometheus' clock for the pinned `time=` of each probe (None: let Prometheus pick).
    in_rotation: when the canary was put back in rotation, None while it is not (default: the
    settings' ready file); the window starts at its first requests after that (watcher.window).
    abort_asked: why an operator aborted the window (make abort), None while nobody has; read between
    probes, it reverts the canary at once, as a red verdict does."""
    rules = settings.rules
    queries = rendered(settings)
    n = settings.planned_probes
    state = WatchState()
    decision: Decision | None = None
    prober = Prober(client, queries, rules.sliding, settings.query_retries)
    if settings.wait_for_traffic > 0:
        signal = in_rotation if in_rotation is not None else rotation_signal(settings)
        if not wait_for_window(settings, prober, log, out, clock, sleep, wall, signal):
            decision = Decision("revert", never_in_rotation(settings))
            n = 0  # no window to judge: straight to the revert
    start = clock()
    if decision is None and prober.previous is None:
        failed = prober.baseline(0.0, wall() if wall else None)
        if failed is not None:
            out(f"baseline reading failed ({failed}): the first good probe starts the count")
    for k in range(1, n + 1):
        aborted = wait_unless_aborted(start + k * settings.interval, abort_asked, clock, sleep)
        if aborted is not None:
            decision = Decision("revert", aborted)
            log.write("abort", k=k, n=n, reason=aborted)
            break
        at = clock() - start
        probe = prober.probe(at, wall() if wall else None)
        took = clock() - start - at
        result: ProbeResult = judge.evaluate_probe(probe, rules)
        before = state
        state, decision = judge.advance(state, result, rules)
        metrics.probe(probe, result, took, state.blind_seconds - before.blind_seconds)
        metrics.progress(k, n)
        out(live_line(k, n, probe, result, state, rules))
        log.write(
            "probe",
            k=k,
            n=n,
            at=round(at, 3),
            state=result.state.value,
            reasons=list(result.reasons),
            red_kinds=sorted(result.red_kinds),
            fleet_kinds=sorted(result.fleet_kinds),
            streaks={"errors": state.errors_streak, "latency": state.latency_streak},
            p_value=result.p_value,
            level=result.level,
            budget=rules.alpha,
            budget_left=rules.alpha * (n - k) / n,
            canary_since_start=side_record(probe.canary_total),
            control_since_start=side_record(probe.control_total),
            canary=side_record(probe.canary),
            control=side_record(probe.control),
            without_fresh_data=round(at - state.last_fresh_at, 3),
            blind_seconds=round(state.blind_seconds, 3),
            query_seconds=round(took, 3),
            decision=asdict(decision) if decision else None,
        )
        if decision is not None:
            break

    if decision is None and abort_asked and (aborted := abort_asked()) is not None:  # asked during the last probe
        decision = Decision("revert", aborted)
        log.write("abort", k=n, n=n, reason=aborted)
    if decision is None:
        return WatchOutcome(judge.final_verdict(state, rules), state, None, None, prober, start)
    if decision.action == "hold":
        verdict = judge.verdict_after_decision(decision, None, False)
        return WatchOutcome(verdict, state, decision, None, prober, start)

    out(f"acting: {decision.reason}")
    out(f"reverting via {reverter.describe()}")
    with defer_signals():
        outcome = reverter.revert(decision.reason)
    metrics.revert(outcome.ok, outcome.shadow)
    log.write("revert", decision=decision.reason, **asdict(outcome))
    out(("revert OK: " if outcome.ok else "REVERT FAILED: ") + outcome.detail)
    verdict = judge.verdict_after_decision(decision, outcome.ok, outcome.shadow)
    return WatchOutcome(verdict, state, decision, outcome, prober, start)
