"""Preflight's traffic check: at the canary's recent rate, can enough of the window's probes count for it to
promote? The bound is checked against the real judge over simulated windows, not taken from the formula."""

from __future__ import annotations

import pytest

from watcher.config import Settings, load_settings
from watcher.judge import ProbeInput, State, evaluate_probe, greens_to_promote
from watcher.sli import SideSLI
from watcher.traffic_check import probes_that_can_be_green, traffic_warning, window_that_can_promote


def settings(window: str = "30s", interval: str = "3s") -> Settings:
    return load_settings(["--prom-url", "http://127.0.0.1:9", "--canary-selector", 'node="edge-1"',
                          "--control-selector", 'node!="edge-1"', "--revert-action", "none",
                          "--window", window, "--interval", interval, "--scrape-interval", "1"], environ={})


def healthy(requests: float) -> SideSLI:
    return SideSLI(requests=requests, codes={"200": requests}, newest_sample_age=1.0, range_seconds=3,
                   buckets={le: requests for le in (0.05, 0.1, 0.25, 0.5, 1.0, float("inf"))})


def greens_of_the_real_judge(s: Settings, rate: float) -> int:
    """Green probes of a window of a healthy canary serving `rate` requests/s, as the judge calls them."""
    greens = 0
    for k in range(1, s.planned_probes + 1):
        at = k * s.interval
        probe = ProbeInput(at=at, canary=healthy(rate * s.interval), canary_total=healthy(rate * at),
                           control=healthy(100 * s.interval), control_total=healthy(100 * at))
        greens += evaluate_probe(probe, s.rules).state is State.GREEN
    return greens


@pytest.mark.parametrize("rate", [0.1, 0.375, 0.7, 1.0, 2.0, 7.0, 50.0])
@pytest.mark.parametrize(("window", "interval"), [("30s", "3s"), ("1h", "30s"), ("10m", "15s")])
def test_the_judge_calls_a_healthy_canary_green_on_exactly_the_probes_the_bound_allows(
        window: str, interval: str, rate: float) -> None:
    s = settings(window, interval)
    bound = probes_that_can_be_green(s.planned_probes, s.interval, rate, s.rules.min_requests)
    assert greens_of_the_real_judge(s, rate) == bound


def test_a_quiet_canary_is_warned_of_with_the_window_that_would_do() -> None:
    s = settings()  # the lab's: 10 probes of 3 s, 20 requests before a probe counts, 8 greens to promote
    warning = traffic_warning(s, requests=112, lookback=300)  # 0.37/s: the lab's 1.5 req/s over 4 nodes
    assert warning is not None
    assert warning.startswith("the canary served 112 requests in the last 300s (0.37/s): ")
    assert "at most 0 of the window's 10 probes can be green and promotion needs 8" in warning
    longer = window_that_can_promote(s.interval, 112 / 600, s.rules.min_requests, s.rules.promote_fraction)
    assert longer is not None and f"give SLI_WINDOW of at least {longer:g} s (enough at half that rate)" in warning
    # That window promotes a healthy canary at that rate and at half of it, as the real judge calls it; the
    # window that is just enough at the rate seen is not enough at half of it.
    wide = settings(f"{longer:g}s")
    for rate in (112 / 300, 112 / 600):
        assert greens_of_the_real_judge(wide, rate) >= greens_to_promote(wide.planned_probes, 0.8), rate
    bare = window_that_can_promote(s.interval, 112 / 300, s.rules.min_requests, s.rules.promote_fraction)
    narrow = settings(f"{bare:g}s")
    assert greens_of_the_real_judge(narrow, 112 / 600) < greens_to_promote(narrow.planned_probes, 0.8)


def test_a_canary_with_traffic_enough_or_none_at_all() -> None:
    s = settings()
    assert traffic_warning(s, requests=3750, lookback=300) is None  # 12.5/s: every probe can count
    silent = traffic_warning(s, requests=0, lookback=300)
    assert silent is not None and "the window cannot be long enough" in silent
