"""haproxy_info: one load balancer's whole backend in two commands, however many servers are asked about."""

from __future__ import annotations

import pytest
from ansible_collections.edge.canary.plugins.module_utils.haproxy_info import read_backend
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
