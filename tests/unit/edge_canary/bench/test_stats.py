"""The bench's arithmetic (edge_canary.bench.stats) on hand-made loadgen lines and records."""

from __future__ import annotations

import json

import pytest

from edge_canary.bench import stats as st


def line(start: float, status: int | None, version: str | None = "v1", latency: float | None = 0.01,
         error: str | None = None) -> str:
    return json.dumps({"start": start, "latency_s": latency, "status": status, "error": error,
                       "client_ip": "10.0.0.1", "version": version, "variant": "legacy"})


def test_parse_requests_skips_lines_cut_short() -> None:
    lines = [line(1.0, 200), '{"start": 2.0, "lat', "", "null", line(3.0, None, None, None, "refused")]
    got = st.parse_requests(lines)
    assert [r.start for r in got] == [1.0, 3.0]
    assert got[1].failed and got[1].answered_at is None
    assert not got[0].failed and got[0].answered_at == pytest.approx(1.01)


@pytest.mark.parametrize(("status", "failed"), [(200, False), (302, False), (399, False), (400, True),
                                                (502, True), (None, True), (199, True)])
def test_failed_means_no_2xx_or_3xx(status: int | None, failed: bool) -> None:
    assert st.parse_requests([line(0.0, status)])[0].failed is failed


def test_drops_leave_out_the_broken_binarys_own_failures() -> None:
    requests = st.parse_requests([
        line(0, 200, "v1"),
        line(1, 502, "v2-errors"),  # the release's own: not the deploy's fault
        line(2, 502, "v2-errors"),
        line(3, 503, None),  # HAProxy had no server: the deploy's fault
        line(4, None, None, None, "connection refused"),
        line(5, None, None, None, st.NOT_SENT),
        line(6, 500, "v1"),  # an old node failing during the deploy: the deploy's fault
    ])
    drops = st.count_drops(requests, release="v2-errors")
    assert drops == st.Drops(sent=7, dropped=4, not_sent=1, by_release=2)


def test_without_a_broken_release_every_failure_is_a_drop() -> None:
    requests = st.parse_requests([line(0, 502, "v2-errors"), line(1, 200, "v2"), line(2, 503, None)])
    assert st.count_drops(requests) == st.Drops(sent=3, dropped=2, not_sent=0, by_release=0)


def test_between_is_half_open() -> None:
    requests = st.parse_requests([line(t, 200) for t in (0.0, 1.0, 2.0, 3.0)])
    assert [r.start for r in st.between(requests, 1.0, 3.0)] == [1.0, 2.0]


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert st.percentile(values, 99) == 99.0
    assert st.percentile(values, 100) == 100.0
    assert st.percentile([5.0], 99) == 5.0
    assert st.percentile([], 99) is None


def test_p99_ignores_unanswered_and_can_leave_out_a_slow_release() -> None:
    requests = st.parse_requests([line(i, 200, "v1", 0.01) for i in range(99)]
                                 + [line(100, 200, "v2-slow", 0.6), line(101, None, None, None, "refused")])
    assert st.p99(requests) == pytest.approx(0.01)
    both = st.parse_requests([line(i, 200, "v2-slow", 0.6) for i in range(5)] + [line(9, 200, "v1", 0.02)])
    assert st.p99(both) == pytest.approx(0.6)
    assert st.p99(both, exclude_version="v2-slow") == pytest.approx(0.02)
    assert st.p99([]) is None


@pytest.mark.parametrize(("num", "den", "want"), [(6, 2, 3.0), (0, 5, 0.0), (5, 0, None), (None, 2, None),
                                                  (2, None, None)])
def test_ratio_is_none_when_undefined(num: float | None, den: float | None, want: float | None) -> None:
    assert st.ratio(num, den) == want


def test_median_of_the_values_that_exist() -> None:
    assert st.median([3.0, None, 1.0, 2.0]) == 2.0
    assert st.median([4.0, 1.0]) == 2.5
    assert st.median([None, None]) is None
    assert st.median([]) is None


def test_first_bad_answer_is_a_failure_or_a_slow_answer_of_the_release() -> None:
    requests = st.parse_requests([
        line(10.0, 502, "v1", 0.01),  # not the release
        line(11.0, 200, "v2-errors", 0.01),  # the release, answering well
        line(12.0, 200, "v2-errors", 0.5),  # slow: bad, answered at 12.5
        line(12.2, 502, "v2-errors", 0.05),  # failed: bad, answered at 12.25 (first)
    ])
    assert st.first_bad_answer(requests, "v2-errors", slow_s=0.3) == pytest.approx(12.25)
    assert st.first_bad_answer(requests, "v2-errors", slow_s=1.0) == pytest.approx(12.25)
    assert st.first_bad_answer(requests, "v2-slow", slow_s=0.3) is None


def test_last_bad_answer_ends_the_exposure() -> None:
    requests = st.parse_requests([
        line(12.2, 502, "v2-errors", 0.05),  # first bad, answered at 12.25
        line(15.0, 502, "v2-errors", 0.10),  # last bad, answered at 15.1
        line(16.0, 200, "v2-errors", 0.01),  # a good answer of the release after it: not exposure
        line(17.0, 502, "v1", 0.01),  # not the release
    ])
    assert st.last_bad_answer(requests, "v2-errors", slow_s=0.3) == pytest.approx(15.1)
    assert st.last_bad_answer(requests, "v2-slow", slow_s=0.3) is None


def test_slope_is_the_least_squares_cost_per_node() -> None:
    assert st.slope([(3.0, 30.0), (10.0, 58.0), (30.0, 138.0)]) == pytest.approx(4.0)
    assert st.slope([(3.0, 30.0), (3.0, 31.0)]) is None  # one fleet size: no slope


def test_first_seen_after_a_moment() -> None:
    samples: list[tuple[float, str | None]] = [(1.0, "v1"), (2.0, "v2"), (3.0, None), (4.0, "v1"), (5.0, "v1")]
    assert st.first_seen(samples, "v1", after=2.0) == 4.0
    assert st.first_seen(samples, "v1", after=0.0) == 1.0
    assert st.first_seen(samples, "v3", after=0.0) is None


def test_floor_adds_scrape_range_and_the_red_probes() -> None:
    assert st.floor_seconds(1, 4, 3, 1) == 8
    assert st.floor_seconds(1, 4, 3, 2) == 11


def test_fit_separates_per_batch_from_per_node_time() -> None:
    def total(b: int, n: int) -> float:
        return 5.0 + 20.0 * b + 1.5 * n

    points = [(b, n, total(b, n)) for b, n in [(3, 3), (2, 3), (6, 6), (2, 6), (3, 10)]]
    fit = st.fit_roll_time(points)
    assert fit is not None
    assert (fit.fixed_s, fit.per_batch_s, fit.per_node_s) == pytest.approx((5.0, 20.0, 1.5))


def test_fit_holds_each_term_non_negative_and_keeps_the_free_fit() -> None:
    # the 2026-12-05 medians: the 100-node roll, CPU-bound, pulls the free per-batch term negative
    points = [(3, 3, 20.2), (3, 10, 30.3), (4, 30, 70.9), (5, 100, 356.8)]
    fit = st.fit_roll_time(points)
    assert fit is not None and fit.free is not None
    assert fit.free == pytest.approx((190.2, -66.0, 4.95), abs=0.05)
    # the best non-negative fit is per node only: the slope through the origin
    through_origin = sum(n * t for _, n, t in points) / sum(n * n for _, n, _ in points)
    assert (fit.fixed_s, fit.per_batch_s, fit.per_node_s) == pytest.approx((0.0, 0.0, through_origin))


def test_fit_drops_only_the_terms_that_must_go() -> None:
    # three points fit exactly with a negative fixed term; without it, batches and nodes both stay
    fit = st.fit_roll_time([(3, 3, 20.2), (3, 10, 30.3), (4, 30, 70.9)])
    assert fit is not None and fit.free is not None and fit.free[0] < 0
    assert fit.fixed_s == 0.0 and fit.per_batch_s > 0 and fit.per_node_s > 0


def test_fit_without_a_negative_term_is_the_free_fit() -> None:
    fit = st.fit_roll_time([(b, n, 3.0 * n) for b, n in [(3, 3), (2, 3), (4, 30), (5, 100)]])
    assert fit is not None and fit.free is None
    assert (fit.fixed_s, fit.per_batch_s, fit.per_node_s) == pytest.approx((0.0, 0.0, 3.0), abs=1e-6)


def test_fit_needs_points_that_separate_the_terms() -> None:
    assert st.fit_roll_time([(3, 3, 10.0), (2, 3, 8.0)]) is None
    # batches always equal to nodes: the two terms cannot be told apart
    assert st.fit_roll_time([(2, 2, 5.0), (3, 3, 7.0), (4, 4, 9.0)]) is None


def test_step_durations_and_span_from_a_node_record() -> None:
    record: dict[str, object] = {"steps": [{"step": "start", "at": "100.0"}, {"step": "drain", "at": 101.5},
                                           {"step": "push", "at": 104.0}, {"step": "restart+health", "at": 110.0},
                                           {"step": "ready+lb", "at": 112.0}]}
    assert st.step_durations(record) == pytest.approx({"drain": 1.5, "push": 2.5, "restart+health": 6.0,
                                                       "ready+lb": 2.0})
    assert st.node_span(record) == (100.0, 112.0)
    assert st.step_durations({"result": "not started"}) == {}
    assert st.node_span({"steps": [{"step": "start", "at": 1.0}]}) is None


@pytest.mark.parametrize(("peers", "batch", "want"), [(2, 1, 3), (2, 2, 2), (9, 5, 3), (29, 10, 4), (0, 1, 1)])
def test_batches_count_the_canary_too(peers: int, batch: int, want: int) -> None:
    assert st.batches(peers, batch) == want


def test_cpu_and_peak_rss_from_proc() -> None:
    # a process name with spaces and parentheses must not shift the fields
    # utime 150, stime 50, cutime 10, cstime 5 ticks (fields 14-17)
    stat = "4242 (python (x) y) S 1 4242 4242 0 -1 4194560 1 2 3 4 150 50 10 5 20 0 3 0 99 0 0"
    assert st.cpu_seconds(stat, 100) == pytest.approx(2.15)
    assert st.peak_rss_kib("Name:\tpython\nVmPeak:\t 9000 kB\nVmHWM:\t  33088 kB\nVmRSS:\t 30000 kB\n") == 33088
    assert st.peak_rss_kib("Name:\tpython\n") is None


def test_per_hour() -> None:
    assert st.per_hour(0.5, 60) == pytest.approx(30.0)
    assert st.per_hour(1.0, 0) is None


def test_watcher_timeline_from_the_decision_log() -> None:
    records: list[dict[str, object]] = [
        {"ts": "2026-11-22T01:19:41.500+00:00", "event": "start"},
        {"ts": "2026-11-22T01:19:44.500+00:00", "event": "probe", "state": "green"},
        {"ts": "2026-11-22T01:19:47.500+00:00", "event": "probe", "state": "red"},
        {"ts": "2026-11-22T01:19:50.500+00:00", "event": "probe", "state": "red", "decision": {"action": "revert"}},
        {"ts": "2026-11-22T01:20:30.000+00:00", "event": "revert", "seconds": 42.5},
        {"ts": "2026-11-22T01:20:30.100+00:00", "event": "verdict", "verdict": "reverted"},
    ]
    timeline = st.watcher_timeline(records)
    assert timeline.red_at is not None and timeline.started_at is not None
    assert timeline.red_at - timeline.started_at == pytest.approx(6.0)
    assert timeline.revert_s == 42.5
    assert timeline.verdict_at is not None and timeline.verdict_at - timeline.red_at == pytest.approx(3.0)


def test_watcher_timeline_of_a_promote_has_no_red_and_no_revert() -> None:
    timeline = st.watcher_timeline([{"ts": "2026-11-22T01:19:41+00:00", "event": "start"},
                                    {"ts": "bad", "event": "probe", "state": "green"}])
    assert timeline.started_at is not None
    assert (timeline.red_at, timeline.revert_s, timeline.verdict_at) == (None, None, None)


def test_times_children_seconds_sums_the_childrens_line_of_each_run() -> None:
    times = ("0m0.000000s 0m0.001000s\n0m0.310000s 0m0.100000s\n"
             "0m0.000000s 0m0.000000s\n1m2.500000s 0m0.090000s\n")
    assert st.times_children_seconds(times) == pytest.approx(0.41 + 62.59)
    assert st.times_children_seconds("") == 0.0
