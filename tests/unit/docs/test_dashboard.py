"""The Grafana dashboard (docs/grafana/edge-canary.json): its shape, its variables, the views the
on-call needs, and every panel query parsed by promtool. (The integration test runs the same
queries against the lab's Prometheus and wants data back.)"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers.paths import REPO
from tests.unit.docs.test_promtool import exported_watcher_series, rule_names

DASHBOARD = REPO / "docs" / "grafana" / "edge-canary.json"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
GRAFANA_BUILTINS = {"__rate_interval", "__range", "__interval"}
# $name, ${name} and ${name:format}
VARIABLE = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))")
SAMPLE_VALUES = {"job": "edge", "canary": "edge-2", "backend": "edge", "__rate_interval": "1m", "__range": "1h",
                 "__interval": "15s"}


def load_dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def panels(dashboard: Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
    """Every panel, rows' nested (collapsed) panels included."""
    for panel in (dashboard or load_dashboard())["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) for every query target of the dashboard."""
    return [(p["title"], t["expr"]) for p in panels() for t in p.get("targets", [])]


def substitute(expr: str, values: Mapping[str, str]) -> str:
    """The query with its Grafana variables replaced; an unknown variable raises KeyError."""
    return VARIABLE.sub(lambda m: values[m.group(1) or m.group(2)], expr)


def variables() -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in load_dashboard()["templating"]["list"]}


def test_dashboard_is_a_grafana_dashboard_of_the_current_schema() -> None:
    dash = load_dashboard()
    assert 36 <= dash["schemaVersion"] <= 39
    assert dash["uid"] == "edge-canary" and dash["title"]
    assert dash["panels"]


def test_datasource_is_a_template_variable_every_query_uses() -> None:
    ds = variables()["datasource"]
    assert ds["type"] == "datasource" and ds["query"] == "prometheus"
    wanted = {"type": "prometheus", "uid": "${datasource}"}
    for panel in panels():
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == wanted, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == wanted, panel["title"]
    for var in variables().values():
        if var["type"] == "query":
            assert var["datasource"] == wanted, var["name"]


def test_panel_ids_are_unique_and_panels_do_not_overlap() -> None:
    all_panels = list(panels())
    ids = [p["id"] for p in all_panels]
    assert len(ids) == len(set(ids))
    boxes = [(p["title"], p["gridPos"]) for p in all_panels]
    for title, g in boxes:
        assert g["x"] >= 0 and g["w"] > 0 and g["x"] + g["w"] <= 24, title
    for i, (a_title, a) in enumerate(boxes):
        for b_title, b in boxes[i + 1:]:
            apart = (a["x"] + a["w"] <= b["x"] or b["x"] + b["w"] <= a["x"]
                     or a["y"] + a["h"] <= b["y"] or b["y"] + b["h"] <= a["y"])
            assert apart, f"{a_title!r} overlaps {b_title!r}"


def test_every_variable_a_query_or_title_uses_is_defined() -> None:
    defined = set(variables()) | GRAFANA_BUILTINS
    texts = [expr for _, expr in dashboard_queries()] + [p["title"] for p in panels()]
    used = {m.group(1) or m.group(2) for text in texts for m in VARIABLE.finditer(text)}
    assert used <= defined, used - defined
    assert {"job", "canary", "backend"} <= used


def test_substitute_replaces_both_spellings_and_refuses_unknown_names() -> None:
    assert substitute('x{node="$canary"}[${__range}]', SAMPLE_VALUES) == 'x{node="edge-2"}[1h]'
    with pytest.raises(KeyError):
        substitute("$nope", SAMPLE_VALUES)


def test_canary_vs_control_panels_show_both_sides_and_the_slo() -> None:
    by_title = {p["title"]: [t["expr"] for t in p.get("targets", [])] for p in panels()}
    for title, slo in (("p95 latency: canary vs control",
                        "slo:edge_http_request_duration_seconds_p95:threshold"),
                       ("5xx ratio: canary vs control",
                        "slo:edge_http_requests_5xx_per_requests:threshold")):
        exprs = by_title[title]
        assert any('node="$canary"' in e for e in exprs), title
        assert any('node!="$canary"' in e for e in exprs), title
        assert slo in exprs, title


def test_dashboard_shows_watcher_verdicts_reverts_and_haproxy_states() -> None:
    text = "\n".join(expr for _, expr in dashboard_queries())
    for needle in ("edge_canary_watcher_verdict", "edge_canary_watcher_reverts_total",
                   "edge_canary_watcher_probes_total", "edge_canary_watcher_blind_seconds_total",
                   "haproxy_server_status", 'ALERTS{alertname=~"Edge.*"}'):
        assert needle in text, needle
    for state in ("UP", "NOLB", "DRAIN", "MAINT", "DOWN"):
        assert f'state="{state}"' in text, state


def test_dashboard_reads_only_series_that_are_recorded_or_exported() -> None:
    text = "\n".join(expr for _, expr in dashboard_queries())
    recorded = set(re.findall(r"\b[a-z_]+:[a-z0-9_]+:[a-z0-9_]+\b", text))
    assert recorded and recorded <= rule_names("record"), recorded - rule_names("record")
    exposition = exported_watcher_series()
    for name in set(re.findall(r"edge_canary_watcher_\w+", text)):
        assert re.search(rf"^{name}[{{ ]", exposition, flags=re.M), f"watcher does not export {name}"


def check_queries_with_promtool(queries: list[tuple[str, str]], tmp_path: Path) -> str | None:
    """promtool's verdict on the queries (as recording rules): None when all parse."""
    rules = [{"record": f"dashboard:query_{i}:check", "expr": substitute(q, SAMPLE_VALUES)}
             for i, (_, q) in enumerate(queries)]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True,
                            timeout=60)
    return None if result.returncode == 0 else result.stdout + result.stderr


def test_every_panel_query_parses(tmp_path: Path) -> None:
    queries = dashboard_queries()
    assert len(queries) >= 15
    assert check_queries_with_promtool(queries, tmp_path) is None


def test_the_parse_check_catches_a_broken_query(tmp_path: Path) -> None:
    broken = [("broken", "sum by (node) (rate(edge_http_requests_total[$__rate_interval])")]
    problem = check_queries_with_promtool(broken, tmp_path)
    assert problem is not None and "parse error" in problem


def test_dashboard_reads_no_deprecated_watcher_series() -> None:
    text = DASHBOARD.read_text()
    assert "edge_canary_watcher_sli" not in text, "use the one-unit gauges (edge_canary_watcher_*)"
    assert "edge_canary_watcher_latency_p95_seconds" in text and "edge_canary_watcher_error_ratio" in text


def deploy_annotations() -> list[dict[str, Any]]:
    """The dashboard's Prometheus annotations (Grafana's built-in one left out)."""
    return [a for a in load_dashboard()["annotations"]["list"] if a.get("datasource", {}).get("type") == "prometheus"]


def test_deploys_promotes_and_reverts_are_annotations_from_the_deploy_info_series(tmp_path: Path) -> None:
    from prometheus_client import generate_latest

    from watcher.metrics import WatcherMetrics
    from watcher.notify import VERDICT_EVENTS

    annotations = deploy_annotations()
    assert {a["name"] for a in annotations} >= {"Deploys (canary watched)", "Promoted", "Reverted", "Held"}
    events: set[str] = set()
    for a in annotations:
        assert a["enable"] and a["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, a["name"]
        assert "edge_canary_deploy_info" in a["expr"] and "{{deploy_id}}" in a["titleFormat"], a["name"]
        events |= set(re.search(r'event=~"([^"]+)"', a["expr"]).group(1).split("|"))  # type: ignore[union-attr]
    assert events == {"watching", *VERDICT_EVENTS.values()}, "every phase of a deploy is drawn"
    assert check_queries_with_promtool([(a["name"], a["expr"]) for a in annotations], tmp_path) is None
    metrics = WatcherMetrics()
    metrics.deploy("d-1", "edge-2", "v2")
    assert "edge_canary_deploy_info{" in generate_latest(metrics.registry).decode()
