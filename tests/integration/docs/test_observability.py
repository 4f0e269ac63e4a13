"""Observability shipped with the tool (issue 10) against the real lab: the lab's Prometheus loads
docs/prometheus's rules, the recorded series have data, the alerts go pending or fire on the real
conditions (a bad canary, a drained node, a blind watcher, a failed revert), the watcher works in
recorded mode, and every query of the Grafana dashboard parses and returns data.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers.lab import REPO, VENV_BIN, Lab, run
from tests.helpers.procs import free_port, running
from tests.unit.docs.test_dashboard import dashboard_queries, substitute
from watcher.judge import ProbeInput, ProbeResult, State
from watcher.metrics import WatcherMetrics
from watcher.sli import SideSLI

RULES_DIR = REPO / "docs" / "prometheus"
RECORDED_QUERIES = RULES_DIR / "watcher-recorded-queries.yml"
WATCHER_JOB = "edge-canary-watcher"
# Series that only exist while a canary runs a minority version.
NEEDS_A_CANARY = {"job_node_version:edge_build_info:minority"}


class PromError(AssertionError):
    pass


def prom_api(lab: Lab, path: str, **params: str) -> Any:
    url = f"http://127.0.0.1:{lab.settings.prom_port}{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return json.loads(resp.read())["data"]
    except urllib.error.HTTPError as err:
        raise PromError(f"{path} {params}: HTTP {err.code}: {err.read().decode()[:500]}") from None


def query(lab: Lab, promql: str) -> list[dict[str, Any]]:
    return list(prom_api(lab, "/api/v1/query", query=promql)["result"])


def alerts(lab: Lab, name: str, state: str) -> list[dict[str, str]]:
    found = query(lab, f'ALERTS{{alertname="{name}",alertstate="{state}"}}')
    return [r["metric"] for r in found]


def eventually(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.5)


def rule_names(kind: str) -> set[str]:
    """Every recording rule ("record") or alert ("alert") name in docs/prometheus's rule files."""
    names = set()
    for path in RULES_DIR.glob("*.yml"):
        doc = yaml.safe_load(path.read_text())
        for group in doc.get("groups", []) if isinstance(doc, dict) else []:
            names |= {rule[kind] for rule in group["rules"] if kind in rule}
    return names


def watcher_argv(port: int, *args: str) -> list[str]:
    return [sys.executable, "-m", "watcher", "--prom-url", f"http://127.0.0.1:{port}",
            "--revert-action", "none", "--scrape-interval", "1", *args]


# --- the watcher's self-metrics scraped by the lab ---------------------------------------------------


def watcher_targets(lab: Lab) -> list[dict[str, Any]]:
    active = prom_api(lab, "/api/v1/targets")["activeTargets"]
    return [t for t in active if t["labels"].get("job") == WATCHER_JOB]


def apply_lab_prometheus(lab: Lab, tmp: Path, *extra_vars: str) -> None:
    """Run the lab_prometheus role (and its restart handler) on the lab with these extra vars."""
    playbook = tmp / "lab-prometheus.yml"
    playbook.write_text("- name: Apply the lab Prometheus role\n  hosts: control\n"
                        "  roles: [lab_prometheus]\n")
    args = [a for var in extra_vars for a in ("-e", var)]
    run([str(VENV_BIN / "ansible-playbook"), str(playbook), *args], lab.env, timeout=300, check=True)
    eventually(lambda: _ready(lab), 60, "the lab Prometheus ready again")


def _ready(lab: Lab) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{lab.settings.prom_port}/-/ready", timeout=5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def watcher_port(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The port the lab's Prometheus scrapes the watcher on. A lab brought up without the watcher
    job gets it for this module (on a free port, through the role) and loses it again after."""
    targets = watcher_targets(lab)
    if targets:
        yield int(urllib.parse.urlsplit(targets[0]["scrapeUrl"]).port or 0)
        return
    port = free_port()
    tmp = tmp_path_factory.mktemp("lab-prometheus")
    apply_lab_prometheus(lab, tmp, "lab_prometheus_scrape_watcher=true",
                         f"lab_watcher_metrics_port={port}")
    try:
        eventually(lambda: bool(watcher_targets(lab)), 30, "the watcher job among the targets")
        yield port
    finally:
        apply_lab_prometheus(lab, tmp)


@dataclass
class ServedMetrics:
    metrics: WatcherMetrics
    port: int


@pytest.fixture
def failed_revert_metrics(watcher_port: int) -> Iterator[ServedMetrics]:
    """The watcher's real self-metrics exporter, on the scraped port, after a red probe and a
    revert that failed (what a watcher shows between the failed revert and its exit)."""
    metrics = WatcherMetrics()
    try:
        metrics.serve(watcher_port, "127.0.0.1")
    except OSError as exc:
        pytest.fail(f"cannot serve watcher metrics on 127.0.0.1:{watcher_port}: {exc}")
    try:
        canary = SideSLI(requests=200, codes={"200": 160, "502": 40}, p95=0.6,
                         newest_sample_age=1.0, range_seconds=10)
        control = SideSLI(requests=400, codes={"200": 400}, p95=0.05,
                          newest_sample_age=1.0, range_seconds=10)
        probe = ProbeInput(at=10.0, canary=canary, control=control)
        metrics.probe(probe, ProbeResult(at=10.0, state=State.RED, reasons=("test",)), 0.02, 0.0)
        metrics.progress(1, 10)
        metrics.revert(ok=False, shadow=False)
        metrics.final("revert_failed")
        yield ServedMetrics(metrics, watcher_port)
    finally:
        metrics.stop()


# --- fleet state set-up, by hand ---------------------------------------------------------------------


def serves(lab: Lab, node: str, version: str) -> bool:
    try:
        return bool(lab.node_version(node)["version"] == version)
    except OSError:  # restarting: not listening yet
        return False


def install_and_wait(lab: Lab, node: str, artifact: Path, version: str) -> None:
    lab.install(node, artifact, config="rollout_pct=0\n")
    lab.wait_until(lambda: serves(lab, node, version), 60, f"{node} on {version}")
    lab.wait_until(lambda: lab.server_stats()[node]["status"] == "UP", 60, f"{node} UP in HAProxy")


def fleet_on_v1(lab: Lab, v1: Path) -> None:
    for node in lab.settings.node_names():
        lab.haproxy(f"set server edge/{node} state ready")
        if lab.node_version(node)["version"] != "v1":
            install_and_wait(lab, node, v1, "v1")


# --- the rules in the lab ----------------------------------------------------------------------------


def test_lab_prometheus_loads_every_rule_with_no_error(lab: Lab) -> None:
    groups = prom_api(lab, "/api/v1/rules")["groups"]
    loaded = {r["name"]: r for g in groups for r in g["rules"]}
    assert rule_names("record") <= set(loaded), "recording rules missing from the lab"
    assert rule_names("alert") <= set(loaded), "alerts missing from the lab"
    broken = {name: r.get("lastError") for name, r in loaded.items() if r["health"] == "err"}
    assert not broken


def test_lab_alerts_link_to_the_labs_runbook_base_url(lab: Lab) -> None:
    groups = prom_api(lab, "/api/v1/rules", type="alert")["groups"]
    links = {r["name"]: r["annotations"]["runbook_url"] for g in groups for r in g["rules"]}
    runbook = (REPO / "docs" / "RUNBOOK.md").as_uri()
    assert links and all(url == f"{runbook}#{name.lower()}" for name, url in links.items()), links


def test_lab_records_its_own_slo_thresholds(lab: Lab) -> None:
    lab_vars = yaml.safe_load((REPO / "group_vars" / "lab.yml").read_text())

    def value(series: str) -> float | None:
        found = query(lab, series)
        return float(found[0]["value"][1]) if found else None

    eventually(lambda: value("slo:edge_http_request_duration_seconds_p95:threshold") is not None,
               30, "the SLO series")
    assert value("slo:edge_http_request_duration_seconds_p95:threshold") == pytest.approx(
        float(lab_vars["prom_p95_threshold_s"]))
    assert value("slo:edge_http_requests_5xx_per_requests:threshold") == pytest.approx(
        float(lab_vars["prom_err_rate_threshold"]))


def test_every_recorded_series_has_data_in_the_lab(lab: Lab) -> None:
    expected = rule_names("record") - NEEDS_A_CANARY
    missing: set[str] = set(expected)

    def all_there() -> bool:
        missing.intersection_update({n for n in missing if not query(lab, n)})
        return not missing

    eventually(all_there, 90, f"data in every recorded series (missing: {missing})")

    def every_node_in_the_rates() -> bool:
        # A series has data from its first node's second scrape on: on a lab just up, the others follow.
        rates = {r["metric"]["node"]: float(r["value"][1]) for r in query(lab, "job_node:edge_http_requests:rate1m")}
        return set(rates) == set(lab.settings.node_names()) and sum(rates.values()) > 10

    eventually(every_node_in_the_rates, 90, "every node's share of the lab's traffic in its rate")


# --- the alerts on real conditions -------------------------------------------------------------------


def test_a_bad_canary_is_a_minority_breaching_its_slo_and_the_recorded_watcher_reverts_it(
        lab: Lab, artifacts: dict[str, Path], tmp_path: Path) -> None:
    fleet_on_v1(lab, artifacts["v1"])
    healthy = watcher_argv(lab.settings.prom_port, "--config", str(RECORDED_QUERIES),
                           "--canary-selector", 'node="edge-1"', "--control-selector",
                           'node!="edge-1"', "--window", "6", "--interval", "2")
    good = subprocess.run(healthy, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert good.returncode == 0, f"healthy canary not promoted in recorded mode:\n{good.stdout}{good.stderr}"

    install_and_wait(lab, "edge-3", artifacts["v2-errors"], "v2-errors")
    try:
        minority = {"job": "edge", "node": "edge-3", "version": "v2-errors"}

        def labels(series: dict[str, Any]) -> dict[str, str]:
            return {k: v for k, v in series["metric"].items() if k != "__name__"}

        eventually(lambda: minority in [labels(r) for r in query(
            lab, "job_node_version:edge_build_info:minority")], 60, "edge-3 as the minority version")
        eventually(lambda: any(a.get("node") == "edge-3" and a.get("sli") == "5xx_ratio"
                               for a in alerts(lab, "EdgeCanaryBreachingSLO", "pending")),
                   60, "EdgeCanaryBreachingSLO pending for edge-3")
        eventually(lambda: bool(alerts(lab, "EdgeFleetMixedVersions", "pending")), 60,
                   "EdgeFleetMixedVersions pending")
        bad = subprocess.run(
            watcher_argv(lab.settings.prom_port, "--config", str(RECORDED_QUERIES),
                         "--canary-selector", 'node="edge-3"', "--control-selector",
                         'node!="edge-3"', "--window", "10", "--interval", "2",
                         "--verdict-file", str(tmp_path / "verdict.json")),
            capture_output=True, text=True, timeout=120, cwd=REPO)
        # Shadow mode (--revert-action none): "would_revert", exit 4.
        assert bad.returncode == 4, f"bad canary not red in recorded mode:\n{bad.stdout}{bad.stderr}"
        verdict = json.loads((tmp_path / "verdict.json").read_text())
        assert verdict["verdict"] == "would_revert" and "errors" in verdict["reason"]
    finally:
        install_and_wait(lab, "edge-3", artifacts["v1"], "v1")
    eventually(lambda: not alerts(lab, "EdgeCanaryBreachingSLO", "pending"), 90,
               "EdgeCanaryBreachingSLO gone once edge-3 is back on v1")


def test_a_drained_node_is_pending_out_of_rotation_until_it_is_ready_again(lab: Lab) -> None:
    lab.haproxy("set server edge/edge-2 state drain")
    try:
        eventually(lambda: any(a.get("server") == "edge-2" and a.get("proxy") == "edge"
                               for a in alerts(lab, "EdgeNodeLeftOutOfRotation", "pending")),
                   30, "EdgeNodeLeftOutOfRotation pending for edge-2")
        assert not alerts(lab, "EdgeNodeLeftOutOfRotation", "firing"), "fired before its 15m"
    finally:
        lab.haproxy("set server edge/edge-2 state ready")
    eventually(lambda: not alerts(lab, "EdgeNodeLeftOutOfRotation", "pending"), 30,
               "EdgeNodeLeftOutOfRotation gone once edge-2 is ready")


def test_a_blind_watcher_fires_watcher_blind(lab: Lab, watcher_port: int, tmp_path: Path) -> None:
    # No node is called edge-gone: every probe is blind. The staleness bound and the blind-probe
    # count are longer than the wait, so the watcher keeps probing (and exporting) while the alert
    # builds up.
    argv = watcher_argv(lab.settings.prom_port, "--canary-selector", 'node="edge-gone"',
                        "--control-selector", 'node!="edge-gone"', "--window", "120",
                        "--interval", "1", "--max-staleness", "110", "--blind-probes", "200",
                        "--blind-policy", "hold",
                        "--metrics-port", str(watcher_port))
    log = tmp_path / "watcher.log"
    # An alert left by an earlier watcher (it lasts 2m after the watcher exits) would prove nothing.
    eventually(lambda: not alerts(lab, "EdgeCanaryWatcherBlind", "firing"), 180,
               "no EdgeCanaryWatcherBlind left from before")
    with running(argv, log_path=log, cwd=REPO) as proc:
        eventually(lambda: proc.poll() is not None or bool(
            alerts(lab, "EdgeCanaryWatcherBlind", "firing")), 100, "EdgeCanaryWatcherBlind firing")
        assert proc.poll() is None, f"the watcher exited early:\n{log.read_text()}"
        blind = alerts(lab, "EdgeCanaryWatcherBlind", "firing")
    assert blind and blind[0]["job"] == WATCHER_JOB and blind[0]["severity"] == "warning"


def test_a_failed_revert_fires_revert_failed(
        lab: Lab, failed_revert_metrics: ServedMetrics) -> None:
    # The failed revert scraped live from this exporter (the alert itself lasts an hour).
    eventually(lambda: bool(query(lab, f'edge_canary_watcher_reverts_total{{outcome="failed",'
                                       f'instance="127.0.0.1:{failed_revert_metrics.port}"}}')),
               30, "the failed revert scraped")
    eventually(lambda: bool(alerts(lab, "EdgeCanaryRevertFailed", "firing")), 60,
               "EdgeCanaryRevertFailed firing")
    firing = alerts(lab, "EdgeCanaryRevertFailed", "firing")
    assert firing[0]["job"] == WATCHER_JOB and firing[0]["severity"] == "page"


def test_edge_sli_data_absent_stays_quiet_while_the_lab_serves(lab: Lab) -> None:
    groups = prom_api(lab, "/api/v1/rules", type="alert")["groups"]
    rule = next(r for g in groups for r in g["rules"] if r["name"] == "EdgeSLIDataAbsent")
    assert rule["health"] == "ok" and rule["state"] == "inactive"


# --- the dashboard -----------------------------------------------------------------------------------


def test_every_dashboard_query_parses_and_returns_data_in_the_lab(
        lab: Lab, failed_revert_metrics: ServedMetrics) -> None:
    values = {"job": "edge", "canary": "edge-1", "backend": "edge", "__rate_interval": "1m", "__range": "1h",
              "__interval": "15s"}
    queries = [(title, substitute(expr, values)) for title, expr in dashboard_queries()]
    for title, promql in queries:  # a parse error fails at once, with Prometheus' own message
        try:
            query(lab, promql)
        except PromError as err:
            raise AssertionError(f"panel {title!r}: {err}") from None
    empty = list(queries)

    def all_have_data() -> bool:
        empty[:] = [(title, q) for title, q in empty if not query(lab, q)]
        return not empty

    try:
        eventually(all_have_data, 90, "data for every panel query")
    except AssertionError as err:
        raise AssertionError(f"{err}; no data for: {[title for title, _ in empty]}") from None


def test_the_watcher_scrape_job_comes_from_the_role(lab: Lab, watcher_port: int) -> None:
    config = (lab.lab_dir / "prometheus" / "prometheus.yml").read_text()
    jobs = {job["job_name"]: job for job in yaml.safe_load(config)["scrape_configs"]}
    assert jobs[WATCHER_JOB]["static_configs"][0]["targets"] == [f"127.0.0.1:{watcher_port}"]
    assert os.path.isdir(lab.lab_dir / "prometheus" / "rules")
