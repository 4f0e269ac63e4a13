"""haproxy_info: one load balancer's whole backend in two commands, however many servers are asked about."""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.edge.canary.plugins.module_utils.haproxy_info import (
    in_maintenance,
    read_backend,
    server_reports,
)
from ansible_collections.edge.canary.plugins.module_utils.haproxy_state import HaproxyError

from tests.unit.plugins.module_utils.test_haproxy_state import SERVERS_STATE


class FakeApi:
    def __init__(self, level: str = "admin") -> None:
        self.level, self.sent = level, []  # type: ignore[var-annotated]

    def __str__(self) -> str:
        return "/run/haproxy/admin.sock"

    def run(self, command: str) -> str:
        self.sent.append(command)
        return self.level + "\n" if command == "show cli level" else SERVERS_STATE


def test_every_server_in_two_commands_and_the_missing_named() -> None:
    api = FakeApi()
    result = read_backend(api, "edge", ["n1", "n2", "edge-9"])  # type: ignore[arg-type]
    assert api.sent == ["show cli level", "show servers state edge"]
    assert sorted(result["servers"]) == ["n1", "n2"] and result["missing"] == ["edge-9"]
    assert result["servers"]["n1"]["admin_state"] == "drain" and result["level"] == "admin"
    assert "not found: edge-9" in result["msg"] and result["changed"] is False


def test_a_socket_below_admin_is_refused() -> None:
    with pytest.raises(HaproxyError, match="level operator, not admin"):
        read_backend(FakeApi("operator"), "edge", [])  # type: ignore[arg-type]
    assert read_backend(FakeApi("operator"), "edge", [], require_admin=False)["level"] == "operator"  # type: ignore[arg-type]


def test_a_node_in_maintenance_on_one_of_its_own_lbs_is_named_with_those_lbs() -> None:
    def view(lb: str, **states: str) -> dict[str, object]:
        return {"item": lb, "servers": {server: {"admin_state": state} for server, state in states.items()}}

    views = [view("lb-1", **{"edge-1": "ready", "edge-2": "maint", "srv-3": "maint"}),
             view("lb-2", **{"edge-1": "maint", "edge-2": "drain", "edge-4": "maint"}),
             view("lb-3", **{"edge-4": "ready"})]
    groups = {"haproxy": ["lb-1", "lb-2"], "haproxy_pop2": ["lb-3"]}
    found = in_maintenance(views, {"edge-1": "haproxy", "edge-2": "haproxy", "edge-3": "haproxy",
                                   "edge-4": "haproxy_pop2"}, {"edge-3": "srv-3"}, groups)
    # edge-4's maint on lb-2 is not its own LB's; drain (the tool's own) is no maintenance.
    assert found == {"edge-1": ["lb-2"], "edge-2": ["lb-1"], "edge-3": ["lb-1"]}


def test_a_servers_report_is_read_by_key_from_each_load_balancers_run() -> None:
    """map(attribute='edge-1.pop1') read the name as a path and found nothing: a server name may hold a dot."""
    runs: list[dict[str, Any]] = [{"item": "lb-1", "servers": {"edge-1.pop1": {"kept_in_maint": True}, "edge-2": {}}},
            {"item": "lb-2", "servers": {"edge-2": {"changed": True}}},
            {"item": "lb-3", "skipped": True}]
    assert server_reports(runs, "edge-1.pop1") == {"lb-1": {"kept_in_maint": True}, "lb-2": {}, "lb-3": {}}
    assert server_reports(runs, "edge-2") == {"lb-1": {}, "lb-2": {"changed": True}, "lb-3": {}}
