"""The judgment: pure functions over dataclasses. No I/O, no clock, no randomness.

evaluate_probe() turns one probe's evidence into a state (green, red, inconclusive,
fleet_breach, blind) with reasons; advance() folds it into the watch state and says when to act;
final_verdict() decides at the end of the window.

The false-revert budget: a healthy canary is reverted in at most `alpha` of windows. Every red
needs a one-sided exact test below alpha / (planned probes x RED_PATHS) (Bonferroni over the
probes and over the ways to turn red), on true counts since the canary started serving (and
over the last `sliding` seconds, so a fault that starts late is not diluted):
- errors: the canary's 5xx share above the SLO *and* above the control's, or above the control's
  times err_ratio; each 5xx code above the control's times err_ratio;
- latency: the canary's share of requests slower than the SLO bound above 5 % (its p95 is over
  the limit) *and* above the control's, or its share slower than the control's p95 bucket above
  the control's share plus lat_tolerance.
Over the SLO but not worse than control is a fleet-wide breach: hold, never blame the canary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from enum import StrEnum

from watcher import EXIT_HOLD, EXIT_PROMOTE, EXIT_REVERT_FAILED, EXIT_REVERTED, EXIT_WOULD_REVERT
from watcher.judge_tests import ERRORS, LATENCY, Finding, error_findings, latency_findings
from watcher.sli import SideSLI

__all__ = ["ERRORS", "LATENCY", "RED_PATHS"]
RED_PATHS = 9  # errors: 2 cumulative + 2 sliding + per-code; latency: 2 cumulative + 2 sliding


class State(StrEnum):
    GREEN = "green"
    RED = "red"
    INCONCLUSIVE = "inconclusive"
    FLEET_BREACH = "fleet_breach"
    BLIND = "blind"


@dataclass(frozen=True)
class Rules:
    """Everything the judgment depends on (see options.py for the matching flags)."""

    p95_threshold: float = 0.5  # absolute p95 limit, seconds
    err_threshold: float = 0.005  # absolute 5xx ratio limit
    err_ratio: float = 2.0  # canary 5xx share tolerated as a multiple of control's
    lat_tolerance: float = 0.05  # canary share slower than control's p95 bucket tolerated above it
    alpha: float = 0.01  # false-revert budget per window
    planned_probes: int = 1  # probes the budget is spread over
    sliding: float = 300.0  # seconds of the short sliding check
    min_requests: int = 20  # canary requests (since it started) below which nothing is judged
    errors_consecutive: int = 1  # consecutive error-red probes that trigger the revert
    latency_consecutive: int = 2  # consecutive latency-red probes that trigger the revert
    max_staleness: float = 90.0  # seconds without fresh canary data before the blind policy
    blind_probes: int = 3  # consecutive blind probes that trigger the blind policy
    blind_policy: str = "revert"  # revert | hold
    promote_fraction: float = 0.8  # conclusive green share of the probes needed to promote

    @property
    def level(self) -> float:
        """Significance level of each test at each probe."""
        return self.alpha / (max(1, self.planned_probes) * RED_PATHS)


@dataclass(frozen=True)
class ProbeInput:
    at: float  # seconds since the watch started
    canary: SideSLI | None = None  # this probe's interval (true counts since the last probe)
    control: SideSLI | None = None
    error: str | None = None  # the query failed or came back malformed: a blind probe
    canary_total: SideSLI | None = None  # since the canary started serving (None: = canary)
    control_total: SideSLI | None = None
    canary_recent: SideSLI | None = None  # the last `sliding` seconds (None: no sliding check)
    control_recent: SideSLI | None = None
    note: str | None = None  # e.g. a counter reset the counts were corrected for


@dataclass(frozen=True)
class ProbeResult:
    at: float
    state: State
    reasons: tuple[str, ...]
    red_kinds: frozenset[str] = frozenset()
    fleet_kinds: frozenset[str] = frozenset()
    checked_kinds: frozenset[str] = frozenset()  # kinds actually judged (for streak resets)
    fresh_at: float | None = None  # watch time of the newest canary sample; None when blind
    p_value: float | None = None  # the smallest p-value of the probe's tests
    level: float | None = None  # the significance level each test was held to


@dataclass(frozen=True)
class WatchState:
    probes: int = 0
    green: int = 0
    red: int = 0
    inconclusive: int = 0
    fleet_breach: int = 0
    blind: int = 0
    blind_seconds: float = 0.0
    blind_streak: int = 0
    last_probe_at: float = 0.0
    last_fresh_at: float = 0.0  # the watch start stands in until the first fresh probe
    errors_streak: int = 0
    latency_streak: int = 0
    fleet_reasons: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Decision:
    action: str  # revert | hold
    reason: str
    blind: bool = False


@dataclass(frozen=True)
class Verdict:
    verdict: str  # promote | reverted | would_revert | hold | revert_failed
    exit_code: int
    reason: str


# --- one probe ----------------------------------------------------------------------------


def _fresh(side: SideSLI | None, rules: Rules) -> bool:
    age = side.newest_sample_age if side is not None else None
    return age is not None and age <= rules.max_staleness


def _blind(probe: ProbeInput, rules: Rules) -> str | None:
    if probe.error is not None:
        return probe.error
    canary = probe.canary
    age = canary.newest_sample_age if canary is not None else None
    if canary is None or age is None:
        control_seen = probe.control is not None and _fresh(probe.control, rules)
        why = (
            "the control is scraped but the canary is not (is it down?)"
            if control_seen
            else "no samples for canary or control either (is Prometheus scraping?)"
        )
        return f"no canary samples: {why}"
    if age > rules.max_staleness:
        return (
            f"newest canary sample is {age:.0f}s old, more than max staleness "
            f"{rules.max_staleness:g}s (is Prometheus scraping?)"
        )
    return None


def evaluate_probe(probe: ProbeInput, rules: Rules) -> ProbeResult:
    """One probe's state. Freshness is the canary's own: whether Prometheus is down, stale, or
    no longer scraping the canary, there is no fresh evidence about it, and that is blind."""
    at = probe.at
    why = _blind(probe, rules)
    if why is not None:
        return ProbeResult(at, State.BLIND, (f"blind: {why}",))
    assert probe.canary is not None and probe.canary.newest_sample_age is not None
    fresh_at = at - probe.canary.newest_sample_age
    canary = probe.canary_total or probe.canary
    if canary.requests < rules.min_requests:
        return ProbeResult(
            at,
            State.INCONCLUSIVE,
            (
                f"inconclusive: only {canary.requests:.0f} canary requests since it started "
                f"serving (need {rules.min_requests})",
            ),
            fresh_at=fresh_at,
        )
    control = probe.control_total or probe.control
    control_ok = (
        control is not None
        and _fresh(probe.control, rules)
        and control.requests >= rules.min_requests
    )
    notes: list[str] = [] if probe.note is None else [probe.note]
    if not control_ok:
        notes.append("control: too little data, judged on absolute limits only")
        control = None
    spans = [("since start", canary, control)]
    if probe.canary_recent is not None and probe.canary_recent.requests < canary.requests:
        recent_control = probe.control_recent if control_ok else None
        spans.append((f"last {rules.sliding:g}s", probe.canary_recent, recent_control))
    findings: list[Finding] = []
    for span, c, k in spans:
        findings += error_findings(span, c, k, rules, per_code=span == "since start")
        findings += latency_findings(span, c, k, rules)
    red = {f.kind for f in findings if f.red}
    fleet = {f.kind for f in findings if f.fleet} - red
    checked = {f.kind for f in findings}
    reasons = [f.text for f in findings if f.red]
    reasons += [f.text for f in findings if f.fleet and f.kind in fleet]
    pending = [f.text for f in findings if f.pending]
    notes += [f.text for f in findings if not f.red and not f.fleet and not f.pending]
    p_values = [f.p_value for f in findings if f.p_value is not None]
    if red:
        state = State.RED
    elif fleet:
        state = State.FLEET_BREACH
    elif pending:
        state = State.INCONCLUSIVE
        reasons += [f"inconclusive: {text}" for text in pending]
    elif LATENCY not in checked:
        state = State.INCONCLUSIVE
        reasons.append("inconclusive: too few canary latency observations to call it green")
    else:
        state = State.GREEN
        reasons.append("green: no test significant at the window's false-revert budget")
    return ProbeResult(
        at,
        state,
        tuple(reasons + notes),
        red_kinds=frozenset(red),
        fleet_kinds=frozenset(fleet),
        checked_kinds=frozenset(checked),
        fresh_at=fresh_at,
        p_value=min(p_values) if p_values else None,
        level=rules.level,
    )


# --- the watch ----------------------------------------------------------------------------


def _streak(current: int, kind: str, result: ProbeResult) -> int:
    if kind in result.red_kinds:
        return current + 1
    if kind in result.checked_kinds:
        return 0
    return current  # no evidence either way (blind, inconclusive): the streak stands


def advance(
    state: WatchState, result: ProbeResult, rules: Rules
) -> tuple[WatchState, Decision | None]:
    """Fold one probe into the watch state; the Decision says to act now (else None)."""
    name = result.state.value
    new = replace(
        state,
        probes=state.probes + 1,
        last_probe_at=result.at,
        **{name: getattr(state, name) + 1},
    )
    if result.state is State.BLIND:
        new = replace(
            new,
            blind_seconds=state.blind_seconds + (result.at - state.last_probe_at),
            blind_streak=state.blind_streak + 1,
        )
        stale_for = result.at - state.last_fresh_at
        detail = result.reasons[0].removeprefix("blind: ")
        if stale_for > rules.max_staleness:
            why = f"blind for {stale_for:.1f}s, longer than max staleness {rules.max_staleness:g}s"
        elif new.blind_streak >= rules.blind_probes:
            why = f"blind in {new.blind_streak} consecutive probes (blind probes {rules.blind_probes})"
        else:
            return new, None  # one failed probe never acts: the last fresh one stands for now
        why = f"{why} ({detail})"
        if rules.blind_policy == "hold":
            return new, Decision("hold", f"{why}; blind policy hold: not judging", blind=True)
        return new, Decision("revert", f"{why}; blind policy revert", blind=True)

    assert result.fresh_at is not None
    new = replace(
        new,
        blind_streak=0,
        last_fresh_at=max(state.last_fresh_at, result.fresh_at),
        errors_streak=_streak(state.errors_streak, ERRORS, result),
        latency_streak=_streak(state.latency_streak, LATENCY, result),
    )
    if result.state is State.FLEET_BREACH:
        new = replace(new, fleet_reasons=state.fleet_reasons + result.reasons[:1])
    acting = []
    if new.errors_streak >= rules.errors_consecutive:
        acting.append(f"errors red in {new.errors_streak} consecutive probe(s)")
    if new.latency_streak >= rules.latency_consecutive:
        acting.append(f"latency red in {new.latency_streak} consecutive probe(s)")
    if acting:
        detail = "; ".join(r for r in result.reasons if r.startswith(("errors", "latency")))
        return new, Decision("revert", f"canary red: {', '.join(acting)}: {detail}")
    return new, None


def greens_to_promote(probes: int, promote_fraction: float) -> int:
    """Conclusive green probes a window of `probes` needs to promote: a share of at least the fraction."""
    return math.ceil(probes * promote_fraction - 1e-9)  # 5 x 0.8 is 4, not 4.000…1


def final_verdict(state: WatchState, rules: Rules) -> Verdict:
    """The verdict at the end of a window that ended without acting."""
    n = state.probes
    share = state.green / n if n else 0.0
    summary = (
        f"{state.green}/{n} probes conclusive green "
        f"({share:.0%}, need {rules.promote_fraction:.0%})"
    )
    if state.red:
        return Verdict(
            "hold",
            EXIT_HOLD,
            f"{state.red} red probe(s), fewer than the consecutive count that reverts: "
            f"not promoting; {summary}",
        )
    if state.fleet_breach:
        return Verdict(
            "hold",
            EXIT_HOLD,
            f"FLEET-WIDE BREACH in {state.fleet_breach} probe(s), not the canary's fault: "
            f"neither promoting nor reverting ({state.fleet_reasons[0]}); {summary}",
        )
    if n and state.green >= greens_to_promote(n, rules.promote_fraction):
        return Verdict("promote", EXIT_PROMOTE, summary)
    return Verdict("hold", EXIT_HOLD, f"not enough evidence: {summary}")


def verdict_after_decision(decision: Decision, revert_ok: bool | None, shadow: bool) -> Verdict:
    """The verdict once the watch acted: revert_ok is None when no revert was needed."""
    if decision.action == "hold":
        return Verdict("hold", EXIT_HOLD, decision.reason)
    if shadow:
        return Verdict(
            "would_revert",
            EXIT_WOULD_REVERT,
            f"{decision.reason} (SHADOW MODE: nothing was reverted)",
        )
    if revert_ok:
        return Verdict("reverted", EXIT_REVERTED, decision.reason)
    return Verdict(
        "revert_failed",
        EXIT_REVERT_FAILED,
        f"{decision.reason}; THE REVERT FAILED: revert the canary by hand (make rollback)",
    )
