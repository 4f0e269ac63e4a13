"""The watcher's self-metrics: one unit per metric, the deprecated mixed-unit gauge kept beside them."""

from __future__ import annotations

import math
import socket
import time
import urllib.request

import pytest
from prometheus_client import generate_latest

from watcher.judge import ProbeInput, ProbeResult, State
from watcher.metrics import DEPRECATED_SLI_HELP, WatcherMetrics
from watcher.sli import SideSLI


def exposition_after_one_probe(canary: SideSLI, control: SideSLI) -> tuple[WatcherMetrics, str]:
    metrics = WatcherMetrics()
    probe = ProbeInput(at=1.0, canary=canary, control=control)
    metrics.probe(probe, ProbeResult(at=1.0, state=State.GREEN, reasons=()), 0.01, 0.0)
    return metrics, generate_latest(metrics.registry).decode()


def sample(metrics: WatcherMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_each_sli_is_a_metric_of_its_own_unit_by_side() -> None:
    canary = SideSLI(requests=100, codes={"200": 90, "500": 10}, p95=0.25, newest_sample_age=1.0,
                     range_seconds=10)
    control = SideSLI(requests=300, codes={"200": 300}, p95=0.05, newest_sample_age=1.0, range_seconds=10)
    metrics, text = exposition_after_one_probe(canary, control)
    assert sample(metrics, "edge_canary_watcher_requests_per_second", side="canary") == 10.0
    assert sample(metrics, "edge_canary_watcher_requests_per_second", side="control") == 30.0
    assert sample(metrics, "edge_canary_watcher_error_ratio", side="canary") == 0.1
    assert sample(metrics, "edge_canary_watcher_error_ratio", side="control") == 0.0
    assert sample(metrics, "edge_canary_watcher_latency_p95_seconds", side="canary") == 0.25
    assert "# TYPE edge_canary_watcher_latency_p95_seconds gauge" in text


def test_the_old_mixed_unit_gauge_is_kept_with_a_deprecation_note() -> None:
    side = SideSLI(requests=50, codes={"200": 50}, p95=None, newest_sample_age=1.0, range_seconds=10)
    metrics, text = exposition_after_one_probe(side, side)
    assert f"# HELP edge_canary_watcher_sli {DEPRECATED_SLI_HELP}" in text
    assert "DEPRECATED" in DEPRECATED_SLI_HELP and "0.3.0" in DEPRECATED_SLI_HELP
    assert sample(metrics, "edge_canary_watcher_sli", side="canary", sli="request_rate") == 5.0
    old = sample(metrics, "edge_canary_watcher_sli", side="canary", sli="p95_seconds")
    new = sample(metrics, "edge_canary_watcher_latency_p95_seconds", side="canary")
    assert old is not None and new is not None and math.isnan(old) and math.isnan(new)


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return str(resp.read().decode())


def test_a_port_in_use_is_taken_once_free_without_holding_up_the_watch(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The previous rollout stage's watcher lingers on the port for its last scrapes.
    monkeypatch.setattr("watcher.metrics.BIND_RETRY_SECONDS", 0.05)
    metrics = WatcherMetrics()
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        assert metrics.serve(port, "127.0.0.1") is False and not metrics.serving
        metrics.final("promote")
        busy.close()
        deadline = time.monotonic() + 10
        while not metrics.serving and time.monotonic() < deadline:
            time.sleep(0.05)
        assert metrics.serving
        assert 'edge_canary_watcher_verdict{verdict="promote"} 1.0' in scrape(port)
    finally:
        busy.close()
        metrics.stop()
    assert not metrics.serving


def test_port_zero_is_off() -> None:
    metrics = WatcherMetrics()
    assert metrics.serve(0, "127.0.0.1") is False and not metrics.serving
    metrics.stop()


def test_the_deploy_info_series_shows_the_watch_then_the_verdicts_event() -> None:
    metrics = WatcherMetrics()
    metrics.deploy("d-1", "edge-2", "v2")
    ids = {"deploy_id": "d-1", "canary": "edge-2", "release": "v2"}
    assert sample(metrics, "edge_canary_deploy_info", **ids, event="watching") == 1.0
    metrics.final("reverted")
    assert sample(metrics, "edge_canary_deploy_info", **ids, event="watching") is None
    assert sample(metrics, "edge_canary_deploy_info", **ids, event="reverted") == 1.0
    promoted = WatcherMetrics()
    promoted.deploy("d-2", "edge-2", "v2")
    promoted.final("promote")
    assert sample(promoted, "edge_canary_deploy_info", deploy_id="d-2", canary="edge-2", release="v2",
                  event="promoted") == 1.0


def test_without_a_deploy_there_is_no_deploy_info() -> None:
    metrics = WatcherMetrics()
    metrics.final("hold")
    assert "edge_canary_deploy_info{" not in generate_latest(metrics.registry).decode()
