"""haproxy_api: the runtime API client's own guards (the socket itself: tests/integration/plugins)."""

from __future__ import annotations

import pytest
from ansible_collections.edge.canary.plugins.module_utils.haproxy_api import RuntimeApi
from ansible_collections.edge.canary.plugins.module_utils.haproxy_state import HaproxyError, UnixAddress


def test_api_refuses_a_command_with_a_line_break_before_connecting():
    api = RuntimeApi(UnixAddress("/nonexistent/never-connected.sock"), 1.0)
    with pytest.raises(HaproxyError, match="line break"):
        api.run("show info\nset server a/b state maint")


