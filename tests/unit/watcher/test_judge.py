"""The judge, case by case: one probe's state, the watch's course, the final verdict."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from watcher import stats
from watcher.judge import (
    ERRORS,
    LATENCY,
    Decision,
    ProbeInput,
    ProbeResult,
    Rules,
    State,
    WatchState,
    advance,
    evaluate_probe,
    final_verdict,
    verdict_after_decision,
)
from watcher.sli import SideSLI

RULES = Rules(planned_probes=120)  # production: an hour of 30 s probes
INF = math.inf
FAST = {0.1: 0.9, 0.2: 0.97, 0.5: 0.995, 1.0: 1.0, INF: 1.0}  # a healthy node's latency
SLOW = {0.1: 0.0, 0.2: 0.0, 0.5: 0.2, 1.0: 0.9, INF: 1.0}  # +0.8 s
HALF = {0.1: 0.5, 0.2: 0.85, 0.5: 0.9, 1.0: 0.95, INF: 1.0}  # p95 at 1 s: over the 0.5 s limit


def side(
    requests: float = 10000,
    errors: float = 0,
    code: str = "500",
    latency: dict[float, float] | None = None,
    age: float | None = 1.0,
    extra_codes: dict[str, float] | None = None,
) -> SideSLI:
    codes = {"200": requests - errors}
    if errors:
        codes[code] = errors
    codes.update(extra_codes or {})
    shares = FAST if latency is None else latency
    buckets = {le: round(share * requests) for le, share in shares.items()}
    return SideSLI(requests=requests, codes=codes, newest_sample_age=age, range_seconds=30,
                   buckets=buckets)  # fmt: skip


def probe(canary: SideSLI | None, control: SideSLI | None = None, at: float = 10.0) -> ProbeInput:
    return ProbeInput(at=at, canary=canary, control=control if control is not None else side(20000))


LOOSE = replace(RULES, err_threshold=0.5)  # absolute error limit out of the way

# (name, canary, control, rules, expected state, expected red kinds, text in reasons)
CASES = [
    ("healthy", side(), side(20000), RULES, State.GREEN, set(), "green"),
    ("no latency observations is never green", side(latency={INF: 0.0}), side(), RULES,
     State.INCONCLUSIVE, set(), "too few canary latency observations"),
    ("zero traffic", side(requests=0), side(), RULES, State.INCONCLUSIVE, set(),
     "only 0 canary requests"),
    ("low traffic", side(requests=19, errors=19), side(), RULES, State.INCONCLUSIVE, set(),
     "only 19 canary requests"),
    # Issue 14: 1 error in 199 was red on the raw ratio; it is not evidence of anything.
    ("one error in 199 requests is not red", side(requests=199, errors=1), side(400), RULES,
     State.GREEN, set(), "green"),
    ("background 0.4 % on both sides is green", side(errors=40), side(20000, errors=80), RULES,
     State.GREEN, set(), "green"),
    ("errors over the limit and worse than control, within the tolerance",
     side(100000, errors=1500), side(200000, errors=2000), RULES, State.RED, {ERRORS},
     "over the limit (p="),
    ("over the limit, no control: absolute limit only", side(errors=150), side(requests=3),
     RULES, State.RED, {ERRORS}, "no control to compare"),
    ("worse than control beyond the tolerance, under the limit", side(errors=40),
     side(20000, errors=4), RULES, State.RED, {ERRORS}, "worse than control x2"),
    ("a bare ratio of tiny numbers is not significant", side(requests=100, errors=1),
     side(requests=100), LOOSE, State.GREEN, set(), "green"),
    ("three times control on four errors: not significant", side(errors=3), side(errors=1),
     LOOSE, State.GREEN, set(), "green"),
    ("a failure class the control does not serve", side(errors=40, code="504"),
     side(20000, errors=20, code="500"), LOOSE, State.RED, {ERRORS}, "canary served 504 x40"),
    ("a few of a new class are not enough", side(errors=6, code="503"),
     side(20000, errors=10, code="500"), LOOSE, State.GREEN, set(), "green"),
    ("fleet-wide error breach: over the limit, no worse than control", side(errors=80),
     side(20000, errors=160), RULES, State.FLEET_BREACH, set(), "FLEET-WIDE BREACH (errors"),
    ("the control over the limit, the canary no worse: fleet-wide", side(errors=60),
     side(20000, errors=200), RULES, State.FLEET_BREACH, set(), "the control is over the limit"),
    # The lab's v2-errors on its first probe: far over the limit, the control clean, but 7 of 33
    # is not yet significantly worse than 0 of 66 at the budget: wait, never call it fleet-wide.
    ("over the limit, control under it, comparison not conclusive yet",
     side(requests=33, errors=7), side(66), replace(RULES, planned_probes=5), State.INCONCLUSIVE,
     set(), "waiting for more evidence"),
    ("fleet-wide breach but canary far worse", side(errors=300), side(20000, errors=200),
     RULES, State.RED, {ERRORS}, "worse than control"),
    ("latency over the limit and worse than control", side(latency=SLOW), side(20000), RULES,
     State.RED, {LATENCY}, "latency (since start)"),
    ("latency over the limit with no control", side(latency=HALF), side(requests=3), RULES,
     State.RED, {LATENCY}, "no control to compare"),
    ("fleet-wide latency breach", side(latency=SLOW), side(20000, latency=SLOW), RULES,
     State.FLEET_BREACH, set(), "FLEET-WIDE BREACH (latency"),
    ("slower than control's p95 bucket beyond the tolerance",
     side(latency={0.1: 0.7, 0.2: 0.8, 0.5: 1.0, INF: 1.0}), side(20000), RULES, State.RED,
     {LATENCY}, "by more than 5 points"),
    ("within the latency tolerance", side(latency={0.1: 0.88, 0.2: 0.95, 0.5: 1.0, INF: 1.0}),
     side(20000), RULES, State.GREEN, set(), "green"),
    ("errors and latency both red", side(errors=500, latency=SLOW), side(20000), RULES,
     State.RED, {ERRORS, LATENCY}, "errors"),
    ("control without traffic: absolute limits only", side(errors=20), side(requests=3),
     RULES, State.GREEN, set(), "absolute limits only"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("canary", "control", "rules", "state", "red", "text"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_probe_table(
    canary: SideSLI,
    control: SideSLI,
    rules: Rules,
    state: State,
    red: set[str],
    text: str,
) -> None:
    result = evaluate_probe(probe(canary, control), rules)
    assert result.state is state, result.reasons
    assert result.red_kinds == red
    assert any(text in r for r in result.reasons), result.reasons


def test_the_budget_is_spread_over_the_planned_probes_and_the_red_paths() -> None:
    assert RULES.level == pytest.approx(0.01 / (120 * 9))
    # 20 errors in 1000 against 0.5 %: p ~ 3e-6. Red in a 1-probe window, red in a 120-probe one?
    canary, control = side(1000, errors=20), side(20000, errors=20)
    assert evaluate_probe(probe(canary, control), replace(RULES, planned_probes=1)).state is State.RED
    p = evaluate_probe(probe(canary, control), RULES).p_value
    assert p is not None and p < RULES.level * 10


def test_a_fault_starting_late_is_seen_by_the_sliding_check() -> None:
    total, control = side(100000, errors=100), side(200000, errors=200)  # an hour at 0.1 %
    recent, recent_control = side(5000, errors=80), side(10000, errors=10)  # last 5 min: 1.6 %
    diluted = ProbeInput(at=3600, canary=recent, control=recent_control,
                         canary_total=total, control_total=control)  # fmt: skip
    assert evaluate_probe(diluted, RULES).state is State.GREEN
    sliding = replace(diluted, canary_recent=recent, control_recent=recent_control)
    result = evaluate_probe(sliding, RULES)
    assert result.state is State.RED and any("last 300s" in r for r in result.reasons)


def test_the_probe_reports_its_level_and_smallest_p_value() -> None:
    result = evaluate_probe(probe(side(errors=10), side(20000, errors=20)), RULES)
    assert result.level == RULES.level and result.p_value is not None


def test_query_failure_is_blind() -> None:
    result = evaluate_probe(ProbeInput(at=5, error="cannot reach Prometheus"), RULES)
    assert result.state is State.BLIND
    assert "cannot reach Prometheus" in result.reasons[0]
    assert result.fresh_at is None


def test_no_samples_at_all_is_blind() -> None:
    result = evaluate_probe(probe(side(age=None), side(age=None)), RULES)
    assert result.state is State.BLIND
    assert "no samples for canary or control either" in result.reasons[0]


def test_canary_no_longer_scraped_is_blind_not_merely_inconclusive() -> None:
    result = evaluate_probe(probe(side(age=None), side()), RULES)
    assert result.state is State.BLIND
    assert "the control is scraped but the canary is not" in result.reasons[0]


def test_stale_samples_are_blind() -> None:
    result = evaluate_probe(probe(side(age=95), side(age=1)), RULES)
    assert result.state is State.BLIND
    assert "newest canary sample is 95s old" in result.reasons[0]


def test_stale_control_is_only_unusable_for_comparison() -> None:
    result = evaluate_probe(probe(side(errors=2), side(errors=0, age=95)), RULES)
    assert result.state is State.GREEN
    assert any("absolute limits only" in r for r in result.reasons)


def test_fresh_at_is_probe_time_minus_the_canary_sample_age() -> None:
    result = evaluate_probe(probe(side(age=3.0), side(age=1.5), at=20), RULES)
    assert result.fresh_at == pytest.approx(17)


def test_p_value_is_reported_when_control_has_data() -> None:
    result = evaluate_probe(probe(side(errors=1), side(errors=1)), RULES)
    assert result.p_value is not None and 0 < result.p_value <= 1


# --- statistics ---------------------------------------------------------------------------


def _exact_sf(k: int, n: int, p: float) -> float:
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))


@pytest.mark.parametrize(
    ("k", "n", "p"),
    [(1, 1, 0.5), (3, 4, 2 / 3), (5, 5, 0.0196), (2, 50, 0.01), (20, 50, 0.3),
     (50, 50, 0.99), (60, 200, 0.2), (16, 18, 0.5)],
)  # fmt: skip
def test_binom_sf_matches_the_exact_sum(k: int, n: int, p: float) -> None:
    assert stats.binom_sf(k, n, p) == pytest.approx(_exact_sf(k, n, p), rel=1e-9, abs=1e-15)


def test_binom_sf_edges() -> None:
    assert stats.binom_sf(6, 5, 0.5) == 0.0
    assert stats.binom_sf(1, 5, 0.0) == 0.0
    assert stats.binom_sf(1, 5, 1.0) == 1.0
    assert stats.binom_sf(0, 5, 0.3) == 1.0
    assert stats.binom_sf(10, 200, 0.2) == 1.0  # at or below the mean: no evidence, reported as 1
    # Large counts stay fast and exact: 2400 of 40000 at 5 % is far above the mean.
    assert 0 < stats.binom_sf(2400, 40000, 0.05) < 1e-15


def test_excess_p_value() -> None:
    assert stats.excess_p_value(0, 100, 5, 100, 2.0) == 1.0
    # 1 error among 100 vs none among 10000: 2% chance under "canary at most 2x control".
    assert stats.excess_p_value(1, 100, 0, 10000, 2.0) == pytest.approx(200 / 10200)
    assert stats.excess_p_value(40, 1000, 10, 10000, 2.0) < 1e-9
    assert stats.excess_p_value(3, 1000, 1, 1000, 2.0) > 0.5


def test_histogram_helpers() -> None:
    buckets = {0.1: 50.0, 0.2: 100.0, INF: 100.0}
    assert stats.histogram_quantile(buckets, 0.95) == pytest.approx(0.1 + 0.1 * 45 / 50)
    assert stats.quantile_bound(buckets, 0.95) == 0.2
    assert stats.share_above(buckets, 0.1) == (50.0, 100.0)
    assert stats.bound_at_or_above(buckets, 0.15) == 0.2
    assert stats.bound_at_or_above(buckets, 0.3) is None
    assert stats.histogram_quantile({INF: 0.0}, 0.95) is None


# --- the course of a watch ----------------------------------------------------------------


def red(at: float, *kinds: str) -> ProbeResult:
    return ProbeResult(at, State.RED, tuple(f"{k}: bad" for k in kinds), frozenset(kinds),
                       checked_kinds=frozenset({ERRORS, LATENCY}), fresh_at=at - 1)  # fmt: skip


def green(at: float) -> ProbeResult:
    return ProbeResult(at, State.GREEN, ("green",), checked_kinds=frozenset({ERRORS, LATENCY}),
                       fresh_at=at - 1)  # fmt: skip


def blind(at: float) -> ProbeResult:
    return ProbeResult(at, State.BLIND, ("blind: cannot reach Prometheus",))


def inconclusive(at: float) -> ProbeResult:
    return ProbeResult(at, State.INCONCLUSIVE, ("inconclusive: few",), fresh_at=at - 1)


def fleet(at: float) -> ProbeResult:
    return ProbeResult(at, State.FLEET_BREACH, ("FLEET-WIDE BREACH (errors): x",),
                       fleet_kinds=frozenset({ERRORS}), checked_kinds=frozenset({ERRORS, LATENCY}),
                       fresh_at=at - 1)  # fmt: skip


def run(
    results: list[ProbeResult], rules: Rules = RULES
) -> tuple[WatchState, Decision | None, int]:
    """Feed results in order; stop at the first decision. Returns state, decision, probes fed."""
    state = WatchState()
    for i, result in enumerate(results, 1):
        state, decision = advance(state, result, rules)
        if decision is not None:
            return state, decision, i
    return state, None, len(results)


def test_errors_revert_on_the_first_red_probe() -> None:
    _, decision, fed = run([green(2), red(4, ERRORS), green(6)])
    assert decision is not None and decision.action == "revert" and fed == 2
    assert "errors red in 1 consecutive" in decision.reason


def test_latency_needs_two_consecutive_red_probes() -> None:
    _, decision, _ = run([red(2, LATENCY), green(4), red(6, LATENCY), green(8)])
    assert decision is None
    _, decision, fed = run([green(2), red(4, LATENCY), red(6, LATENCY), green(8)])
    assert decision is not None and fed == 3
    assert "latency red in 2 consecutive" in decision.reason


def test_consecutive_counts_are_per_kind() -> None:
    rules = replace(RULES, errors_consecutive=2)
    _, decision, _ = run([red(2, ERRORS), red(4, LATENCY), red(6, ERRORS)], rules)
    assert decision is None


def test_no_evidence_between_red_probes_keeps_the_streak() -> None:
    _, decision, fed = run([red(2, LATENCY), blind(4), inconclusive(6), red(8, LATENCY)])
    assert decision is not None and fed == 4


def test_outage_shorter_than_max_staleness_lets_the_last_probe_stand() -> None:
    rules = replace(RULES, blind_probes=4)
    state, decision, _ = run([green(2), blind(4), blind(6), blind(8), green(10)], rules)
    assert decision is None
    assert (state.blind, state.green, state.red) == (3, 2, 0)
    assert state.blind_seconds == pytest.approx(6)


def test_one_failed_probe_never_acts() -> None:
    rules = replace(RULES, max_staleness=90, blind_probes=3)
    state, decision, _ = run([green(30), blind(60), green(90), blind(120), blind(150)], rules)
    assert decision is None and state.blind_streak == 2


def test_consecutive_blind_probes_trip_the_blind_policy() -> None:
    rules = replace(RULES, max_staleness=600, blind_probes=3)
    _, decision, fed = run([green(30), blind(60), blind(90), blind(120)], rules)
    assert decision is not None and decision.blind and fed == 4
    assert "blind in 3 consecutive probes" in decision.reason


def test_outage_longer_than_max_staleness_reverts_under_the_revert_policy() -> None:
    rules = replace(RULES, max_staleness=10, blind_probes=100)
    results = [green(2)] + [blind(t) for t in range(4, 20, 2)]
    state, decision, fed = run(results, rules)
    assert decision is not None and decision.action == "revert" and decision.blind
    # Last fresh data at t=1; blind at 12 (11s > 10s) -> acted on the sixth probe.
    assert fed == 6
    assert "blind for 11.0s, longer than max staleness 10s" in decision.reason
    assert state.red == 0 and state.blind == 5


def test_outage_longer_than_max_staleness_holds_under_the_hold_policy() -> None:
    rules = replace(RULES, max_staleness=10, blind_policy="hold", blind_probes=100)
    _, decision, _ = run([green(2)] + [blind(t) for t in range(4, 20, 2)], rules)
    assert decision is not None and decision.action == "hold"
    assert verdict_after_decision(decision, None, False).exit_code == 2


def test_blind_from_the_start_counts_from_the_watch_start() -> None:
    rules = replace(RULES, max_staleness=5)
    _, decision, fed = run([blind(2), blind(4), blind(6)], rules)
    assert decision is not None and fed == 3


def test_stale_samples_then_revert() -> None:
    rules = replace(RULES, max_staleness=5)
    stale = evaluate_probe(probe(side(age=60), side(age=60), at=8), rules)
    _, decision = advance(replace(WatchState(), last_fresh_at=1), stale, rules)
    assert decision is not None and "newest canary sample is 60s old" in decision.reason


def test_promote_needs_the_promote_fraction_of_green_probes() -> None:
    eight = [green(t) for t in range(1, 9)] + [inconclusive(9), blind(10)]
    state, _, _ = run(eight)
    verdict = final_verdict(state, RULES)
    assert (verdict.verdict, verdict.exit_code) == ("promote", 0)
    seven = [green(t) for t in range(1, 8)] + [inconclusive(t) for t in (8, 9, 10)]
    state, _, _ = run(seven)
    verdict = final_verdict(state, RULES)
    assert (verdict.verdict, verdict.exit_code) == ("hold", 2)
    assert "7/10 probes conclusive green (70%, need 80%)" in verdict.reason


def test_any_red_probe_prevents_promote() -> None:
    state, decision, _ = run([green(t) for t in range(1, 10)] + [red(10, LATENCY)])
    assert decision is None
    verdict = final_verdict(state, RULES)
    assert verdict.verdict == "hold" and "1 red probe" in verdict.reason


def test_fleet_wide_breach_holds_loudly_and_never_reverts() -> None:
    state, decision, _ = run([fleet(t) for t in range(1, 6)] + [green(t) for t in range(6, 30)])
    assert decision is None
    verdict = final_verdict(state, RULES)
    assert verdict.verdict == "hold" and verdict.exit_code == 2
    assert verdict.reason.startswith("FLEET-WIDE BREACH in 5 probe(s)")


def test_verdicts_after_a_revert() -> None:
    decision = Decision("revert", "canary red")
    done = verdict_after_decision(decision, True, False)
    assert (done.verdict, done.exit_code) == ("reverted", 1)
    failed = verdict_after_decision(decision, False, False)
    assert (failed.verdict, failed.exit_code) == ("revert_failed", 3)
    assert "by hand" in failed.reason
    shadow = verdict_after_decision(decision, True, True)
    assert (shadow.verdict, shadow.exit_code) == ("would_revert", 4)
    assert "SHADOW MODE" in shadow.reason
