"""The judge, case by case: one probe's state, the watch's course, the final verdict."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

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
    binom_sf,
    error_excess_p_value,
    evaluate_probe,
    final_verdict,
    verdict_after_decision,
)
from watcher.sli import SideSLI

RULES = Rules()


def side(
    requests: float = 1000,
    errors: float = 0,
    code: str = "500",
    p95: float | None = 0.1,
    age: float | None = 1.0,
    extra_codes: dict[str, float] | None = None,
) -> SideSLI:
    codes = {"200": requests - errors}
    if errors:
        codes[code] = errors
    codes.update(extra_codes or {})
    return SideSLI(
        requests=requests, codes=codes, p95=p95, newest_sample_age=age, range_seconds=10
    )


def probe(canary: SideSLI | None, control: SideSLI | None = None, at: float = 10.0) -> ProbeInput:
    return ProbeInput(at=at, canary=canary, control=control if control is not None else side())


# (name, canary, control, rules, expected state, expected red kinds, text in reasons)
CASES = [
    ("healthy", side(), side(), RULES, State.GREEN, set(), "green"),
    ("nan p95 is no data, never green", side(p95=None), side(), RULES, State.INCONCLUSIVE,
     set(), "latency unknown"),
    ("zero traffic", side(requests=0, p95=None), side(), RULES, State.INCONCLUSIVE, set(),
     "only 0 canary requests"),
    ("low traffic", side(requests=19, errors=19), side(), RULES, State.INCONCLUSIVE, set(),
     "only 19 canary requests"),
    ("just enough traffic is judged", side(requests=20, errors=5), side(), RULES, State.RED,
     {ERRORS}, "above the limit"),
    ("errors above the absolute limit", side(errors=25), side(), RULES, State.RED, {ERRORS},
     "canary 5xx 2.50% (25/1000) above the limit 0.50%"),
    ("errors at the absolute limit are fine", side(errors=5), side(errors=5), RULES, State.GREEN,
     set(), "green"),
    ("errors significantly above control",
     side(errors=40), side(requests=10000, errors=10), replace(RULES, err_threshold=0.5),
     State.RED, {ERRORS}, "significantly above control"),
    ("a bare ratio of tiny numbers is not significant",
     side(requests=100, errors=1), side(requests=100, errors=0, p95=0.1),
     replace(RULES, err_threshold=0.5), State.GREEN, set(), "green"),
    ("three times control but on four errors: not significant",
     side(errors=3), side(errors=1), replace(RULES, err_threshold=0.5), State.GREEN, set(),
     "green"),
    ("new failure class",
     side(errors=6, code="503"), side(errors=5, code="500"), replace(RULES, err_threshold=0.5),
     State.RED, {ERRORS}, "new failure class: canary served 503 x6"),
    ("new failure class below its minimum count",
     side(errors=4, code="503"), side(errors=5, code="500"),
     replace(RULES, err_threshold=0.5, err_alpha=1e-9), State.GREEN, set(), "green"),
    ("fleet-wide error breach", side(errors=30), side(errors=25), RULES, State.FLEET_BREACH,
     set(), "FLEET-WIDE BREACH (errors)"),
    ("fleet-wide breach but canary far worse", side(errors=300), side(requests=10000, errors=100),
     RULES, State.RED, {ERRORS}, "significantly above control"),
    ("latency above the absolute limit", side(p95=0.8), side(), RULES, State.RED, {LATENCY},
     "p95 0.800s above the limit 0.500s"),
    ("latency above control by ratio and difference", side(p95=0.3), side(p95=0.1), RULES,
     State.RED, {LATENCY}, "above control 0.100s x1.5"),
    ("latency above control by ratio but within the min difference", side(p95=0.12),
     side(p95=0.07), RULES, State.GREEN, set(), "green"),
    ("fleet-wide latency breach", side(p95=0.9), side(p95=0.8), RULES, State.FLEET_BREACH,
     set(), "FLEET-WIDE BREACH (latency)"),
    ("errors and latency both red", side(errors=50, p95=2.0), side(), RULES, State.RED,
     {ERRORS, LATENCY}, "errors:"),
    ("control without traffic: absolute limits only", side(errors=2), side(requests=3),
     RULES, State.GREEN, set(), "absolute limits only"),
    ("control without traffic cannot make a new failure class", side(errors=4, code="503"),
     side(requests=0, p95=None), RULES, State.GREEN, set(), "green"),
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
    result = evaluate_probe(probe(side(age=45), side(age=1)), RULES)
    assert result.state is State.BLIND
    assert "newest canary sample is 45s old" in result.reasons[0]


def test_stale_control_is_only_unusable_for_comparison() -> None:
    result = evaluate_probe(probe(side(errors=2), side(errors=0, age=45)), RULES)
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
    [(0, 5, 0.3), (1, 1, 0.5), (3, 4, 2 / 3), (5, 5, 0.0196), (2, 50, 0.01), (20, 50, 0.3),
     (49, 50, 0.99), (10, 200, 0.2), (60, 200, 0.2)],
)  # fmt: skip
def test_binom_sf_matches_the_exact_sum(k: int, n: int, p: float) -> None:
    assert binom_sf(k, n, p) == pytest.approx(_exact_sf(k, n, p), rel=1e-9, abs=1e-15)


def test_binom_sf_edges() -> None:
    assert binom_sf(6, 5, 0.5) == 0.0
    assert binom_sf(1, 5, 0.0) == 0.0
    assert binom_sf(1, 5, 1.0) == 1.0
    # Large counts stay fast and sane: the mean of Binomial(10**6, 0.5) is its median.
    assert binom_sf(500_000, 1_000_000, 0.5) == pytest.approx(0.5, abs=0.01)


def test_error_excess_p_value() -> None:
    assert error_excess_p_value(0, 100, 5, 100, 2.0) == 1.0
    # 1 error among 100 vs none among 10000: 2% chance under "canary at most 2x control".
    assert error_excess_p_value(1, 100, 0, 10000, 2.0) == pytest.approx(200 / 10200)
    assert error_excess_p_value(40, 1000, 10, 10000, 2.0) < 1e-9
    assert error_excess_p_value(3, 1000, 1, 1000, 2.0) > 0.5


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
    state, decision, _ = run([green(2), blind(4), blind(6), blind(8), green(10)])
    assert decision is None
    assert (state.blind, state.green, state.red) == (3, 2, 0)
    assert state.blind_seconds == pytest.approx(6)


def test_outage_longer_than_max_staleness_reverts_under_the_revert_policy() -> None:
    rules = replace(RULES, max_staleness=10)
    results = [green(2)] + [blind(t) for t in range(4, 20, 2)]
    state, decision, fed = run(results, rules)
    assert decision is not None and decision.action == "revert" and decision.blind
    # Last fresh data at t=1; blind at 12 (11s > 10s) -> acted on the sixth probe.
    assert fed == 6
    assert "blind for 11.0s, longer than max staleness 10s" in decision.reason
    assert state.red == 0 and state.blind == 5


def test_outage_longer_than_max_staleness_holds_under_the_hold_policy() -> None:
    rules = replace(RULES, max_staleness=10, blind_policy="hold")
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
    assert (shadow.verdict, shadow.exit_code) == ("reverted", 1)
    assert "SHADOW MODE" in shadow.reason
