"""The judge's tests of one span of evidence (since start, or the sliding span): findings.

Each finding says which kind it is about, whether it is red or a fleet-wide breach, the test
behind it and its p-value against the per-test level (see watcher.judge for the budget).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from watcher import stats
from watcher.sli import SideSLI

if TYPE_CHECKING:
    from watcher.judge import Rules

ERRORS = "errors"
LATENCY = "latency"
P95_SHARE = 0.05  # a p95 over the limit = more than 5 % of requests slower than it


@dataclass(frozen=True)
class Finding:
    kind: str  # errors | latency
    red: bool
    fleet: bool
    text: str
    p_value: float | None = None
    pending: bool = False  # over the limit, the comparison with control not conclusive yet


def _pct(value: float) -> str:
    return f"{value * 100:.2f}%"


def _p(p: float, level: float) -> str:
    return f"p={p:.2g} {'<' if p < level else '>='} {level:.2g}"


def _judge(
    kind: str,
    span: str,
    what: str,
    p_slo: float,
    p_worse: float | None,
    p_tol: float | None,
    tol: str,
    level: float,
    control_over: bool = True,
) -> list[Finding]:
    """Red: over the SLO and worse than control, or worse than control beyond the tolerance.
    Over the SLO but not worse than a control that is over it too: a fleet-wide breach. Over the
    SLO, not yet significantly worse than a control under it: pending (inconclusive)."""
    over = p_slo < level
    worse = p_worse is not None and p_worse < level
    beyond = p_tol is not None and p_tol < level
    lowest = min(p for p in (p_slo, p_worse, p_tol) if p is not None)
    if beyond:
        assert p_tol is not None
        return [Finding(kind, True, False, f"{kind} ({span}): {what}, worse than control {tol} "
                        f"({_p(p_tol, level)})", p_tol)]  # fmt: skip
    if over and (worse or p_worse is None):
        against = "no control to compare" if p_worse is None else f"worse than control ({_p(p_worse, level)})"
        return [Finding(kind, True, False, f"{kind} ({span}): {what}, over the limit "
                        f"({_p(p_slo, level)}) and {against}", min(p_slo, p_worse or 1.0))]  # fmt: skip
    if over and not control_over:
        assert p_worse is not None
        return [Finding(kind, False, False, f"{kind} ({span}): {what}: over the limit ({_p(p_slo, level)}), "
                        f"the control under it, not yet significantly worse ({_p(p_worse, level)}): "
                        "waiting for more evidence", p_slo, pending=True)]  # fmt: skip
    if over:
        assert p_worse is not None
        return [Finding(kind, False, True, f"FLEET-WIDE BREACH ({kind}), {span}: {what}: over the limit "
                        f"({_p(p_slo, level)}) but no worse than control ({_p(p_worse, level)}): "
                        "not the canary's fault", p_slo)]  # fmt: skip
    return [Finding(kind, False, False, f"{kind} ({span}): {what}: nothing significant "
                    f"(lowest {_p(lowest, level)})", lowest)]  # fmt: skip


def error_findings(
    span: str, canary: SideSLI, control: SideSLI | None, rules: Rules, per_code: bool
) -> list[Finding]:
    level = rules.level
    x1, n1 = canary.errors, canary.requests
    what = f"canary 5xx {_pct(x1 / n1)} ({x1:.0f}/{n1:.0f})"
    p_slo = stats.above_p_value(x1, n1, rules.err_threshold)
    p_worse = p_tol = None
    p_fleet = 1.0
    if control is not None and control.requests > 0:
        x2, n2 = control.errors, control.requests
        what += f", control {_pct(x2 / n2)} ({x2:.0f}/{n2:.0f}), limit {_pct(rules.err_threshold)}"
        p_worse = stats.excess_p_value(x1, n1, x2, n2, 1.0)
        p_tol = stats.excess_p_value(x1, n1, x2, n2, rules.err_ratio)
        p_fleet = stats.above_p_value(x2, n2, rules.err_threshold)
    else:
        what += f", limit {_pct(rules.err_threshold)}"
    control_over = control is not None and (
        p_fleet < level or control.errors > rules.err_threshold * control.requests
    )
    found = _judge(ERRORS, span, what, p_slo, p_worse, p_tol, f"x{rules.err_ratio:g}", level, control_over)
    if not found[0].red and not found[0].fleet and p_fleet < level:
        # The control over the limit while the canary is no worse: the fleet's breach.
        found = [Finding(ERRORS, False, True, f"FLEET-WIDE BREACH (errors), {span}: {what}: the control "
                         f"is over the limit ({_p(p_fleet, level)}) and the canary no worse: not the "
                         "canary's fault", p_fleet)]  # fmt: skip
    if per_code and control is not None and not found[0].red:
        codes = canary.error_codes
        for code, count in codes.items():
            other = control.codes.get(code, 0.0)
            p = stats.excess_p_value(count, n1, other, control.requests, rules.err_ratio)
            if p < level / len(codes):
                found.append(Finding(ERRORS, True, False, f"errors ({span}): canary served {code} "
                                     f"x{count:.0f} ({count / n1 * 100:.2f}%), control x{other:.0f} "
                                     f"({other / control.requests * 100:.2f}%): worse than control "
                                     f"x{rules.err_ratio:g} ({_p(p, level / len(codes))})", p))  # fmt: skip
    return found


def latency_findings(
    span: str, canary: SideSLI, control: SideSLI | None, rules: Rules
) -> list[Finding]:
    level = rules.level
    buckets = canary.buckets
    n1 = buckets.get(float("inf"), 0.0)
    if n1 < rules.min_requests:
        return []
    bound = stats.bound_at_or_above(buckets, rules.p95_threshold)
    if bound is None:
        return []
    slow1, _ = stats.share_above(buckets, bound)
    what = f"canary {_pct(slow1 / n1)} of {n1:.0f} slower than {bound:g}s"
    p_slo = stats.above_p_value(slow1, n1, P95_SHARE)
    p_worse = p_tol = None
    tol = ""
    control_over = True
    if control is not None and control.buckets.get(float("inf"), 0.0) >= rules.min_requests:
        slow2, n2 = stats.share_above(control.buckets, bound)
        control_over = slow2 > P95_SHARE * n2
        what += f" (control {_pct(slow2 / n2)}), p95 limit {rules.p95_threshold:g}s"
        p_worse = stats.excess_p_value(slow1, n1, slow2, n2, 1.0)
        mark = stats.quantile_bound(control.buckets, 0.95)
        if mark is not None:
            over1, _ = stats.share_above(buckets, mark)
            over2, _ = stats.share_above(control.buckets, mark)
            share2 = over2 / n2
            p_tol = stats.above_p_value(over1, n1, share2 + rules.lat_tolerance)
            tol = (f"by more than {rules.lat_tolerance * 100:g} points: {_pct(over1 / n1)} slower than "
                   f"control's p95 bucket {mark:g}s, control {_pct(share2)}")  # fmt: skip
    return _judge(LATENCY, span, what, p_slo, p_worse, p_tol, tol, level, control_over)
