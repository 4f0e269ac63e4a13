"""The judgment: pure functions over dataclasses. No I/O, no clock, no randomness.

evaluate_probe() turns one probe's SLIs into a state (green, red, inconclusive, fleet_breach,
blind) with reasons; advance() folds it into the watch state and says when to act (revert on
enough consecutive red probes of one kind, or apply the blind policy once the last fresh data
is older than max staleness); final_verdict() decides at the end of the window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from enum import StrEnum

from watcher import EXIT_HOLD, EXIT_PROMOTE, EXIT_REVERT_FAILED, EXIT_REVERTED
from watcher.sli import SideSLI

ERRORS = "errors"
LATENCY = "latency"


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
    p95_ratio: float = 1.5  # canary p95 allowed vs control p95
    p95_min_diff: float = 0.05  # ... and only red when also this many seconds above it
    err_ratio: float = 2.0  # canary 5xx ratio allowed vs control
    err_alpha: float = 0.01  # significance level of the canary-vs-control error test
    min_requests: int = 20  # canary requests per probe below which the probe is inconclusive
    new_class_min_count: int = 5  # a 5xx code the control never serves counts from this many
    errors_consecutive: int = 1  # consecutive error-red probes that trigger the revert
    latency_consecutive: int = 2  # consecutive latency-red probes that trigger the revert
    max_staleness: float = 30.0  # seconds the last fresh canary data may stand in for new data
    blind_policy: str = "revert"  # revert | hold, once blind for longer than max_staleness
    promote_fraction: float = 0.8  # conclusive green share of the probes needed to promote


@dataclass(frozen=True)
class ProbeInput:
    at: float  # seconds since the watch started
    canary: SideSLI | None = None
    control: SideSLI | None = None
    error: str | None = None  # the query failed or came back malformed: a blind probe


@dataclass(frozen=True)
class ProbeResult:
    at: float
    state: State
    reasons: tuple[str, ...]
    red_kinds: frozenset[str] = frozenset()
    fleet_kinds: frozenset[str] = frozenset()
    checked_kinds: frozenset[str] = frozenset()  # kinds actually judged (for streak resets)
    fresh_at: float | None = None  # watch time of the newest canary sample; None when blind
    p_value: float | None = None  # canary-vs-control error test, when it ran


@dataclass(frozen=True)
class WatchState:
    probes: int = 0
    green: int = 0
    red: int = 0
    inconclusive: int = 0
    fleet_breach: int = 0
    blind: int = 0
    blind_seconds: float = 0.0
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
    verdict: str  # promote | reverted | hold | revert_failed
    exit_code: int
    reason: str


# --- statistics ---------------------------------------------------------------------------


def _log_pmf(i: int, n: int, log_p: float, log_q: float) -> float:
    return math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (
        n - i
    ) * log_q


def binom_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), summing from the tail inwards (no scipy needed)."""
    if k <= 0:
        return 1.0
    if k > n or p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    log_p, log_q = math.log(p), math.log1p(-p)
    if k > n * p:  # upper tail: terms fall from k upwards
        indices = range(k, n + 1)
        upper = True
    else:  # the complement's tail: terms fall from k-1 downwards
        indices = range(k - 1, -1, -1)
        upper = False
    total = 0.0
    for i in indices:
        term = math.exp(_log_pmf(i, n, log_p, log_q))
        total += term
        if term < total * 1e-17:
            break
    return min(1.0, total) if upper else max(0.0, 1.0 - total)


def error_excess_p_value(
    canary_errors: float,
    canary_requests: float,
    control_errors: float,
    control_requests: float,
    ratio: float,
) -> float:
    """One-sided p-value for "canary's 5xx rate is more than `ratio` x control's".

    Conditional binomial test on counts (errors as Poisson events with the requests as
    exposure): given the total of errors on both sides, under the null hypothesis the canary's
    share of them is Binomial(total, r*n1 / (r*n1 + n2)). Exact for small counts, where a
    z-test's normal approximation (and a bare ratio of tiny numbers) misleads.
    """
    x1, n1 = round(canary_errors), canary_requests
    x2, n2 = round(control_errors), control_requests
    if x1 <= 0 or n1 <= 0 or n2 <= 0:
        return 1.0
    share = ratio * n1 / (ratio * n1 + n2)
    return binom_sf(x1, x1 + x2, share)


# --- one probe ----------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.2f}%"


def _secs(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}s"


def _fresh(side: SideSLI | None, rules: Rules) -> bool:
    age = side.newest_sample_age if side is not None else None
    return age is not None and age <= rules.max_staleness


def evaluate_probe(probe: ProbeInput, rules: Rules) -> ProbeResult:
    """One probe's state. Freshness is the canary's own: whether Prometheus is down, stale, or
    no longer scraping the canary, there is no fresh evidence about it, and that is blind."""
    at = probe.at
    if probe.error is not None:
        return ProbeResult(at, State.BLIND, (f"blind: {probe.error}",))
    canary = probe.canary
    age = canary.newest_sample_age if canary is not None else None
    if canary is None or age is None:
        control_seen = probe.control is not None and _fresh(probe.control, rules)
        why = (
            "the control is scraped but the canary is not (is it down?)"
            if control_seen
            else "no samples for canary or control either (is Prometheus scraping?)"
        )
        return ProbeResult(at, State.BLIND, (f"blind: no canary samples: {why}",))
    if age > rules.max_staleness:
        return ProbeResult(
            at,
            State.BLIND,
            (
                f"blind: newest canary sample is {age:.0f}s old, more than max staleness "
                f"{rules.max_staleness:g}s (is Prometheus scraping?)",
            ),
        )
    fresh_at = at - age
    if canary.requests < rules.min_requests:
        return ProbeResult(
            at,
            State.INCONCLUSIVE,
            (
                f"inconclusive: only {canary.requests:.0f} canary requests in "
                f"{canary.range_seconds:g}s (need {rules.min_requests})",
            ),
            fresh_at=fresh_at,
        )
    control = probe.control
    control_ok = (
        control is not None and _fresh(control, rules) and control.requests >= rules.min_requests
    )
    reasons: list[str] = []
    notes: list[str] = []
    red: set[str] = set()
    fleet: set[str] = set()
    checked = {ERRORS}
    if not control_ok:
        notes.append("control: too little data, judged on absolute limits only")

    # Errors.
    c_ratio = canary.error_ratio or 0.0
    k_ratio = control.error_ratio if control_ok and control is not None else None
    p_value = None
    if control_ok and control is not None:
        p_value = error_excess_p_value(
            canary.errors, canary.requests, control.errors, control.requests, rules.err_ratio
        )
    rel_err = (
        p_value is not None
        and k_ratio is not None
        and c_ratio > k_ratio * rules.err_ratio
        and p_value < rules.err_alpha
    )
    abs_err = c_ratio > rules.err_threshold
    fleet_err = abs_err and k_ratio is not None and k_ratio > rules.err_threshold
    counts = f"({canary.errors:.0f}/{canary.requests:.0f})"
    if abs_err and not fleet_err:
        red.add(ERRORS)
        reasons.append(
            f"errors: canary 5xx {_pct(c_ratio)} {counts} above the limit "
            f"{_pct(rules.err_threshold)}"
        )
    if rel_err and control is not None:
        red.add(ERRORS)
        reasons.append(
            f"errors: canary 5xx {_pct(c_ratio)} {counts} significantly above control "
            f"{_pct(k_ratio)} ({control.errors:.0f}/{control.requests:.0f}) x{rules.err_ratio:g} "
            f"(p={p_value:.2g} < {rules.err_alpha:g})"
        )
    if control_ok and control is not None:
        for code, count in canary.error_codes.items():
            if count >= rules.new_class_min_count and control.codes.get(code, 0.0) <= 0:
                red.add(ERRORS)
                reasons.append(
                    f"errors: new failure class: canary served {code} x{count:.0f}, "
                    "control served none"
                )
    if fleet_err and ERRORS not in red:
        fleet.add(ERRORS)
        reasons.append(
            f"FLEET-WIDE BREACH (errors): canary 5xx {_pct(c_ratio)} and control "
            f"{_pct(k_ratio)} both above {_pct(rules.err_threshold)}: not the canary's fault"
        )
    elif fleet_err:
        notes.append("errors: control is above the limit too, but the canary is worse still")

    # Latency.
    c_p95 = canary.p95
    k_p95 = control.p95 if control_ok and control is not None else None
    if c_p95 is None:
        notes.append("latency: no canary p95 (no data)")
    else:
        checked.add(LATENCY)
        abs_lat = c_p95 > rules.p95_threshold
        fleet_lat = abs_lat and k_p95 is not None and k_p95 > rules.p95_threshold
        rel_lat = (
            k_p95 is not None
            and c_p95 > k_p95 * rules.p95_ratio
            and c_p95 - k_p95 > rules.p95_min_diff
        )
        if abs_lat and not fleet_lat:
            red.add(LATENCY)
            reasons.append(
                f"latency: canary p95 {_secs(c_p95)} above the limit {_secs(rules.p95_threshold)}"
            )
        if rel_lat:
            red.add(LATENCY)
            reasons.append(
                f"latency: canary p95 {_secs(c_p95)} above control {_secs(k_p95)} "
                f"x{rules.p95_ratio:g} and by more than {_secs(rules.p95_min_diff)}"
            )
        if fleet_lat and LATENCY not in red:
            fleet.add(LATENCY)
            reasons.append(
                f"FLEET-WIDE BREACH (latency): canary p95 {_secs(c_p95)} and control "
                f"{_secs(k_p95)} both above {_secs(rules.p95_threshold)}: not the canary's fault"
            )
        elif fleet_lat:
            notes.append("latency: control is above the limit too, but the canary is worse still")

    if red:
        state = State.RED
    elif fleet:
        state = State.FLEET_BREACH
    elif LATENCY not in checked:
        state = State.INCONCLUSIVE
        reasons.append("inconclusive: canary latency unknown, cannot call the probe green")
    else:
        state = State.GREEN
        reasons.append("green: within absolute limits and in line with control")
    return ProbeResult(
        at,
        state,
        tuple(reasons + notes),
        red_kinds=frozenset(red),
        fleet_kinds=frozenset(fleet),
        checked_kinds=frozenset(checked),
        fresh_at=fresh_at,
        p_value=p_value,
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
    counts = {
        State.GREEN: "green",
        State.RED: "red",
        State.INCONCLUSIVE: "inconclusive",
        State.FLEET_BREACH: "fleet_breach",
        State.BLIND: "blind",
    }
    name = counts[result.state]
    new = replace(
        state,
        probes=state.probes + 1,
        last_probe_at=result.at,
        **{name: getattr(state, name) + 1},
    )
    if result.state is State.BLIND:
        new = replace(new, blind_seconds=state.blind_seconds + (result.at - state.last_probe_at))
        stale_for = result.at - state.last_fresh_at
        if stale_for > rules.max_staleness:
            why = (
                f"blind for {stale_for:.1f}s, longer than max staleness {rules.max_staleness:g}s "
                f"({result.reasons[0].removeprefix('blind: ')})"
            )
            if rules.blind_policy == "hold":
                return new, Decision("hold", f"{why}; blind policy hold: not judging", blind=True)
            return new, Decision("revert", f"{why}; blind policy revert", blind=True)
        return new, None  # the last fresh probe stands for now

    assert result.fresh_at is not None
    new = replace(
        new,
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
    if n and share >= rules.promote_fraction:
        return Verdict("promote", EXIT_PROMOTE, summary)
    return Verdict("hold", EXIT_HOLD, f"not enough evidence: {summary}")


def verdict_after_decision(decision: Decision, revert_ok: bool | None, shadow: bool) -> Verdict:
    """The verdict once the watch acted: revert_ok is None when no revert was needed."""
    if decision.action == "hold":
        return Verdict("hold", EXIT_HOLD, decision.reason)
    if shadow:
        return Verdict(
            "reverted",
            EXIT_REVERTED,
            f"{decision.reason} (SHADOW MODE: nothing was reverted)",
        )
    if revert_ok:
        return Verdict("reverted", EXIT_REVERTED, decision.reason)
    return Verdict(
        "revert_failed",
        EXIT_REVERT_FAILED,
        f"{decision.reason}; THE REVERT FAILED: revert the canary by hand (make rollback)",
    )
