"""Deploy events through the lab's real Alertmanager (Debian prometheus-alertmanager, routed to a
webhook this test owns): a reverted canary notifies once with its reason and deploy id, a promoted
one its own; with Alertmanager stopped the deploy and its revert still complete and the failures
to notify are counted (issue 19)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from edge_canary.ops.notify import METRICS_FILE, read_counts
from tests.helpers.fleet import fleet_versions
from tests.helpers.lab import REPO, Lab
from tests.helpers.watch_window import PROMOTING_WINDOW
from tests.unit.docs.test_dashboard import deploy_annotations
from watcher.notify import ALERTNAME

# Longer than the lab's group_wait (1s) and group_interval (5s): a second notification would be in.
QUIET = 8.0


class Webhook(ThreadingHTTPServer):
    """Alertmanager's webhook receiver: keeps every notification's payload."""

    def __init__(self, port: int) -> None:
        self.payloads: list[dict[str, Any]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                self.server.payloads.append(json.loads(body))  # type: ignore[attr-defined]
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.allow_reuse_address = True
        super().__init__(("127.0.0.1", port), Handler)

    def notifications(self, deploy_id: str, event: str) -> list[dict[str, Any]]:
        """The alerts of each notification about this deploy's event, one entry per notification."""
        found = []
        for payload in list(self.payloads):
            for alert in payload["alerts"]:
                labels = alert["labels"]
                if (labels.get("alertname"), labels.get("deploy_id"), labels.get("event")) == (
                        ALERTNAME, deploy_id, event):
                    found.append(alert)
        return found


@pytest.fixture
def webhook(lab: Lab) -> Iterator[Webhook]:
    # The lab's Alertmanager routes every alert to its port + 1 (roles/lab_alertmanager).
    server = Webhook(lab.settings.prom_port + 4)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def deploy(lab: Lab, artifact: Path) -> tuple[subprocess.CompletedProcess[str], str]:
    runs = lab.lab_dir / "control" / "runs"
    before = set(runs.iterdir()) if runs.exists() else set()
    result = lab.make("deploy-canary", extra_env={"ARTIFACT": str(artifact), **PROMOTING_WINDOW})
    new = sorted(set(runs.iterdir()) - before)
    assert len(new) == 1, f"{new}\n{result.stdout[-3000:]}"
    return result, new[0].name


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.25)


def annotated(lab: Lab, name: str, deploy_id: str) -> set[str]:
    """The events the dashboard's annotation `name` draws for this deploy over the last 10 minutes,
    its query answered by the lab's Prometheus the way Grafana asks (a range query)."""
    [annotation] = [a for a in deploy_annotations() if a["name"] == name]
    now = time.time()
    params = urllib.parse.urlencode({"query": annotation["expr"], "start": now - 600, "end": now, "step": "1"})
    url = f"http://127.0.0.1:{lab.settings.prom_port}/api/v1/query_range?{params}"
    with urllib.request.urlopen(url, timeout=10) as resp:
        series = json.loads(resp.read())["data"]["result"]
    return {s["metric"]["event"] for s in series if s["metric"].get("deploy_id") == deploy_id}


def test_a_reverted_canary_notifies_once_with_its_reason_and_a_promoted_one_its_own(
        fleet: Lab, artifacts: dict[str, Path], webhook: Webhook, tmp_path: Path) -> None:
    result, deploy_id = deploy(fleet, artifacts["v2-errors"])
    assert result.returncode != 0 and "SLI gate: REVERTED" in result.stdout, result.stdout[-3000:]
    wait_for(lambda: webhook.notifications(deploy_id, "reverted"), 30, "the reverted notification")
    time.sleep(QUIET)
    [reverted] = webhook.notifications(deploy_id, "reverted")
    verdict = json.loads((fleet.lab_dir / "control" / "runs" / deploy_id / "verdict.json").read_text())
    assert reverted["labels"]["canary"] == "edge-1" and reverted["labels"]["verdict"] == "reverted"
    assert reverted["labels"]["release"] == "v2-errors" and reverted["labels"]["severity"] == "warning"
    assert reverted["annotations"]["reason"] == verdict["reason"] and "error" in verdict["reason"]
    assert reverted["annotations"]["record"].endswith(f"runs/{deploy_id}/verdict.json")
    assert reverted["annotations"]["runbook_url"] == (REPO / "docs" / "RUNBOOK.md").as_uri() + "#notifications"
    assert len(webhook.notifications(deploy_id, "started")) == 1
    wait_for(lambda: webhook.notifications(deploy_id, "rollback_done"), 15, "the watcher's rollback done")
    assert not webhook.notifications(deploy_id, "promoted")
    # The dashboard draws the deploy (its watched window) and the revert.
    assert annotated(fleet, "Deploys (canary watched)", deploy_id) == {"watching"}
    assert annotated(fleet, "Reverted", deploy_id) == {"reverted"}
    assert not annotated(fleet, "Promoted", deploy_id)

    # A promoted canary (the watcher alone, on the healthy lab): its own notification.
    promoted_id = "notify-test-promote"
    watch = subprocess.run(
        [sys.executable, "-m", "watcher", "--prom-url", f"http://127.0.0.1:{fleet.settings.prom_port}",
         "--canary-selector", 'job="edge",node="edge-1"', "--control-selector", 'job="edge",node!="edge-1"',
         "--canary-node", "edge-1", "--revert-action", "none", "--scrape-interval", "1", "--window", "6",
         "--interval", "2", "--decision-log", str(tmp_path / "decisions.jsonl"),
         "--metrics-port", str(fleet.settings.prom_port + 1),
         "--notify", json.dumps({"url": f"http://127.0.0.1:{fleet.settings.prom_port + 3}",
                                 "deploy_id": promoted_id, "release": "v1"})],
        capture_output=True, text=True, timeout=120, cwd=REPO)
    assert watch.returncode == 0, watch.stdout + watch.stderr
    wait_for(lambda: webhook.notifications(promoted_id, "promoted"), 30, "the promoted notification")
    time.sleep(QUIET)
    [promoted] = webhook.notifications(promoted_id, "promoted")
    assert promoted["labels"]["verdict"] == "promote" and promoted["labels"]["severity"] == "info"
    assert not webhook.notifications(promoted_id, "reverted")
    assert annotated(fleet, "Promoted", promoted_id) == {"promoted"}


def test_alertmanager_stopped_the_deploy_and_revert_complete_and_failures_are_counted(
        fleet: Lab, artifacts: dict[str, Path]) -> None:
    counts = fleet.lab_dir / "control" / METRICS_FILE
    failed_before = read_counts(counts).get("failed", 0)
    assert "stopped" in fleet.supervisorctl("stop", "lab-alertmanager").stdout
    try:
        result, deploy_id = deploy(fleet, artifacts["v2-errors"])
    finally:
        fleet.supervisorctl("start", "lab-alertmanager")
    # The deploy ran to its end: the watcher reverted the canary, the peers were never touched.
    assert "SLI gate: REVERTED" in result.stdout, result.stdout[-3000:]
    assert fleet_versions(fleet) == {node: "v1" for node in fleet.settings.node_names()}
    # Counted: the deploy's started and the rollback's done (textfile), the watcher's verdict (its metric).
    assert read_counts(counts).get("failed", 0) - failed_before >= 2
    run_dir = fleet.lab_dir / "control" / "runs" / deploy_id
    records = [json.loads(line) for line in (run_dir / "decisions.jsonl").read_text().splitlines()]
    assert [r["sent"] for r in records if r.get("event") == "notify"] == [False]
    assert "could not post the reverted event" in (run_dir / "watcher.log").read_text()
    failed = fleet.prom_query('max_over_time(edge_canary_watcher_notifications_total{outcome="failed"}[5m])')
    assert failed and float(failed[0]["value"][1]) >= 1
