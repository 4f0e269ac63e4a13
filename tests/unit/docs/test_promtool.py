"""The Prometheus rules in docs/prometheus, checked with Prometheus' own tool: `promtool check rules`
on every rule file, `promtool test rules` on every unit-test file, and mutations of the rules that
those unit tests must catch (so a test file that stopped asserting anything would show here)."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml

from tests.helpers.paths import REPO
from watcher.judge import ProbeInput, ProbeResult, State
from watcher.metrics import VERDICTS, WatcherMetrics
from watcher.promql import template_problem
from watcher.sli import SideSLI

RULES_DIR = REPO / "docs" / "prometheus"
TESTS_DIR = RULES_DIR / "tests"
RUNBOOK = REPO / "docs" / "RUNBOOK.md"
SLO_TEMPLATE = REPO / "roles" / "lab_prometheus" / "templates" / "edge-canary-slo.rules.yml.j2"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
# level:metric:operations, https://prometheus.io/docs/practices/rules/
RECORD_NAME = re.compile(r"^[a-z][a-z0-9_]*:[a-z][a-z0-9_]*:[a-z][a-z0-9_]*$")
SEVERITIES = {"page", "warning"}
RUNBOOK_DEFAULT_URL = "https://github.com/edge-canary/edge-canary/blob/main/docs/RUNBOOK.md"


def rule_files() -> list[Path]:
    return sorted(p for p in RULES_DIR.glob("*.yml") if "groups" in yaml.safe_load(p.read_text()))


def rules() -> Iterator[dict[str, Any]]:
    for path in rule_files():
        for group in yaml.safe_load(path.read_text())["groups"]:
            yield from group["rules"]


def rule_names(kind: str) -> set[str]:
    """Every recording rule ("record") or alert ("alert") name of the rule files."""
    return {rule[kind] for rule in rules() if kind in rule}


def unit_test_files() -> list[Path]:
    return sorted(TESTS_DIR.glob("*.test.yml"))


def promtool(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PROMTOOL, *map(str, args)], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


def test_rule_files_and_test_files_are_found() -> None:
    names = {p.name for p in rule_files()}
    assert {"edge-canary.rules.yml", "edge-canary.alerts.yml", "edge-canary-slo.rules.yml"} <= names
    assert len(unit_test_files()) >= 4


@pytest.mark.parametrize("path", rule_files(), ids=lambda p: p.name)
def test_promtool_check_rules_accepts_each_rule_file(path: Path) -> None:
    result = promtool("check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_rules_rejects_a_broken_expression(tmp_path: Path) -> None:
    broken = (RULES_DIR / "edge-canary.rules.yml").read_text().replace(
        "sum by (job, node) (job_node_variant_code", "sum by (job, node) ((job_node_variant_code", 1)
    (tmp_path / "broken.yml").write_text(broken)
    result = promtool("check", "rules", tmp_path / "broken.yml")
    assert result.returncode != 0 and "parse error" in result.stdout + result.stderr


@pytest.mark.parametrize("path", unit_test_files(), ids=lambda p: p.name)
def test_promtool_unit_tests_pass(path: Path) -> None:
    result = promtool("test", "rules", path.name, cwd=TESTS_DIR)
    assert result.returncode == 0, result.stdout + result.stderr


# Each mutation breaks rules the way a careless edit would (every occurrence of the text is
# replaced); the named promtool test file must then fail.
MUTATIONS = {
    "canary breach waits less than its 3m": (
        "edge-canary.alerts.yml", "for: 3m", "for: 1m", "canary-breaching-slo.test.yml"),
    "canary breach ignores the version minority": (
        "edge-canary.alerts.yml",
        "* on (job, node) group_left (version)\n              job_node_version:edge_build_info:minority\n"
        "            or\n              job_variant:edge_http_requests_5xx",
        "or\n              job_variant:edge_http_requests_5xx", "canary-breaching-slo.test.yml"),
    "blind threshold off": (
        "edge-canary.alerts.yml", "[2m]) > 30", "[2m]) > 300", "watcher.test.yml"),
    "revert failed reads the wrong outcome": (
        "edge-canary.alerts.yml", 'outcome="failed"', 'outcome="ok"', "watcher.test.yml"),
    "revert failed forgotten after 5m": (
        "edge-canary.alerts.yml", 'outcome="failed"}[1h]', 'outcome="failed"}[5m]',
        "watcher.test.yml"),
    "out of rotation ignores DRAIN": (
        "edge-canary.alerts.yml", 'state=~"DRAIN|MAINT"', 'state="MAINT"', "fleet-alerts.test.yml"),
    "out of rotation too eager": (
        "edge-canary.alerts.yml", "for: 15m", "for: 10m", "fleet-alerts.test.yml"),
    "mixed versions too eager": (
        "edge-canary.alerts.yml", "for: 2h", "for: 1h", "fleet-alerts.test.yml"),
    "data absent after a long gap only": (
        "edge-canary.alerts.yml", "edge_http_requests_total[1m]", "edge_http_requests_total[5m]",
        "fleet-alerts.test.yml"),
    "p95 is not the 95th percentile": (
        "edge-canary.rules.yml", "histogram_quantile(0.95,\n            sum by (job, node, le)",
        "histogram_quantile(0.9,\n            sum by (job, node, le)", "sli.test.yml"),
    "5xx of a node without 5xx series is missing": (
        "edge-canary.rules.yml",
        "  or\n              0 * sum by (job, node) (job_node_variant_code:edge_http_requests:rate1m)\n", "",
        "sli.test.yml"),
    "variant label dropped": (
        "edge-canary.rules.yml", "sum by (job, node, variant, code)", "sum by (job, node, code)",
        "sli.test.yml"),
    "minority counts half as a minority": (
        "edge-canary.rules.yml", "job_version:edge_build_info:nodes * 2\n              <",
        "job_version:edge_build_info:nodes * 2\n              <=", "fleet.test.yml"),
    "production p95 SLO changed": (
        "edge-canary-slo.rules.yml", "vector(0.5)", "vector(0.3)", "sli.test.yml"),
}


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_unit_tests_catch_a_mutated_rule(name: str, tmp_path: Path) -> None:
    rule_file, old, new, test_file = MUTATIONS[name]
    copy = tmp_path / "prometheus"
    shutil.copytree(RULES_DIR, copy)
    text = (copy / rule_file).read_text()
    assert old in text, f"mutation {name!r}: {old!r} is not in {rule_file}"
    (copy / rule_file).write_text(text.replace(old, new))
    assert promtool("check", "rules", copy / rule_file).returncode == 0, "mutant must still parse"
    result = promtool("test", "rules", test_file, cwd=copy / "tests")
    assert result.returncode != 0, f"{test_file} did not notice: {name}"


# --- what the unit-test files cover ------------------------------------------------------------------


def alert_cases() -> dict[str, set[str]]:
    """Alert name -> kinds of promtool cases: "firing" (alerts expected) and/or "quiet" (none)."""
    cases: dict[str, set[str]] = {}
    for path in unit_test_files():
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                kind = "firing" if case.get("exp_alerts") else "quiet"
                cases.setdefault(case["alertname"], set()).add(kind)
    return cases


def exprs_under_test() -> str:
    return "\n".join(case["expr"] for path in unit_test_files()
                     for test in yaml.safe_load(path.read_text())["tests"]
                     for case in test.get("promql_expr_test", []))


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    cases = alert_cases()
    for alert in rule_names("alert"):
        assert cases.get(alert) == {"firing", "quiet"}, f"{alert}: {sorted(cases.get(alert, []))}"
    assert set(cases) <= rule_names("alert"), "a unit test names an alert that does not exist"


def test_every_recording_rule_value_is_unit_tested() -> None:
    exprs = exprs_under_test()
    untested = {name for name in rule_names("record") if name not in exprs}
    assert not untested


def test_recording_rules_are_named_level_metric_operations() -> None:
    names = rule_names("record")
    assert names and all(RECORD_NAME.match(n) for n in names), sorted(names)


def runbook_alert_headings() -> list[str]:
    text = RUNBOOK.read_text()
    assert "\n## Alerts\n" in text, "docs/RUNBOOK.md has no '## Alerts' section"
    section = text.split("\n## Alerts\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^### (\S+)\s*$", section, flags=re.M)


def test_every_alert_has_severity_summary_and_a_runbook_entry() -> None:
    headings = runbook_alert_headings()
    for rule in rules():
        if "alert" not in rule:
            continue
        name = rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES, name
        assert rule["annotations"]["summary"].strip(), name
        assert rule["annotations"]["runbook_url"] == f"{RUNBOOK_DEFAULT_URL}#{name.lower()}", name
        assert name in headings, f"docs/RUNBOOK.md ## Alerts has no '### {name}'"
    assert set(headings) == rule_names("alert"), "a runbook entry for an alert that does not exist"


def test_runbook_links_default_to_the_runbook_base_url_setting() -> None:
    """The shipped links are built from runbook_base_url's default, the one the lab role replaces."""
    all_vars = yaml.safe_load((REPO / "group_vars" / "all.yml").read_text())
    role = yaml.safe_load((REPO / "roles" / "lab_prometheus" / "defaults" / "main.yml").read_text())
    assert all_vars["runbook_base_url"] == RUNBOOK_DEFAULT_URL
    assert role["lab_prometheus_runbook_default_url"] == RUNBOOK_DEFAULT_URL
    assert RUNBOOK_DEFAULT_URL.startswith("https://")


def exported_watcher_series() -> str:
    """The watcher's own exposition after a probe, a failed revert and each verdict."""
    from prometheus_client import generate_latest

    metrics = WatcherMetrics()
    side = SideSLI(requests=10, codes={"200": 10}, p95=0.1, newest_sample_age=1.0)
    probe = ProbeInput(at=1.0, canary=side, control=side)
    metrics.probe(probe, ProbeResult(at=1.0, state=State.GREEN, reasons=()), 0.01, 0.0)
    metrics.revert(ok=False, shadow=False)
    metrics.revert(ok=True, shadow=False)
    metrics.revert(ok=True, shadow=True)
    metrics.blind.inc(1)
    return generate_latest(metrics.registry).decode()


def test_alerts_read_series_and_label_values_the_watcher_exports() -> None:
    exposition = exported_watcher_series()
    alerts_text = (RULES_DIR / "edge-canary.alerts.yml").read_text()
    for name in set(re.findall(r"edge_canary_watcher_\w+", alerts_text)):
        assert re.search(rf"^{name}[{{ ]", exposition, flags=re.M), f"watcher does not export {name}"
    assert 'edge_canary_watcher_reverts_total{outcome="failed"} 1.0' in exposition
    assert "revert_failed" in VERDICTS


# --- the lab's SLO file and the watcher's recorded-mode queries --------------------------------------


def render_slo(p95: float, ratio: float) -> str:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(SLO_TEMPLATE.parent),
                             undefined=jinja2.StrictUndefined)
    return env.get_template(SLO_TEMPLATE.name).render(
        ansible_managed="Ansible managed", lab_prometheus_slo_p95_seconds=p95,
        lab_prometheus_slo_5xx_ratio=ratio)


def test_lab_slo_template_records_the_same_series_with_the_lab_values(tmp_path: Path) -> None:
    rendered = tmp_path / "slo.yml"
    rendered.write_text(render_slo(0.3, 0.01))
    assert promtool("check", "rules", rendered).returncode == 0
    lab = {r["record"]: r["expr"] for g in yaml.safe_load(rendered.read_text())["groups"]
           for r in g["rules"]}
    docs = {r["record"]: r["expr"] for g in yaml.safe_load(
        (RULES_DIR / "edge-canary-slo.rules.yml").read_text())["groups"] for r in g["rules"]}
    assert set(lab) == set(docs)
    assert lab["slo:edge_http_request_duration_seconds_p95:threshold"] == "vector(0.3)"
    assert lab["slo:edge_http_requests_5xx_per_requests:threshold"] == "vector(0.01)"


def test_recorded_mode_queries_are_valid_watcher_templates_on_recorded_series() -> None:
    config = yaml.safe_load((RULES_DIR / "watcher-recorded-queries.yml").read_text())
    recorded = rule_names("record")
    for key in ("query_requests", "query_p95"):
        assert template_problem(config[key]) is None, key
        used = set(re.findall(r"\b\w+:\w+:\w+\b", config[key]))
        assert used and used <= recorded, f"{key} reads {used - recorded}, which is not recorded"
    assert template_problem(config["query_freshness"]) is None
    assert "edge_http_requests_total" in config["query_freshness"], "freshness must stay raw"
    # The requests query scales a 1m rate to requests in range: the range must be that minute.
    assert config["range"] == "60s" and config["query_requests"].endswith("* 60")


def test_watcher_accepts_the_recorded_mode_config_file() -> None:
    from watcher.config import load_settings

    settings = load_settings([
        "--config", str(RULES_DIR / "watcher-recorded-queries.yml"),
        "--prom-url", "http://127.0.0.1:1", "--canary-selector", 'node="edge-2"',
        "--control-selector", 'node!="edge-2"', "--revert-action", "none"])
    assert settings.range_seconds == 60
    assert "job_node_variant_code:edge_http_requests:rate1m" in settings.queries.requests


def test_the_watcher_metrics_the_alerts_read_are_on_by_default() -> None:
    """EdgeCanaryRevertFailed, EdgeCanaryWatcherBlind and the dashboard need the watcher scraped:
    every deploy's watcher serves them unless an inventory turns them off."""
    defaults = yaml.safe_load((REPO / "roles" / "sli_watch" / "defaults" / "main.yml").read_text())
    assert int(defaults["sli_watch_metrics_port"]) > 0 and defaults["sli_watch_metrics_addr"] == "0.0.0.0"
    for path in (REPO / "group_vars").glob("*.yml"):
        assert str(yaml.safe_load(path.read_text()).get("sli_watch_metrics_port", "on")) != "0", path
