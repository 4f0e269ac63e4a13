"""edge.canary.lb_maintenance: the nodes in maintenance on their load balancers (module_utils/haproxy_info.py)."""

from __future__ import annotations

from typing import Any

from ansible_collections.edge.canary.plugins.module_utils.haproxy_info import in_maintenance


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"lb_maintenance": in_maintenance}
