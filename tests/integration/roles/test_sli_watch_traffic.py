"""Preflight's watcher check warns of a canary too quiet for its window to promote: sli_watch's check entry
point, with sli_watch_check_prometheus as preflight runs it, reads the canary's recent traffic from a real
Prometheus (fake edge nodes: edge-1 at 0.1 request/s, edge-2 at 50/s). A warning, not a refusal."""

from __future__ import annotations

from pathlib import Path

from tests.helpers.fake_exporter import FakeExporter
from tests.helpers.prometheus import running_prometheus, wait_for_samples
from tests.integration.roles.test_sli_watch_credentials import play

WARNED = "the gate will hold a healthy release"


def test_a_quiet_canary_is_warned_of_before_anything_changes(tmp_path: Path) -> None:
    checked = {}
    with (FakeExporter(rps=0.1) as quiet, FakeExporter(rps=50) as busy,
          running_prometheus(tmp_path, {"edge-1": quiet.address, "edge-2": busy.address}) as prom):
        wait_for_samples(prom.url, "edge_http_requests_total", count=5)
        for canary in ("edge-1", "edge-2"):
            (tmp_path / canary).mkdir()
            result = play(tmp_path / canary, "edge.canary.sli_watch", "check", {
                "prom_url": prom.url, "sli_watch_canary_node": canary, "sli_watch_check_prometheus": True,
                "sli_window": 30, "sli_probe_interval": 3})
            assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
            checked[canary] = " ".join(result.stdout.split())  # Ansible's output folds long messages
    said = checked["edge-1"].replace("''", "'")  # the YAML callback doubles a quote in a quoted string
    assert "at most 0 of the window's 10 probes can be green and promotion needs 8; " + WARNED in said, said[-3000:]
    assert WARNED not in checked["edge-2"], checked["edge-2"][-3000:]
