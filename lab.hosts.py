#!/usr/bin/env python3
"""Inventory of the local lab: edge-1..edge-N, one load balancer, everything on loopback.

A script rather than a YAML file because the node count and ports follow LAB_NODES and friends (or what
the running lab was brought up with). It lives at the root so the top-level group_vars/ apply to it.
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "lab"))

from lab_settings import SettingsError, load  # noqa: E402


def inventory() -> dict[str, object]:
    s = load()
    local = {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}
    nodes = {
        name: {**local, "edge_port": port}
        for name, port in zip(s.node_names(), s.edge_ports(), strict=True)
    }
    return {
        "all": {"children": ["lab"]},
        "lab": {
            "children": ["control", "edge", "haproxy"],
            "vars": {
                "lab_dir": s.lab_dir,
                "lab_nodes": s.nodes,
                "lab_haproxy_port": s.haproxy_port,
                "lab_haproxy_admin_tcp_port": s.admin_tcp_port,
                "lab_haproxy_exporter_port": s.exporter_port,
                "lab_prometheus_port": s.prom_port,
                "lab_watcher_metrics_port": s.prom_port + 1,
                "lab_traffic_rps": s.traffic_rps,
            },
        },
        "edge": {"hosts": list(nodes)},
        "haproxy": {"hosts": ["lb-1"]},
        "control": {"hosts": ["localhost"]},
        "_meta": {"hostvars": {**nodes, "lb-1": dict(local), "localhost": dict(local)}},
    }


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--host":
        print(json.dumps({}))
        return 0
    try:
        print(json.dumps(inventory(), indent=2))
    except SettingsError as err:
        print(f"lab inventory: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
