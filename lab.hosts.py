#!/usr/bin/env python3
"""Inventory of the local lab: edge-1..edge-N, one load balancer, everything on loopback; or, with
LAB_MODE=hosts, every edge node its own host (network namespace, address, sshd) reached over SSH.

A script rather than a YAML file because the node count and ports follow LAB_NODES and friends (or what
the running lab was brought up with). It lives at the root so the top-level group_vars/ apply to it.
"""

import json
import sys

from edge_canary.lab.settings import LabSettings, SettingsError, load


def ssh_node(s: LabSettings, name: str, address: str, port: int) -> dict[str, object]:
    """A node of the hosts mode: its own address, reached over SSH with the lab's key and known_hosts only."""
    ssh, node = f"{s.lab_dir}/ssh", f"{s.lab_dir}/hosts/{name}"
    return {
        "ansible_host": address,
        "ansible_connection": "ssh",
        "ansible_user": "root",
        "ansible_python_interpreter": "/usr/bin/python3",
        "ansible_ssh_private_key_file": f"{ssh}/id_ed25519",
        # Host keys are checked against the lab's own known_hosts; a lost node is noticed within seconds.
        "ansible_ssh_common_args": (f"-o UserKnownHostsFile={ssh}/known_hosts -o StrictHostKeyChecking=yes "
                                    "-o IdentitiesOnly=yes -o ServerAliveInterval=2 -o ServerAliveCountMax=3"),
        "edge_address": address,
        "edge_port": port,
        "edge_service_supervisor_conf": f"{node}/supervisord.conf",
        "lab_edge_node_programs_dir": f"{node}/supervisor.d",
        "lab_edge_node_apply": True,
    }


def inventory() -> dict[str, object]:
    s = load()
    local = {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}
    if s.mode == "hosts":
        nodes = {
            name: ssh_node(s, name, address, port)
            for name, address, port in zip(s.node_names(), s.node_addresses(), s.edge_ports(), strict=True)
        }
    else:
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
                "lab_mode": s.mode,
                "lab_nodes": s.nodes,
                "lab_haproxy_port": s.haproxy_port,
                "lab_haproxy_admin_tcp_port": s.admin_tcp_port,
                "lab_haproxy_exporter_port": s.exporter_port,
                "lab_prometheus_port": s.prom_port,
                "lab_watcher_metrics_port": s.prom_port + 1,
                # Alertmanager beside Prometheus (+2 is left free), its test webhook one port up.
                "lab_alertmanager_port": s.prom_port + 3,
                "lab_traffic_rps": s.traffic_rps,
                "lab_noise_errors": s.noise_errors,
                "lab_noise_latency": s.noise_latency,
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
