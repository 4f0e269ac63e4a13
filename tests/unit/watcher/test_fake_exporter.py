"""The fake edge exporter the watcher's integration tests steer: exposition and control."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.fake_exporter import FakeExporter, SimulatedEdge, Traffic


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_counters_follow_rate_error_ratio_and_latency() -> None:
    clock = Clock()
    edge = SimulatedEdge(Traffic(rps=10, error_ratio=0.0, latency=0.02), clock=clock)
    first = samples(edge.render())
    assert first[("edge_http_requests_total", (("code", "503"), ("variant", "legacy")))] == 0
    clock.t = 10
    edge.set(error_ratio=0.5, error_code="503", latency=1.0)
    clock.t = 20
    s = samples(edge.render())
    assert s[("edge_http_requests_total", (("code", "200"), ("variant", "legacy")))] == 150
    assert s[("edge_http_requests_total", (("code", "503"), ("variant", "legacy")))] == 50
    bucket = "edge_http_request_duration_seconds_bucket"
    assert s[(bucket, (("le", "0.025"), ("variant", "legacy")))] == 100  # the first 10 s
    assert s[(bucket, (("le", "1.0"), ("variant", "legacy")))] == 200
    assert s[("edge_http_request_duration_seconds_count", (("variant", "legacy"),))] == 200


def post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        return dict(json.loads(response.read()))


def test_http_metrics_and_control_endpoint() -> None:
    with FakeExporter(rps=5, variant="new") as exporter:
        base = f"http://{exporter.address}"
        changed = post(f"{base}/control", {"error_ratio": 0.25, "latency": 0.3})
        assert changed["error_ratio"] == 0.25 and changed["latency"] == 0.3
        assert exporter.edge.traffic.error_ratio == 0.25
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as response:
            text = response.read().decode()
        assert 'edge_http_requests_total{code="500",variant="new"}' in text
        with pytest.raises(urllib.error.HTTPError) as err:
            post(f"{base}/control", {"no_such_knob": 1})
        assert err.value.code == 400
