"""Emergency rollback at fleet scale (issue 16): rollback.yml restores nodes in parallel batches
(rollback_batch) and never has more than rollback_max_unavailable out of rotation at once, sampled from
HAProxy's own view during the run; a load balancer that does not answer is named."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

from edge_canary.gameday.fleet import parse_servers_state
from edge_canary.ops import lock
from tests.helpers.fleet import fleet_versions, install_fleet
from tests.helpers.lab import Lab
from tests.helpers.paths import REPO
from tests.helpers.summary import run_summary


def out_of_rotation(lab: Lab) -> set[str]:
    """Servers HAProxy would not send a new request to: drained, in maintenance, or neither up nor warming
    up under slowstart (the game days' reading of `show servers state`)."""
    states = parse_servers_state(lab.haproxy("show servers state edge"), "edge")
    return {name for name, state in states.items() if not state.serving}


def test_batched_rollback_keeps_max_unavailable(fleet: Lab, artifacts: dict[str, Path], tmp_path: Path) -> None:
    install_fleet(fleet, artifacts["v2"], previous=artifacts["v1"])
    cost = tmp_path / "task_cost.json"  # the bench's callback: module runs per task
    samples: list[set[str]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append(out_of_rotation(fleet))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        result = fleet.playbook("rollback.yml", "-e", json.dumps(
            {"rollback_nodes": "all", "rollback_batch": 3, "rollback_max_unavailable": 2}), extra_env={
                "ANSIBLE_CALLBACK_PLUGINS": str(REPO / "edge_canary/bench/callbacks"),
                "ANSIBLE_CALLBACKS_ENABLED": "edge.canary.run_summary,task_cost", "EDGE_CANARY_TASK_COST": str(cost)})
    finally:
        done.set()
        sampler.join(10)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    assert fleet_versions(fleet) == {"edge-1": "v1", "edge-2": "v1", "edge-3": "v1"}
    assert max(len(s) for s in samples) == 2, "never two out at once: the batch did not run in parallel"
    assert all(len(s) <= 2 for s in samples), [s for s in samples if len(s) > 2][:3]
    # the order and progress, printed (words compared: the YAML callback may wrap a long line)
    printed = " ".join(result.stdout.split())
    assert "rollback batch 1/2: edge-1, edge-2" in printed and "rollback batch 2/2: edge-3" in printed
    assert "order: edge-1, edge-2, edge-3; at most 2 out of rotation at once" in printed, result.stdout[-3000:]
    assert printed.count("order: ") == 1, result.stdout[-3000:]  # with the first batch only
    assert set(fleet.lb_states().values()) == {"READY"}
    # A batch is drained and readied by one run per load balancer, not one per node: two batches, one LB.
    runs: dict[str, int] = {}  # summed by name: each batch includes the role's tasks anew
    for task in json.loads(cost.read_text())["tasks"]:
        name = task["name"].split(" : ")[-1]
        runs[name] = runs.get(name, 0) + task["module_runs"]
    assert runs["Drain the batch's nodes on every load balancer and wait for their sessions to end"] == 2, runs
    assert runs["Set the batch's nodes ready on every load balancer and wait until each sees them up"] == 2, runs
    # Task results, each a fork of the controller (issue 16): revert.yml's rollback-binary check is the action
    # plugin's, not a task's (the play checks ROLLBACK_BINARY once, before any drain). Summed over the nodes:
    # which node runs a play's run_once tasks depends on the order the nodes finished the play before.
    hosts = json.loads(cost.read_text())["hosts"]
    assert sum(hosts[node]["results"] for node in ("edge-1", "edge-2", "edge-3")) <= 102, hosts


def test_a_node_that_fails_its_revert_leaves_the_rest_of_its_batch_in_rotation(
        fleet: Lab, artifacts: dict[str, Path]) -> None:
    """edge-2's .previous fails its health check: edge-2 stays out of rotation and is named, edge-1 (same
    batch) is put back on v1, and the rollback stops before the next batch (edge-3 untouched, serving)."""
    install_fleet(fleet, artifacts["v2"], previous=artifacts["v1"])
    shutil.copy2(artifacts["v2-unhealthy"], fleet.node_dir("edge-2") / "edge.previous")
    result = fleet.playbook("rollback.yml", "-e", json.dumps({
        "rollback_nodes": "all", "rollback_batch": 2, "rollback_max_unavailable": 2,
        "edge_service_health_timeout": 5}))
    assert result.returncode != 0
    printed = " ".join(result.stdout.split())
    assert "REVERT FAILED on edge-2" in printed, result.stdout[-5000:]
    assert "REVERT FAILED on edge-1" not in printed, result.stdout[-5000:]
    versions = fleet_versions(fleet)
    assert (versions["edge-1"], versions["edge-3"]) == ("v1", "v2"), versions
    states = fleet.lb_states()
    assert (states["edge-1"], states["edge-3"]) == ("READY", "READY") and states["edge-2"] != "READY", states
    # The summary names the failed node and the one the rollback never reached.
    rows = {row["node"]: row["result"] for row in run_summary(result.stdout)["nodes"]}
    assert rows["edge-1"] == "rolled back" and rows["edge-3"] == "not started", rows
    assert rows["edge-2"].startswith("failed: REVERT FAILED on edge-2"), rows


def test_a_node_someone_put_in_maintenance_is_restored_and_stays_there(
        fleet: Lab, artifacts: dict[str, Path]) -> None:
    """An operator's maintenance is theirs to end: a fleet rollback restores the node's release but neither
    drains nor readies it (before, the ready took it out of maintenance and back into rotation), says so in
    its row, and so does a second rollback, which has nothing to restore."""
    install_fleet(fleet, artifacts["v2"], previous=artifacts["v1"])
    fleet.haproxy("set server edge/edge-2 state maint")
    result = fleet.playbook("rollback.yml", "-e", json.dumps(
        {"rollback_nodes": "all", "rollback_batch": 2, "rollback_max_unavailable": 2}))
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    assert fleet_versions(fleet) == {"edge-1": "v1", "edge-2": "v1", "edge-3": "v1"}
    assert fleet.lb_states() == {"edge-1": "READY", "edge-2": "MAINT", "edge-3": "READY"}
    rows = {row["node"]: row["result"] for row in run_summary(result.stdout)["nodes"]}
    assert rows == {"edge-1": "rolled back", "edge-2": "rolled back; left in maintenance on lb-1 as found",
                    "edge-3": "rolled back"}, rows

    again = fleet.playbook("rollback.yml", "-e", json.dumps({"rollback_nodes": "edge-2"}))
    assert again.returncode == 0, again.stdout[-5000:] + again.stderr[-2000:]
    [row] = run_summary(again.stdout)["nodes"]
    assert row["result"] == "already on its last-known-good; left in maintenance on lb-1 as found", row
    assert fleet.lb_states()["edge-2"] == "MAINT"


def test_a_load_balancer_that_does_not_answer_is_named_with_its_error(fleet: Lab, tmp_path: Path) -> None:
    """Not Ansible's "One or more items failed" for the loop over the load balancers: which one, and why."""
    nobody = tmp_path / "nobody-listens.sock"
    result = fleet.playbook("rollback.yml", "-e", json.dumps({"rollback_nodes": "edge-1",
                                                              "haproxy_server_socket": str(nobody)}))
    assert result.returncode != 0
    [row] = run_summary(result.stdout)["nodes"]
    assert row["result"].startswith("failed: REVERT FAILED on edge-1 at "), row
    assert f": lb-1: cannot connect to HAProxy socket {nobody}: " in row["result"], row
    assert "One or more items failed" not in result.stdout, result.stdout[-3000:]


def test_a_rollback_refused_by_the_lock_does_not_blame_a_node(fleet: Lab) -> None:
    """A live deploy holds the lock (its watcher judging the canary): the rollback changes nothing, and says the
    lock stopped it. Before, the first node's row read "failed: edge-lock: …", as if its revert had failed."""
    control, holder = fleet.lab_dir / "control", {"user": "alice", **lock.process(os.getpid())}
    control.mkdir(exist_ok=True)  # made by the first run that takes the lock
    assert lock.acquire(control, "deploy", "d-in-its-window", False, token="t", holder=holder) == 0
    try:
        result = fleet.playbook("rollback.yml", "-e", json.dumps({"rollback_nodes": "edge-1,edge-2"}))
    finally:
        lock.release(control, "deploy", "d-in-its-window", token="t")
    assert result.returncode != 0
    rows = {row["node"]: row["result"] for row in run_summary(result.stdout)["nodes"]}
    assert rows == {"edge-1": "not started", "edge-2": "not started"}, rows
    printed = " ".join(result.stdout.split())
    assert "another deploy d-in-its-window by alice" in printed and "holds the lock" in printed, result.stdout[-3000:]
    assert set(fleet.lb_states().values()) == {"READY"}


def test_batch_alone_keeps_one_node_in_rotation(fleet: Lab) -> None:
    """BATCH=3 on a 3-node fleet without MAX_UNAVAILABLE: cut down to 2, so one node always serves (planned in
    check mode, which prints the plan and changes nothing)."""
    result = fleet.playbook("rollback.yml", "--check", "-e", json.dumps({"rollback_nodes": "all", "rollback_batch": 3}))
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    printed = " ".join(result.stdout.split())
    assert "rollback batch 1/2: edge-1, edge-2" in printed, result.stdout[-3000:]
    assert "at most 2 out of rotation at once" in printed, result.stdout[-3000:]


def test_a_bad_batch_is_refused_before_anything_changes(fleet: Lab) -> None:
    result = fleet.playbook("rollback.yml", "-e", json.dumps({"rollback_nodes": "all", "rollback_batch": "0"}))
    assert result.returncode == 2, result.stdout
    assert "rollback_batch=0 is not a whole number of at least 1" in result.stdout, result.stdout
