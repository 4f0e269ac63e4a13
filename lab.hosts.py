#!/usr/bin/env python3
"""Inventory of the local lab: edge-1..edge-N, one load balancer, everything on loopback; or, with
LAB_MODE=hosts, every edge node its own host (network namespace, address, sshd) reached over SSH.
With LAB_POPS=P > 1 the nodes are split into PoPs pop1..popP (groups edge_popK), each behind its own
load balancer lb-K (group haproxy_popK), which the PoP's nodes name as their haproxy_server_group.

A script rather than a YAML file because the node count and ports follow LAB_NODES and friends (or what
the running lab was brought up with). It lives at the root so the top-level group_vars/ apply to it.
"""

import json
import shlex
import sys

from edge_canary.lab.settings import LabSettings, LoadBalancer, SettingsError, known_hosts_option, load, ssh_path


def ssh_node(s: LabSettings, name: str, address: str, port: int) -> dict[str, object]:
    """A node of the hosts mode: its own address, reached over SSH with the lab's key and known_hosts only."""
    ssh, node = f"{s.lab_dir}/ssh", f"{s.lab_dir}/hosts/{name}"
    return {
        "ansible_host": address,
        "ansible_connection": "ssh",
        "ansible_user": "root",
        "ansible_python_interpreter": "/usr/bin/python3",
        "ansible_ssh_private_key_file": ssh_path(f"{ssh}/id_ed25519"),
        # Host keys are checked against the lab's own known_hosts; a lost node is noticed within seconds. Shell
        # words: Ansible splits them so.
        "ansible_ssh_common_args": (f"-o {shlex.quote(known_hosts_option(f'{ssh}/known_hosts'))} "
                                    "-o StrictHostKeyChecking=yes -o IdentitiesOnly=yes -o ServerAliveInterval=2 "
                                    "-o ServerAliveCountMax=3"),
        "edge_address": address,
        "edge_port": port,
        "edge_service_supervisor_conf": f"{node}/supervisord.conf",
        "lab_edge_node_programs_dir": f"{node}/supervisor.d",
        "lab_edge_node_apply": True,
    }


def load_balancer(s: LabSettings, lb: LoadBalancer) -> dict[str, object]:
    """An LB of a lab with PoPs: its own HAProxy (folder, program, ports), for the lab roles and for the
    roles that drain and ready nodes on it (haproxy_server_socket)."""
    home = f"{s.lab_dir}/{lb.dir_name}"
    return {
        "edge_pop": lb.pop,
        "haproxy_server_socket": f"{home}/admin.sock",
        "lab_haproxy_dir": home,
        "lab_haproxy_program": lb.program,
        "lab_haproxy_port": lb.port,
        "lab_haproxy_admin_tcp_port": lb.admin_tcp_port,
        "lab_haproxy_exporter_port": lb.exporter_port,
        "lab_traffic_program": lb.traffic_program,
    }


def pop_groups(s: LabSettings) -> dict[str, dict[str, object]]:
    """edge_popK (the PoP's nodes, which drain and ready on haproxy_popK only) and haproxy_popK (lb-K)."""
    groups: dict[str, dict[str, object]] = {}
    for lb in s.load_balancers():
        groups[f"edge_{lb.pop}"] = {"hosts": list(lb.nodes),
                                    "vars": {"edge_pop": lb.pop, "haproxy_server_group": f"haproxy_{lb.pop}"}}
        groups[f"haproxy_{lb.pop}"] = {"hosts": [lb.name]}
    return groups


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
    lbs: dict[str, dict[str, object]] = {"lb-1": dict(local)}
    groups: dict[str, dict[str, object]] = {"edge": {"hosts": list(nodes)}, "haproxy": {"hosts": ["lb-1"]}}
    if s.pops > 1:
        lbs = {lb.name: {**local, **load_balancer(s, lb)} for lb in s.load_balancers()}
        groups = {
            "edge": {"hosts": list(nodes), "children": [f"edge_{pop}" for pop in s.pop_names()]},
            "haproxy": {"hosts": list(lbs), "children": [f"haproxy_{pop}" for pop in s.pop_names()]},
            **pop_groups(s),
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
        **groups,
        "control": {"hosts": ["localhost"]},
        "_meta": {"hostvars": {**nodes, **lbs, "localhost": dict(local)}},
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
