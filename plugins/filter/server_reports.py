"""edge.canary.server_reports: one server's report from each load balancer's run (module_utils/haproxy_info.py)."""

from __future__ import annotations

from typing import Any

from ansible_collections.edge.canary.plugins.module_utils.haproxy_info import server_reports


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"server_reports": server_reports}
