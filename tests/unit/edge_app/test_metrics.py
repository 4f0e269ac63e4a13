"""The hand-written Prometheus exposition, checked with the reference parser."""

from __future__ import annotations

import pytest
from edge_app.metrics import BUCKETS, PREINIT_CODES, VARIANTS, RequestMetrics, render
from prometheus_client.parser import text_string_to_metric_families


def _families(text: str) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    return {
        family.name: [(s.name, s.labels, s.value) for s in family.samples]
        for family in text_string_to_metric_families(text)
    }


def _render(metrics: RequestMetrics, version: str = "1.4.2", fault: str = "none") -> str:
    return render(metrics.snapshot(), version, fault, rollout_pct=25)


def test_types_and_help_lines() -> None:
    text = _render(RequestMetrics())
    for name, kind in [
        ("edge_http_requests_total", "counter"),
        ("edge_http_request_duration_seconds", "histogram"),
        ("edge_build_info", "gauge"),
        ("edge_config_rollout_pct", "gauge"),
    ]:
        assert f"# TYPE {name} {kind}\n" in text
        assert f"# HELP {name} " in text
    assert text.endswith("\n")


def test_series_are_preinitialised_at_zero() -> None:
    families = _families(_render(RequestMetrics()))
    counters = {
        (labels["code"], labels["variant"]): value
        for name, labels, value in families["edge_http_requests"]
        if name == "edge_http_requests_total"
    }
    assert counters == {(str(c), v): 0.0 for c in PREINIT_CODES for v in VARIANTS}
    histogram = families["edge_http_request_duration_seconds"]
    for variant in VARIANTS:
        buckets = [
            (labels["le"], value)
            for name, labels, value in histogram
            if name.endswith("_bucket") and labels["variant"] == variant
        ]
        assert [le for le, _ in buckets] == [*(repr(float(b)) for b in BUCKETS), "+Inf"]
        assert all(value == 0 for _, value in buckets)
        assert ("edge_http_request_duration_seconds_count", {"variant": variant}, 0.0) in histogram


def test_buckets_tell_50ms_from_500ms() -> None:
    assert {0.05, 0.5} <= set(BUCKETS)
    assert len([b for b in BUCKETS if 0.05 < b < 0.5]) >= 5


def test_observations_are_counted_and_cumulative() -> None:
    metrics = RequestMetrics()
    metrics.observe(200, "legacy", 0.003)
    metrics.observe(200, "legacy", 0.05)  # exactly on a bound: le is inclusive
    metrics.observe(502, "new", 0.42)
    metrics.observe(504, "new", 9.0)  # beyond the last bound: only +Inf
    metrics.observe(418, "new", 0.001)  # codes outside the pre-initialised set still appear
    families = _families(_render(metrics))
    counters = {
        (labels["code"], labels["variant"]): value
        for name, labels, value in families["edge_http_requests"]
    }
    assert counters[("200", "legacy")] == 2
    assert counters[("502", "new")] == 1
    assert counters[("504", "new")] == 1
    assert counters[("418", "new")] == 1
    assert counters[("500", "new")] == 0
    hist = {
        (name, labels.get("variant"), labels.get("le")): value
        for name, labels, value in families["edge_http_request_duration_seconds"]
    }
    b = "edge_http_request_duration_seconds_bucket"
    assert hist[(b, "legacy", "0.005")] == 1
    assert hist[(b, "legacy", "0.025")] == 1
    assert hist[(b, "legacy", "0.05")] == 2
    assert hist[(b, "legacy", "+Inf")] == 2
    assert hist[(b, "new", "0.4")] == 1  # the 0.001 one
    assert hist[(b, "new", "0.5")] == 2
    assert hist[(b, "new", "5.0")] == 2
    assert hist[(b, "new", "+Inf")] == 3
    assert hist[("edge_http_request_duration_seconds_count", "new", None)] == 3
    assert hist[("edge_http_request_duration_seconds_sum", "new", None)] == pytest.approx(9.421)


def test_build_info_and_rollout_gauge() -> None:
    families = _families(_render(RequestMetrics(), "1.4.3-bad", "errors=0.2:502,scope=new"))
    assert families["edge_build_info"] == [
        ("edge_build_info", {"version": "1.4.3-bad", "fault": "errors=0.2:502,scope=new"}, 1.0)
    ]
    assert families["edge_config_rollout_pct"] == [("edge_config_rollout_pct", {}, 25.0)]


def test_label_values_are_escaped() -> None:
    text = _render(RequestMetrics(), version='we"ird\\v\nx')
    assert 'version="we\\"ird\\\\v\\nx"' in text
    families = _families(text)
    assert families["edge_build_info"][0][1]["version"] == 'we"ird\\v\nx'
