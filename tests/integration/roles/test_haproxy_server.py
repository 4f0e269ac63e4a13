"""The haproxy_server role's drain.yml and ready.yml, run by ansible-playbook on two real HAProxys.

Inventory: a `haproxy` group of two load balancers (one unix admin socket, one TCP admin
socket with its own backend name, both set in the load balancer's host vars) and one edge
node, everything with ansible_connection=local. States are read back through each admin
socket by the fixture.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.haproxy import Haproxy, NodeHttpServer, haproxy_instance
from tests.helpers.paths import REPO
from tests.helpers.procs import free_port

ROOT = REPO
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
FMAINT, FDRAIN = 0x01, 0x08

PLAYBOOK = """\
- name: Drain or ready the node through the haproxy_server role
  hosts: edge
  gather_facts: false
  tasks:
    - name: Run one entry point of the role
      ansible.builtin.include_role:
        name: edge.canary.haproxy_server
        tasks_from: "{{ task_file }}"

    - name: Save the per-load-balancer results for the test
      ansible.builtin.copy:
        content: "{{ haproxy_server_results | to_json }}"
        dest: "{{ results_path }}"
        mode: "0600"
      delegate_to: localhost
      check_mode: false
"""


@dataclass
class Fleet:
    lb_a: Haproxy  # unix admin socket, backend "edge"
    lb_b: Haproxy  # TCP admin socket, backend "edge_b"
    node: NodeHttpServer  # edge-1, the node the role acts on
    other: NodeHttpServer  # edge-2, must never be touched
    work: Path

    def states(self, server: str = "edge-1") -> tuple[int, int]:
        """srv_admin_state of `server` on lb-a and lb-b."""
        return (
            self.lb_a.server_state(server).admin_bits,
            self.lb_b.server_state(server).admin_bits,
        )

    def inventory(self, health_url: str | None = None, lbs: bool = True) -> dict[str, Any]:
        py = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
        assert self.lb_b.tcp_admin
        lb_hosts = {
            "lb-a": {**py, "haproxy_server_socket": str(self.lb_a.admin_socket)},
            "lb-b": {
                **py,
                "haproxy_server_socket": self.lb_b.tcp_admin,
                "haproxy_server_backend": "edge_b",
            },
        }
        edge = {**py, "haproxy_server_health_url": health_url or self.node.health_url}
        return {
            "all": {
                "children": {
                    "haproxy": {"hosts": lb_hosts if lbs else {}},
                    "edge": {"hosts": {"edge-1": edge}},
                }
            }
        }


@dataclass
class PlayRun:
    rc: int
    output: str
    results: dict[str, Any] | None


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    node, other = NodeHttpServer("edge-1").start(), NodeHttpServer("edge-2").start()
    nodes = {"edge-1": node, "edge-2": other}
    try:
        with contextlib.ExitStack() as stack:
            lb_a = stack.enter_context(
                haproxy_instance(tmp_path / "lb-a", servers=list(nodes), down=(), nodes=nodes)
            )
            lb_b = stack.enter_context(
                haproxy_instance(
                    tmp_path / "lb-b",
                    servers=list(nodes),
                    down=(),
                    nodes=nodes,
                    backend="edge_b",
                    tcp_admin=True,
                )
            )
            yield Fleet(lb_a, lb_b, node, other, tmp_path)
    finally:
        node.stop()
        other.stop()


_RUNS = iter(range(1_000_000))


def play(
    fleet: Fleet,
    task_file: str,
    *,
    check: bool = False,
    extra_vars: dict[str, Any] | None = None,
    inventory: dict[str, Any] | None = None,
) -> PlayRun:
    work = fleet.work / f"play-{next(_RUNS)}"
    work.mkdir()
    (work / "inventory.json").write_text(json.dumps(inventory or fleet.inventory()))
    (work / "play.yml").write_text(PLAYBOOK)
    results_path = work / "results.json"
    variables = {"task_file": task_file, "results_path": str(results_path), **(extra_vars or {})}
    (work / "vars.json").write_text(json.dumps(variables))
    cmd = [str(ANSIBLE_PLAYBOOK), "-i", "inventory.json", "-e", "@vars.json", "play.yml"]
    if check:
        cmd += ["--check", "--diff"]
    env = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "collections"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "false",
    }
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=work, timeout=600)
    results = json.loads(results_path.read_text()) if results_path.exists() else None
    return PlayRun(proc.returncode, proc.stdout + proc.stderr, results)


def succeeded(run: PlayRun) -> dict[str, Any]:
    assert run.rc == 0 and run.results is not None, run.output
    return run.results


def test_drain_then_ready_on_every_load_balancer(fleet: Fleet):
    drained = succeeded(play(fleet, "drain"))
    assert fleet.states() == (FDRAIN, FDRAIN)
    assert fleet.states("edge-2") == (0, 0), "another node was touched"
    assert set(drained) == {"lb-a", "lb-b"}
    for lb, result in drained.items():
        assert result["changed"] is True, lb
        assert result["before"]["admin_state"] == "ready"
        assert result["after"]["admin_state"] == "drain"
        assert result["sessions"] == 0
    assert drained["lb-b"]["backend"] == "edge_b"  # read from the load balancer's host vars
    assert drained["lb-b"]["socket"] == fleet.lb_b.tcp_admin

    ready = succeeded(play(fleet, "ready", extra_vars={"haproxy_server_weight": 7}))
    assert fleet.states() == (0, 0)
    assert fleet.lb_a.server_state("edge-1").weight == 7
    assert fleet.lb_b.server_state("edge-1").weight == 7
    assert all(r["changed"] and r["after"]["admin_state"] == "ready" for r in ready.values())

    again = succeeded(play(fleet, "ready", extra_vars={"haproxy_server_weight": 7}))
    assert [r["changed"] for r in again.values()] == [False, False]


def test_the_entry_points_refuse_an_unknown_one_and_arguments_of_the_wrong_type(fleet: Fleet):
    run = play(fleet, "maint")
    assert run.rc != 0
    assert "tasks/maint" in run.output, run.output
    run = play(fleet, "drain", extra_vars={"haproxy_server_wait_timeout": "soon"})
    assert run.rc != 0
    assert "Validating arguments against arg spec 'drain'" in run.output, run.output
    assert "haproxy_server_wait_timeout" in run.output
    assert fleet.states() == (0, 0), "a refused call must not touch the load balancers"
    succeeded(play(fleet, "drain", extra_vars={"haproxy_server_wait_timeout": "30"}))  # a number given as text is fine
    assert fleet.states() == (FDRAIN, FDRAIN)


def test_ready_is_refused_when_the_health_check_fails(fleet: Fleet):
    fleet.lb_a.cli("set server edge/edge-1 state drain")
    fleet.lb_b.cli("set server edge_b/edge-1 state drain")
    closed = f"http://127.0.0.1:{free_port()}/health"
    run = play(
        fleet,
        "ready",
        extra_vars={"haproxy_server_health_retries": 0},
        inventory=fleet.inventory(health_url=closed),
    )
    assert run.rc != 0
    assert "edge-1 failed its health check" in run.output and closed in run.output
    assert "it was not put back in rotation on any load balancer" in run.output
    assert fleet.states() == (FDRAIN, FDRAIN)


def test_ready_is_refused_when_the_node_answers_an_error(fleet: Fleet):
    fleet.lb_a.cli("set server edge/edge-1 state maint")
    fleet.lb_b.cli("set server edge_b/edge-1 state maint")
    fleet.node.health_status = 503
    run = play(fleet, "ready", extra_vars={"haproxy_server_health_retries": 0})
    assert run.rc != 0 and "failed its health check" in run.output
    assert fleet.states() == (FMAINT, FMAINT)


def test_ready_is_refused_without_a_health_url(fleet: Fleet):
    fleet.lb_a.cli("set server edge/edge-1 state drain")
    fleet.lb_b.cli("set server edge_b/edge-1 state drain")
    inventory = fleet.inventory()
    inventory["all"]["children"]["edge"]["hosts"]["edge-1"]["haproxy_server_health_url"] = ""
    run = play(fleet, "ready", inventory=inventory)
    assert run.rc != 0 and "haproxy_server_health_url is empty for edge-1" in run.output
    assert fleet.states() == (FDRAIN, FDRAIN)


def test_check_mode_changes_nothing_and_reports_the_change(fleet: Fleet):
    would_drain = succeeded(play(fleet, "drain", check=True))
    assert fleet.states() == (0, 0)
    for result in would_drain.values():
        assert result["changed"] is True and result["after"]["admin_state"] == "drain"
        assert "diff" in result

    fleet.lb_a.cli("set server edge/edge-1 state drain")
    fleet.lb_b.cli("set server edge_b/edge-1 state drain")
    would_ready = succeeded(play(fleet, "ready", check=True))
    assert fleet.states() == (FDRAIN, FDRAIN)
    assert all(r["changed"] and r["after"]["admin_state"] == "ready" for r in would_ready.values())


def test_drain_fails_naming_the_session_still_open_after_the_wait(fleet: Fleet):
    with fleet.lb_a.holding_session("edge-1"):
        run = play(fleet, "drain", extra_vars={"haproxy_server_wait_timeout": 2})
        assert fleet.states() == (FDRAIN, FDRAIN), "every load balancer must still be drained"
    assert run.rc != 0
    assert "edge/edge-1" in run.output and "1 session(s)" in run.output


def test_no_load_balancer_in_the_inventory_is_refused(fleet: Fleet):
    run = play(fleet, "drain", inventory=fleet.inventory(lbs=False))
    assert run.rc != 0 and "inventory group 'haproxy' lists no load balancer" in run.output
    assert fleet.states() == (0, 0)


def test_ready_ramps_the_weight_of_a_node_put_back_in_rotation(fleet: Fleet):
    """Slow start done by the tool: the node comes back at a tenth of its weight and climbs to the full
    weight step by step (sampled through the admin socket while the play runs); a node already in
    rotation is not ramped again."""
    import threading
    import time

    succeeded(play(fleet, "drain"))
    seen: list[tuple[int, int]] = []  # (admin bits, weight) on lb-a while the play runs
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            state = fleet.lb_a.server_state("edge-1")
            seen.append((state.admin_bits, state.weight))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        ready = succeeded(play(fleet, "ready", extra_vars={"haproxy_server_weight": 100, "haproxy_server_ramp": 2}))
    finally:
        done.set()
        sampler.join(5)
    in_rotation = [weight for bits, weight in seen if bits == 0]
    assert in_rotation and min(in_rotation) <= 20, seen  # back in rotation at a low weight first
    assert in_rotation == sorted(in_rotation), seen  # only ever going up
    assert len(set(in_rotation)) >= 3, seen  # in steps, not at once
    assert fleet.lb_a.server_state("edge-1").weight == 100
    assert fleet.lb_b.server_state("edge-1").weight == 100
    for lb, result in ready.items():
        assert result["ramp"]["weights"][0] <= 20 and result["ramp"]["weights"][-1] == 100, (lb, result)

    again = succeeded(play(fleet, "ready", extra_vars={"haproxy_server_weight": 100, "haproxy_server_ramp": 2}))
    assert all("ramp" not in r and not r["changed"] for r in again.values()), again


def test_verify_takes_a_node_warming_up_under_slowstart_as_up(tmp_path: Path):
    """A node HAProxy saw down while drained (a restart) is back through the health check and warming up under
    the backend's slowstart (operational state `starting`): routed to, so verify passes without waiting the
    slowstart out (60 s here, against 3 s of verify)."""
    node = NodeHttpServer("edge-1").start()
    try:
        extra = f"    server edge-1 127.0.0.1:{node.port} weight 100 slowstart 60s\n"
        with haproxy_instance(tmp_path / "lb", servers=(), down=(), extra_config=extra) as lb:
            lb.bring_back_under_slowstart("edge-1", node)
            py = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
            inventory = {"all": {"children": {
                "haproxy": {"hosts": {"lb-a": {**py, "haproxy_server_socket": str(lb.admin_socket)}}},
                "edge": {"hosts": {"edge-1": {**py, "haproxy_server_health_url": node.health_url}}}}}}
            run = play(Fleet(lb, lb, node, node, tmp_path), "verify", inventory=inventory,
                       extra_vars={"haproxy_server_verify_retries": 3, "haproxy_server_results": {}})
            assert run.rc == 0, run.output
            assert lb.server_state("edge-1").op_state == 1, "the slowstart was waited out: the test proves nothing"
    finally:
        node.stop()
