"""The calibration harness: Prometheus semantics on exact inputs, and a short run of it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from watcher.calibration import promsim
from watcher.calibration.report import markdown
from watcher.calibration.scenarios import LAB, PRODUCTION, Scenario, run
from watcher.calibration.traffic import CODES, LE, Latency, Phase, Series, background, simulate


def _series(times: list[float], values: list[float]) -> Series:
    col = np.array(values, dtype=float)[:, None]
    return Series(np.array(times), col, col)


def test_increase_extrapolates_to_the_range_like_prometheus() -> None:
    # Rising 1/s, scraped at 5, 20, 35, 50: 45 seen over 45 s, extrapolated 5 s back, 10 s on.
    s = _series([5, 20, 35, 50, 65], [5, 20, 35, 50, 65])
    (value,) = promsim.increase(s, s.codes, np.array([60.0]), 60.0)[0]
    assert value == pytest.approx(60.0)


def test_increase_stops_extrapolating_at_a_counters_zero() -> None:
    # A counter born at 0 just before its first sample: no extrapolation below zero.
    s = _series([15, 30, 45], [1, 16, 31])
    (value,) = promsim.increase(s, s.codes, np.array([45.0]), 60.0)[0]
    # to_start would be 7.5 (half an interval), to_zero = 30 * 1/30 = 1 s: factor 31/30.
    assert value == pytest.approx(31.0)


def test_increase_corrects_a_counter_reset() -> None:
    s = _series([0, 15, 30, 45], [100, 110, 5, 15])
    (value,) = promsim.increase(s, s.codes, np.array([45.0]), 50.0)[0]
    # 10 before the reset, 5 + 10 after: 25 over 45 s, extrapolated by 5 s to the start.
    assert value == pytest.approx(25 * 50 / 45)


def test_increase_needs_two_samples() -> None:
    s = _series([0, 100], [1, 2])
    assert math.isnan(promsim.increase(s, s.codes, np.array([100.0]), 60.0)[0, 0])


def test_a_failed_scrape_hides_the_series_until_the_next_good_one() -> None:
    # Scrapes at 0, 15, 45 succeed, the one at 30 fails: Prometheus writes a staleness marker,
    # and an instant query from 30 until the scrape at 45 returns nothing (not the value at 15).
    s = Series(np.array([0.0, 15.0, 45.0]), np.array([[0.0], [15.0], [45.0]]),
               np.array([[0.0], [15.0], [45.0]]), np.array([30.0]))  # fmt: skip
    vals, stamps = promsim.latest(s, s.codes, np.array([29.0, 30.0, 44.0, 45.0, 50.0]))
    assert vals[:, 0].tolist()[0] == 15.0 and stamps[0] == 15.0
    assert np.isnan(vals[1:3]).all() and np.isnan(stamps[1:3]).all()
    assert vals[3:, 0].tolist() == [45.0, 45.0] and stamps[3:].tolist() == [45.0, 45.0]
    # Range selectors ignore the marker: increase() reads the samples on either side of it.
    (value,) = promsim.increase(s, s.codes, np.array([45.0]), 60.0)[0]
    assert value > 0


def test_simulated_missed_scrapes_leave_staleness_markers() -> None:
    rng = np.random.default_rng(2)
    s = simulate(rng, [Phase(-600, background(20.0, 0.0))], -600, 600, 15.0, miss=0.2)
    assert len(s.stale) > 0 and not np.isin(s.stale, s.times).any()
    vals, stamps = promsim.latest(s, s.codes, s.stale)
    assert np.isnan(vals).all() and np.isnan(stamps).all()  # blind at every failed scrape


def test_histogram_quantile_interpolates_inside_the_bucket() -> None:
    cumulative = np.zeros(len(LE))
    cumulative[LE.index("0.1") :] = 50  # 50 requests at or under 0.1 s
    cumulative[LE.index("0.2") :] = 100  # 50 more between 0.15 and 0.2 s
    # rank 95 falls in (0.15, 0.2]: 45 of its 50 requests.
    assert promsim.histogram_quantile(0.95, cumulative) == pytest.approx(0.15 + 0.05 * 45 / 50)
    cumulative[-1] = 1000  # most in +Inf: the highest finite bound answers
    assert promsim.histogram_quantile(0.95, cumulative) == 5.0
    assert math.isnan(promsim.histogram_quantile(0.95, np.zeros(len(LE))))


def test_simulated_counters_are_consistent_and_reset_at_the_restart() -> None:
    rng = np.random.default_rng(1)
    phases = [Phase(-600, background(20.0, 0.01, Latency()))]
    s = simulate(rng, phases, -600, 600, 15.0, restart_at=0.0)
    assert np.all(np.diff(s.times) == pytest.approx(15.0))
    assert np.array_equal(s.codes.sum(axis=1), s.buckets[:, -1])  # +Inf = every request
    after = s.times > 0
    assert s.codes[after][0].sum() < 20 * 15 * 1.5  # restarted from 0
    assert s.codes[~after][-1].sum() > 20 * 86400 * 0.9  # a day's uptime before it
    assert len(CODES) == s.codes.shape[1]


def test_latency_buckets_sum_to_one_and_shift() -> None:
    lat = Latency()
    assert lat.bucket_probs().sum() == pytest.approx(1.0)
    slow = Latency(shift=0.8)
    assert slow.cdf(0.8) == 0.0 and slow.bucket_probs()[: LE.index("0.75") + 1].sum() == 0.0


def test_broken_canaries_are_caught() -> None:
    for s in (
        Scenario("errors", PRODUCTION, background=0.001, code="503", share=0.05),
        Scenario("slow", PRODUCTION, slower=0.8),
        Scenario("lab v2-errors", LAB, code="502", share=0.2,
                 latency=Latency(median=0.004, sigma=0.5, tail_share=0.0)),
    ):  # fmt: skip
        result = run(s, 5, seed=3)
        assert result.caught == 1.0, (s.name, result.verdicts)


# Issue 14's targets at a few windows per row (docs/CALIBRATION.md has the full runs).
def test_healthy_canaries_are_not_reverted_at_the_highest_background() -> None:
    for s in (
        Scenario("0.4 %", PRODUCTION, background=0.004),
        Scenario("off-peak", PRODUCTION, rate=0.5, background=0.001),
    ):
        result = run(s, 4, seed=5)
        assert result.share("reverted") == 0.0, (s.name, result.verdicts)


def test_fleet_wide_incidents_are_held() -> None:
    result = run(Scenario("fleet", PRODUCTION, background=0.001, fleet_code="503",
                          fleet_share=0.007), 4, seed=6)  # fmt: skip
    assert result.share("hold") == 1.0, result.verdicts


def test_detection_is_fast() -> None:
    errors = run(Scenario("1.5 %", PRODUCTION, background=0.001, code="503", share=0.015), 6, 7)
    assert errors.caught == 1.0 and (errors.delay(0.5) or 0) <= 3 * 30, errors.delays
    slow = run(Scenario("+0.8 s", PRODUCTION, background=0.001, slower=0.8), 6, 8)
    assert slow.caught == 1.0 and (slow.delay(0.5) or 0) <= 2 * 30, slow.delays


def test_one_failed_query_never_reverts() -> None:
    result = run(Scenario("hiccups", PRODUCTION, background=0.001, miss=0.01, fail=0.01), 3, 9)
    assert result.share("reverted") == 0.0, result.verdicts


@pytest.mark.parametrize("outage", ["target", "prometheus"])
def test_a_real_outage_trips_the_blind_policy_within_max_staleness_plus_two_intervals(outage: str) -> None:
    s = Scenario(outage, PRODUCTION, background=0.001, outage=outage, fault_at=300.0)
    result = run(s, 4, seed=10)
    assert result.caught == 1.0 and result.blind_reverts == 4, result.verdicts
    assert max(result.delays) <= 90 + 2 * 30, result.delays  # default max_staleness: 3 x 30 s


def test_the_report_has_both_tables() -> None:
    text = markdown(windows=1, seed=1)
    assert "| healthy, background 5xx 0.4 % | 1 |" in text
    assert "| +0.8 s on every request | 1 |" in text
