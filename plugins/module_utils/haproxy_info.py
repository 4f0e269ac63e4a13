"""haproxy_servers_info's read: one load balancer's view of a whole backend in two admin-socket
connections (`show cli level`, `show servers state <backend>`), however many servers are asked about.
Preflight reads each load balancer once this way instead of once per node."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ansible_collections.edge.canary.plugins.module_utils.haproxy_api import RuntimeApi
from ansible_collections.edge.canary.plugins.module_utils.haproxy_state import (
    admin_level_error,
    parse_cli_level,
    parse_servers_state,
)


def read_backend(api: RuntimeApi, backend: str, wanted: list[str], require_admin: bool = True) -> dict[str, Any]:
    """Every server of `backend` (state as haproxy_server reports it) and which `wanted` ones are missing."""
    level = parse_cli_level(api.run("show cli level"))
    if require_admin and level is not None and level != "admin":
        raise admin_level_error(str(api), level)
    servers = parse_servers_state(api.run(f"show servers state {backend}"), backend, str(api))
    missing = [name for name in wanted if name not in servers]
    return {
        "changed": False,
        "socket": str(api),
        "backend": backend,
        "level": level or "unknown",
        "servers": {name: state.as_result() for name, state in sorted(servers.items())},
        "missing": missing,
        "msg": (
            f"{backend} on {api}: {len(servers)} server(s)"
            + (f"; not found: {', '.join(missing)}" if missing else "")
        ),
    }


def in_maintenance(views: Sequence[Mapping[str, Any]], group_of: Mapping[str, str], server_of: Mapping[str, str],
                   groups: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """The nodes in maintenance on one of their own load balancers, each with those LBs, from read_backend's
    views (haproxy_servers_info's loop results, `item` naming the LB). group_of: each node's inventory group
    of LBs (haproxy_server_group), server_of: its server name ('' = the node's). Only someone else puts a node
    there: the tool drains, never sets maint."""
    servers = {view.get("item"): view.get("servers") or {} for view in views}
    found: dict[str, list[str]] = {}
    for node, group in group_of.items():
        server = server_of.get(node) or node
        lbs = [lb for lb in groups.get(group, [])
               if (servers.get(lb, {}).get(server) or {}).get("admin_state") == "maint"]
        if lbs:
            found[node] = lbs
    return found


def server_reports(runs: Sequence[Mapping[str, Any]], server: str) -> dict[str, Any]:
    """One server's own report from each run of haproxy_server with `servers` (a registered loop over the
    load balancers, `item` naming each), by load balancer; {} where a run has none for it. Read by key: a
    server name with a dot is not a path, as it would be to map(attribute=...)."""
    return {str(run.get("item")): (run.get("servers") or {}).get(server) or {} for run in runs}
