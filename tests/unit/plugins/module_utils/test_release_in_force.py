"""release_in_force: the check edge_release state=configured makes in the same module run, that the
service shows the value just written (against a stand-in node's metrics page on 127.0.0.1)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from ansible_collections.edge.canary.plugins.module_utils.release_in_force import (
    check_metric_name,
    gauge_value,
    not_in_force_text,
    wait_in_force,
)

from tests.helpers.health_node import HealthNode, health_node

PAGE = "# HELP edge_config_rollout_pct x\n# TYPE edge_config_rollout_pct gauge\nedge_config_rollout_pct {}\n"


@pytest.fixture
def node() -> Iterator[HealthNode]:
    with health_node() as server:
        yield server


def test_gauge_value_reads_only_the_unlabelled_line_of_that_metric() -> None:
    page = "edge_config_rollout_pct_total 9\nedge_config_rollout_pct{a=\"b\"} 7\nedge_config_rollout_pct 0.0\n"
    assert gauge_value(page, "edge_config_rollout_pct") == "0.0"
    assert gauge_value(page, "missing") is None
    assert check_metric_name("edge_config_rollout_pct") is None
    assert check_metric_name("x} 1\nevil") is not None


def test_waits_until_the_service_shows_the_value(node: HealthNode) -> None:
    node.version_body = PAGE.format(40).encode()

    def reload_later() -> None:
        time.sleep(0.6)
        node.version_body = PAGE.format("0.0").encode()

    threading.Thread(target=reload_later, daemon=True).start()
    seen = wait_in_force(node.url("/metrics"), "edge_config_rollout_pct", "0", timeout=20, interval=0.1)
    assert seen.done and seen.shown == "0.0"
    assert seen.waited >= 0.5


def test_a_value_never_in_force_fails_naming_what_the_service_shows(node: HealthNode) -> None:
    node.version_body = PAGE.format(40).encode()
    seen = wait_in_force(node.url("/metrics"), "edge_config_rollout_pct", "0", timeout=0.5, interval=0.1)
    assert not seen.done
    assert seen.shown == "40" and "shows 40" in seen.error and seen.answered
    text = not_in_force_text("rollout_pct", "0", seen, "http://n/metrics")
    assert text.startswith("rollout_pct=0 is written but not in force after ") and "shows 40" in text
    assert text.endswith("check the service reads its config file"), text


def test_no_answer_is_not_in_force() -> None:
    seen = wait_in_force("http://127.0.0.1:9/metrics", "edge_config_rollout_pct", "0", timeout=0.3, interval=0.1,
                         request_timeout=0.2)
    assert not seen.done and seen.shown is None and seen.error and not seen.answered
    text = not_in_force_text("rollout_pct", "0", seen, "http://127.0.0.1:9/metrics")
    assert "the service does not answer (" in text and "it takes the value when it starts" in text, text
    assert "reads its config file" not in text, "a stopped service is not one that ignores its config"
