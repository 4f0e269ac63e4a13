"""The haproxy_server role's drain_batch.yml and ready_batch.yml (issue 16's batched rollback), run by
ansible-playbook on two real HAProxys and two nodes: one module run per load balancer for the whole batch,
each node's own outcome. Module runs are counted by the bench's task_cost callback."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

from tests.helpers.paths import REPO
from tests.integration.roles.test_haproxy_server import ANSIBLE_PLAYBOOK, FDRAIN, Fleet, fleet

__all__ = ["fleet"]  # the fixture, used by name

PLAYBOOK = """\
- name: Drain or ready the whole batch through the haproxy_server role
  hosts: edge
  gather_facts: false
  tasks:
    - name: Run one batch entry point of the role
      ansible.builtin.include_role:
        name: edge.canary.haproxy_server
        tasks_from: "{{ task_file }}"
"""


def inventory(fleet: Fleet, **edge_2: Any) -> dict[str, Any]:
    base = fleet.inventory()
    hosts = base["all"]["children"]["edge"]["hosts"]
    hosts["edge-2"] = {**hosts["edge-1"], "haproxy_server_health_url": fleet.other.health_url, **edge_2}
    return base


def play(fleet: Fleet, task_file: str, name: str, **edge_2: Any) -> tuple[int, str, dict[str, Any]]:
    """(exit code, output, task_cost's per-task module runs by task name)."""
    work = fleet.work / name
    work.mkdir()
    (work / "inventory.json").write_text(json.dumps(inventory(fleet, **edge_2)))
    (work / "play.yml").write_text(PLAYBOOK)
    cost = work / "cost.json"
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(REPO / "collections"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_RETRY_FILES_ENABLED": "false",
           "ANSIBLE_CALLBACK_PLUGINS": str(REPO / "edge_canary/bench/callbacks"),
           "ANSIBLE_CALLBACKS_ENABLED": "task_cost",
           "EDGE_CANARY_TASK_COST": str(cost)}
    cmd = [str(ANSIBLE_PLAYBOOK), "-i", "inventory.json", "-e", json.dumps({"task_file": task_file}), "play.yml"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=work, timeout=600)
    runs = {task["name"]: task["module_runs"] for task in json.loads(cost.read_text())["tasks"]}
    return proc.returncode, proc.stdout + proc.stderr, runs


def both(fleet: Fleet) -> tuple[tuple[int, int], tuple[int, int]]:
    return fleet.states("edge-1"), fleet.states("edge-2")


def test_a_batch_is_drained_and_readied_with_one_run_per_load_balancer(fleet: Fleet) -> None:
    rc, output, runs = play(fleet, "drain_batch", "drain")
    assert rc == 0, output
    assert both(fleet) == ((FDRAIN, FDRAIN), (FDRAIN, FDRAIN))
    drain_runs = {name: n for name, n in runs.items() if n}
    assert list(drain_runs.values()) == [2], runs  # two load balancers, two nodes: two runs, not four

    rc, output, runs = play(fleet, "ready_batch", "ready")
    assert rc == 0, output
    assert both(fleet) == ((0, 0), (0, 0))
    # Both nodes sit behind both load balancers: a health check from each first, then the ready runs.
    assert sorted(n for n in runs.values() if n) == [2, 2], runs


def test_a_node_failing_its_health_check_stays_out_the_others_go_back(fleet: Fleet) -> None:
    for lb, backend in ((fleet.lb_a, "edge"), (fleet.lb_b, "edge_b")):
        for node in ("edge-1", "edge-2"):
            lb.cli(f"set server {backend}/{node} state drain")
    fleet.other.health_status = 503
    rc, output, _runs = play(fleet, "ready_batch", "ready", haproxy_server_health_retries=0)
    assert rc != 0, output
    assert both(fleet) == ((0, 0), (FDRAIN, FDRAIN)), output
    assert "edge-2 was not put back in rotation on every load balancer" in output, output
    assert "lb-a: edge-2 failed its health check" in output and "lb-b: edge-2 failed its health check" in output
    assert "failed: [edge-1]" not in output, output


def test_a_node_that_is_not_a_member_is_left_alone(fleet: Fleet) -> None:
    rc, output, _runs = play(fleet, "drain_batch", "drain", haproxy_server_batch_member=False)
    assert rc == 0, output
    assert both(fleet) == ((FDRAIN, FDRAIN), (0, 0))
