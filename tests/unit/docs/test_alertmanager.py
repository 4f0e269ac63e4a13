"""Alertmanager configurations shipped with the tool, checked with Alertmanager's own amtool: the
production example (docs/alertmanager) routes each deploy event where it says, and the lab's
template groups one notification per deploy event, quickly."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import jinja2
import pytest
import yaml

from tests.helpers.paths import REPO

EXAMPLE = REPO / "docs" / "alertmanager" / "alertmanager.example.yml"
LAB_TEMPLATE = REPO / "roles" / "lab_alertmanager" / "templates" / "alertmanager.yml.j2"
AMTOOL = shutil.which("amtool") or "/usr/bin/amtool"


def amtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AMTOOL, *map(str, args)], capture_output=True, text=True, timeout=60)


def routes(config: Path, *labels: str) -> set[str]:
    result = amtool("config", "routes", "test", f"--config.file={config}", *labels)
    return set(result.stdout.strip().split(","))


def test_the_example_is_a_valid_alertmanager_config() -> None:
    result = amtool("check-config", EXAMPLE)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("labels", "receivers"), [
    (("event=reverted",), {"deploys-slack", "deploys-webhook"}),
    (("event=held",), {"deploys-slack", "deploys-webhook"}),
    (("event=revert_failed",), {"oncall-slack", "deploys-webhook"}),
    (("event=promoted",), {"deploys-webhook"}),
    (("event=started",), {"deploys-webhook"}),
])
def test_the_example_routes_each_deploy_event(labels: tuple[str, ...], receivers: set[str]) -> None:
    assert routes(EXAMPLE, "alertname=EdgeCanaryDeployEvent", *labels) == receivers


def test_the_example_routes_the_prometheus_alerts_by_severity() -> None:
    assert routes(EXAMPLE, "alertname=EdgeCanaryRevertFailed", "severity=page") == {"oncall-slack"}
    assert routes(EXAMPLE, "alertname=EdgeCanaryWatcherBlind", "severity=warning") == {"deploys-slack"}


def test_the_lab_config_groups_each_deploy_event_alone_and_quickly(tmp_path: Path) -> None:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(LAB_TEMPLATE.parent), undefined=jinja2.StrictUndefined)
    defaults = yaml.safe_load((REPO / "roles" / "lab_alertmanager" / "defaults" / "main.yml").read_text())
    rendered = tmp_path / "alertmanager.yml"
    rendered.write_text(env.get_template(LAB_TEMPLATE.name).render(
        ansible_managed="Ansible managed", lab_alertmanager_webhook_url="http://127.0.0.1:19094/",
        **{k: v for k, v in defaults.items() if k.endswith(("_wait", "_interval"))}))
    assert amtool("check-config", rendered).returncode == 0
    route = yaml.safe_load(rendered.read_text())["route"]
    assert route["group_by"] == ["alertname", "deploy_id", "event"]
    assert route["group_wait"] == "1s"
