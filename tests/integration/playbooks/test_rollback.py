"""`make rollback` against the lab (issue 6): real make, ansible-playbook, HAProxy and edge nodes; the
fleet's state is read independently (node files, /version, the HAProxy admin socket). The rollback of a
freshly deployed fleet is checked at the end of test_deploy's green deploy, which leaves that fleet."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from edge_canary.procgroup import stop_group
from tests.helpers.fleet import (
    fleet_versions,
    install_fleet,
    node_files,
    node_pids,
    sha256,
)
from tests.helpers.lab import REPO, Lab
from tests.helpers.procs import processes
from tests.helpers.summary import run_summary, warnings_in


def output(result: object) -> str:
    return f"{getattr(result, 'stdout', '')[-5000:]}\n{getattr(result, 'stderr', '')[-2000:]}"


def assert_lock_not_held(lab: Lab) -> None:
    """No live process holds the deploy lock (a failed play's lock is stale: recovered on next use)."""
    shown = subprocess.run([sys.executable, "-m", "edge_canary", "lock", "--dir",
                            str(lab.lab_dir / "control"), "show"], capture_output=True, text=True)
    deploy = next(line for line in shown.stdout.splitlines() if line.startswith("deploy:"))
    assert deploy == "deploy: free" or deploy.endswith("[stale]"), deploy


def assert_all_ready(lab: Lab) -> None:
    assert set(lab.lb_states().values()) == {"READY"}, lab.lb_states()


def assert_rollback_brings_every_node_back_to_v1_and_twice_is_a_no_op(fleet: Lab, artifacts: dict[str, Path]) -> None:
    """make rollback NODES=all on a fleet a green deploy (test_deploy's) put on v2 with v1 as .previous: the
    deploy's green test goes on with it rather than this file deploying the same fleet again."""
    assert set(fleet_versions(fleet).values()) == {"v2"}
    nodes = fleet.settings.node_names()
    # A rollout since the deploy, on the last node: the rollback's restored config takes it back, and says so.
    moved = fleet.node_dir(nodes[-1]) / "edge.conf"
    moved.write_text(moved.read_text().replace("rollout_pct=0", "rollout_pct=40"))

    result = fleet.make("rollback", extra_env={"NODES": "all"})
    assert result.returncode == 0, output(result)
    assert warnings_in(result.stdout + result.stderr) == []
    assert fleet_versions(fleet) == dict.fromkeys(nodes, "v1")
    assert_all_ready(fleet)
    for node in nodes:
        home = fleet.node_dir(node)
        assert sha256(home / "edge") == sha256(artifacts["v1"])
        assert sha256(home / "edge.previous") == sha256(artifacts["v1"])
        # The rolled-back binary is kept aside, not lost and not swapped back in.
        assert sha256(home / "edge.rolled-back") == sha256(artifacts["v2"])
        record = json.loads((home / "release.json").read_text())
        assert record["action"] == "rollback" and record["rolled_back"]["version"] == "v2"
        assert (home / "edge.conf").read_text().count("rollout_pct=0") == 1
    change = json.loads((fleet.node_dir(nodes[-1]) / "release.json").read_text())["config_change"]
    assert (change["set"], change["before"]) == ({"rollout_pct": "0"}, {"rollout_pct": "40"})
    assert_lock_not_held(fleet)
    v1 = f"sha256:{sha256(artifacts['v1'])[:12]}"  # the fleet's v1 has no version in a release record
    printed = " ".join(result.stdout.split())  # Ansible's output folds long messages
    for node in nodes:
        assert f"{node}: rolled back from v2 to {v1}" in printed, output(result)
    # The summary: one row per node, in the JSON line an AWX job reads too.
    summary = run_summary(result.stdout)
    assert summary["kind"] == "rollback" and str(summary["id"]).startswith("rollback-"), summary
    assert summary["nodes"] == [{"node": node, "before": "v2", "after": v1, "result": "rolled back"}
                                for node in nodes[:-1]] + [
        {"node": nodes[-1], "before": "v2", "after": v1, "result": "rolled back; config rollout_pct 40 -> 0"}
    ], summary

    # A second rollback is a no-op: no file changes, no restart, never a swap back to v2.
    files, pids = node_files(fleet), node_pids(fleet)
    again = fleet.make("rollback", extra_env={"NODES": "all"})
    assert again.returncode == 0, output(again)
    assert node_files(fleet) == files
    assert node_pids(fleet) == pids
    assert fleet_versions(fleet) == dict.fromkeys(nodes, "v1")
    printed = " ".join(again.stdout.split())
    for node in nodes:
        assert f"{node}: already on its last-known-good release {v1}, nothing to do" in printed, output(again)
    assert {row["result"] for row in run_summary(again.stdout)["nodes"]} == {"already on its last-known-good"}
    assert_all_ready(fleet)


def test_rollback_without_previous_is_refused_before_any_node_changes(
        fleet: Lab, artifacts: dict[str, Path]) -> None:
    install_fleet(fleet, artifacts["v2"], previous=artifacts["v1"])
    (fleet.node_dir("edge-2") / "edge.previous").unlink()
    files, pids = node_files(fleet), node_pids(fleet)

    result = fleet.make("rollback", extra_env={"NODES": "all"})
    assert result.returncode != 0
    assert "edge-2 has no" in result.stdout and "ROLLBACK_BINARY=" in result.stdout, output(result)
    # Nothing changed on any node, not even on the ones that had a .previous.
    assert node_files(fleet) == files
    assert node_pids(fleet) == pids
    assert set(fleet_versions(fleet).values()) == {"v2"}
    assert_all_ready(fleet)
    assert_lock_not_held(fleet)


def test_rollback_in_check_mode_changes_nothing(fleet: Lab, artifacts: dict[str, Path]) -> None:
    install_fleet(fleet, artifacts["v2"], previous=artifacts["v1"])
    files, pids = node_files(fleet), node_pids(fleet)

    result = fleet.make("rollback", extra_env={"NODES": "all", "CHECK": "1"})
    assert result.returncode == 0, output(result)
    assert node_files(fleet) == files
    assert node_pids(fleet) == pids
    assert set(fleet_versions(fleet).values()) == {"v2"}
    assert_all_ready(fleet)
    assert_lock_not_held(fleet)
    # Its progress says what it would do, never that it did it.
    printed = " ".join(result.stdout.split())  # Ansible's output folds long messages
    v1, v2 = (f"sha256:{sha256(artifacts[v])[:12]}" for v in ("v1", "v2"))  # installed by hand: no release record
    for node in fleet.settings.node_names():
        said = f"{node}: would be rolled back from {v2} to {v1} (check mode: nothing changed)"
        assert said in printed, output(result)
    assert "rolled back from" not in printed.replace("would be rolled back from", ""), output(result)
    assert f"Rollback {run_summary(result.stdout)['id']}: successful — CHECK MODE, nothing changed" in result.stdout
    assert {row["result"] for row in run_summary(result.stdout)["nodes"]} == {"would be rolled back"}


def test_a_drain_wait_that_is_no_boolean_fails_the_drain_and_leaves_the_node_in_rotation(
        fleet: Lab, artifacts: dict[str, Path]) -> None:
    """node_release calls haproxy_server without its argument-spec validation (one task result less per
    node): the module must then see the value as given, not `| bool`'s False, which would drain without
    waiting for the node's sessions to end and restart it under them."""
    install_fleet(fleet, artifacts["v2"], previous=artifacts["v1"])
    files, pids = node_files(fleet), node_pids(fleet)

    result = fleet.playbook("rollback.yml", "-e", json.dumps({"rollback_nodes": "edge-2",
                                                              "haproxy_server_drain_wait": "maybe"}))
    assert result.returncode != 0
    assert "'maybe' is not a valid boolean" in " ".join(result.stdout.split()), output(result)
    assert node_files(fleet) == files
    assert node_pids(fleet) == pids
    assert set(fleet_versions(fleet).values()) == {"v2"}
    assert_all_ready(fleet)
    assert_lock_not_held(fleet)


def play_process(tool: int) -> int | None:
    """The play's ansible-playbook under the tool's process `tool` (watcher.owned's child), once started."""
    table = processes()

    def under_tool(pid: int) -> bool:
        while pid > 1:
            if pid == tool:
                return True
            pid = table.get(pid, (0, ""))[0]
        return False

    return next((pid for pid, (parent, args) in table.items() if "ansible-playbook" in args
                 and "watcher.owned" in table.get(parent, (0, ""))[1] and under_tool(pid)), None)


def start_rollback(fleet: Lab) -> subprocess.Popen[str]:
    """make rollback NODES=all in a process group of its own, as a terminal runs it (Ctrl-C: killpg)."""
    return subprocess.Popen(["make", "--no-print-directory", "rollback"], cwd=REPO, text=True,
                            env={**fleet.env, "NODES": "all"}, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def output_after_ctrl_c(proc: subprocess.Popen[str], timeout: float) -> str:
    """Ctrl-C to the tool; its output once it has ended, or, if it has not within `timeout`, a failure that
    shows every process of the run (pid, group, state, kernel wait) and the output so far."""
    os.killpg(proc.pid, signal.SIGINT)
    try:
        return proc.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired as hung:
        said = hung.output.decode(errors="replace") if isinstance(hung.output, bytes) else (hung.output or "")
        ps = subprocess.run(["ps", "-ww", "-e", "--forest", "-o", "pid,pgid,sid,stat,wchan:24,etime,args"],
                            capture_output=True, text=True).stdout.splitlines()
        shown = "\n".join(line[:300] for line in ps if any(word in line for word in ("make", "edge", "ansible")))
        raise AssertionError(f"still running {timeout:.0f} s after Ctrl-C:\n{shown}\n{said[-5000:]}") from hung


def test_a_rollback_interrupted_with_a_node_drained_says_so_and_a_rerun_finishes_it(
        fleet: Lab, artifacts: dict[str, Path]) -> None:
    """Ctrl-C while a node is out of rotation: the play stops (a drained node stays drained: Ansible runs no
    clean-up on an interrupt), and the tool then shows the fleet as it is now, naming that node. The same
    command run again finishes the job."""
    install_fleet(fleet, artifacts["v2"], previous=artifacts["v1"])
    proc = start_rollback(fleet)
    try:
        fleet.wait_until(lambda: "DRAIN" in fleet.lb_states().values(), 300, "a node drained by the rollback",
                         interval=0.05)
        drained = next(node for node, state in fleet.lb_states().items() if state == "DRAIN")
        out = output_after_ctrl_c(proc, 120)  # about 10 s: the play stops, the fleet is read
    finally:
        stop_group(proc, signal.SIGKILL)  # a no-op once it has ended
    assert proc.returncode != 0
    assert "rollback: interrupted; letting the play stop cleanly" in out, out[-3000:]
    # The play stopped before its folder was removed. ansible-playbook may print a KeyboardInterrupt it lost
    # (raised while Python ran a fork callback): the tool then stops the play itself (test_play.py).
    assert "Traceback" not in re.sub(r"Exception ignored in:.*?\nKeyboardInterrupt: *\n", "", out, flags=re.S), \
        out[-5000:]
    if "Exception ignored in:" in out:  # the Ctrl-C was lost: the tool stopped the play itself
        assert "the play went on after Ctrl-C (ansible-playbook lost it): stopping it" in out, out[-5000:]
    shown = out.split("Where the fleet stands now (make status; Ctrl-C again to skip):", 1)[1]
    assert f"{drained} is drained on lb-1 (gets no new traffic)" in shown, out[-3000:]
    assert fleet.lb_states()[drained] == "DRAIN"
    assert_lock_not_held(fleet)

    again = fleet.make("rollback", extra_env={"NODES": "all"})
    assert again.returncode == 0, output(again)
    assert fleet_versions(fleet) == dict.fromkeys(fleet.settings.node_names(), "v1")
    assert_all_ready(fleet)


def test_a_rollback_interrupted_as_its_play_starts_stops_before_changing_anything(
        fleet: Lab, artifacts: dict[str, Path]) -> None:
    """Ctrl-C before the play has said anything (ansible-playbook still starting): it was noted and then
    dropped, and the play went on to roll the whole fleet back. It must reach the play as soon as it runs."""
    install_fleet(fleet, artifacts["v2"], previous=artifacts["v1"])
    files, pids = node_files(fleet), node_pids(fleet)
    proc = start_rollback(fleet)
    try:
        fleet.wait_until(lambda: play_process(proc.pid) is not None, 60, "the rollback's ansible-playbook",
                         interval=0.02)
        out = output_after_ctrl_c(proc, 120)
    finally:
        stop_group(proc, signal.SIGKILL)
    assert proc.returncode != 0, out[-3000:]
    assert "rollback: interrupted; letting the play stop cleanly" in out, out[-3000:]
    assert node_files(fleet) == files
    assert node_pids(fleet) == pids
    assert set(fleet_versions(fleet).values()) == {"v2"}
    assert_all_ready(fleet)
    assert_lock_not_held(fleet)

