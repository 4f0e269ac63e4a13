"""`make deploy-canary` end to end against the lab (issue 4): real make, ansible-playbook, HAProxy,
Prometheus and watcher runs; the fleet's state is read independently (node files, /version, the
HAProxy admin socket)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge_canary.ops.lock_holder import alive
from tests.helpers.fleet import fleet_versions, sha256
from tests.helpers.lab import REPO, Lab
from tests.helpers.summary import run_summary, warnings_in
from tests.helpers.watch_window import PROMOTING_WINDOW
from tests.integration.playbooks import test_rollback


def deploy(lab: Lab, artifact: Path | str, **env: str) -> subprocess.CompletedProcess[str]:
    return lab.make("deploy-canary", extra_env={"ARTIFACT": str(artifact), **PROMOTING_WINDOW, **env})


def node_files(lab: Lab) -> dict[str, str]:
    """Every file of every node with its sha256: what 'nothing changed' is checked against."""
    return {str(path.relative_to(lab.lab_dir)): sha256(path)
            for node in lab.settings.node_names() for path in sorted(lab.node_dir(node).rglob("*"))
            if path.is_file()}


def pids(lab: Lab) -> dict[str, int]:
    return {node: lab.node_version(node)["pid"] for node in lab.settings.node_names()}


def assert_untouched(lab: Lab, files: dict[str, str], before_pids: dict[str, int]) -> None:
    assert node_files(lab) == files
    assert pids(lab) == before_pids
    assert set(lab.lb_states().values()) == {"READY"}


def test_green_deploy_keeps_v1_as_previous_and_a_rollback_brings_it_back(fleet: Lab, artifacts: dict[str, Path],
                                                                         tmp_path: Path) -> None:
    cost = tmp_path / "task_cost.json"  # the bench's callback: task results and module runs per host
    result = deploy(fleet, artifacts["v2"], BATCH="2",
                    ANSIBLE_CALLBACK_PLUGINS=str(REPO / "edge_canary/bench/callbacks"),
                    ANSIBLE_CALLBACKS_ENABLED="edge.canary.run_summary,task_cost", EDGE_CANARY_TASK_COST=str(cost))
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr
    # Nothing to wonder about: no warning from Ansible (a deploy's empty groups: one PoP has no later waves)
    # or from the Python packages under it.
    assert warnings_in(result.stdout + result.stderr) == []
    # What a peer costs the controller (issue 16): preflight's read, the note that the deploy has not
    # reached it yet (a deploy may stop before it; its push drops the note), the roll's read (its reachability
    # check before the drain), push (the artifact's copy is a file transfer of the same task), restart,
    # health check and serving record in one run; and the batch's drain and ready, one run each for both
    # peers (the lab's one load balancer), counted on the peer that ran them. The batch's run_once
    # Alertmanager post is no module run (edge.canary.deploy_event works in the controller).
    costs = json.loads(cost.read_text())
    hosts = costs["hosts"]
    peer_runs = sorted(hosts[peer]["module_runs"] for peer in ("edge-2", "edge-3"))
    assert peer_runs == [5, 7], hosts
    batch_runs = {task["name"].split(" : ")[-1]: task["module_runs"] for task in costs["tasks"]}
    assert batch_runs["Drain the batch's nodes on every load balancer and wait for their sessions to end"] == 1
    assert batch_runs["Set the batch's nodes ready on every load balancer and wait until each sees them up"] == 1
    # The canary's also (the note too): its watcher's preflight (the check of its settings and Prometheus' check, run on
    # the control host in the canary's variables), the watcher's start (its folder, settings and ready
    # file are written in the controller, one shell starts it) and the promote's serving record. The
    # control host's: the artifact's stat and version, the one read of each load balancer (here one) and
    # the wait for the verdict; the record folder and the Alertmanager posts are no module runs.
    assert hosts["edge-1"]["module_runs"] <= 11 and hosts["localhost"]["module_runs"] <= 4, hosts
    # Task results per peer, each a fork of the controller's main process (issue 16): preflight's and
    # the roll's tasks (node_release calls its roles without a second argument-spec validation, and the
    # push's path checks are its action plugin's, not a task's); the peer that ran the batch's run_once
    # tasks (the batch's progress line, drain, health check, ready, the wave's notification) counts those too.
    # One keeps an operator's maintenance: the (skipped) include for a node put there since preflight. The note
    # that the deploy has not reached the peer is one more; preflight's read skips its second argument-spec
    # validation, one fewer.
    peer_results = sorted(hosts[peer]["results"] for peer in ("edge-2", "edge-3"))
    assert peer_results[0] <= 32 and peer_results[1] <= 38, hosts
    assert fleet_versions(fleet) == {node: "v2" for node in fleet.settings.node_names()}
    for node in fleet.settings.node_names():
        assert sha256(fleet.node_dir(node) / "edge.previous") == sha256(artifacts["v1"])
        record = json.loads((fleet.node_dir(node) / "release.json").read_text())
        assert record["current"]["version"] == "v2"
    assert set(fleet.lb_states().values()) == {"READY"}
    assert "SLI verdict: PROMOTE" in result.stdout
    assert "edge-1  canary" in result.stdout  # the summary table
    # Progress: each batch of peers says which it is and how far the roll has got.
    assert "peer batch 1/1: edge-2, edge-3 (0 of 2 peers rolled before it)" in " ".join(result.stdout.split())
    # and its JSON line, built from ansible-runner's events
    line = next(line for line in result.stdout.splitlines() if line.startswith("EDGE_CANARY_SUMMARY "))
    summary = json.loads(line.split(" ", 1)[1])
    assert summary["status"] == "successful" and summary["verdict"] == "promote", summary
    assert [row["after"] for row in summary["nodes"]] == ["v2", "v2", "v2"], summary["nodes"]

    # The same artifact again: nothing changes, .previous stays v1, no node restarts.
    files, before = node_files(fleet), pids(fleet)
    again = deploy(fleet, artifacts["v2"])
    assert again.returncode == 0, again.stdout[-5000:]
    assert node_files(fleet) == files
    assert pids(fleet) == before
    table = [line for line in again.stdout.splitlines() if not line.startswith("EDGE_CANARY_SUMMARY ")]
    assert sum(line.count("already on the release") for line in table) == 3
    # Its rows name only the step that ran (the check that each node is in rotation), no drain or push.
    line = next(line for line in again.stdout.splitlines() if line.startswith("EDGE_CANARY_SUMMARY "))
    steps = [row["steps"] for row in json.loads(line.split(" ", 1)[1])["nodes"]]
    assert all(step.startswith("ready+lb ") and "," not in step for step in steps), steps

    test_rollback.assert_rollback_brings_every_node_back_to_v1_and_twice_is_a_no_op(fleet, artifacts)


@pytest.mark.parametrize("bad", ["v2-unhealthy", "v2-crash"])
def test_canary_that_fails_its_health_is_put_back_on_v1(fleet: Lab, artifacts: dict[str, Path], bad: str) -> None:
    peers_before = {node: fleet.node_version(node)["pid"] for node in ("edge-2", "edge-3")}
    result = deploy(fleet, artifacts[bad])
    assert result.returncode != 0
    # The fleet's v1 has no release record: the message names it by its sha256, never as "None".
    printed = " ".join(result.stdout.split())  # Ansible's output folds long messages
    assert f"It was reverted to sha256:{sha256(artifacts['v1'])[:12]} and is back in rotation." in printed, \
        result.stdout[-3000:]
    assert fleet_versions(fleet) == {"edge-1": "v1", "edge-2": "v1", "edge-3": "v1"}
    assert {node: fleet.node_version(node)["pid"] for node in peers_before} == peers_before
    assert sha256(fleet.node_dir("edge-1") / "edge") == sha256(artifacts["v1"])
    assert sha256(fleet.node_dir("edge-1") / "edge.rolled-back") == sha256(artifacts[bad])
    fleet.wait_until(lambda: set(fleet.lb_states().values()) == {"READY"}, 10, "every node READY")
    fleet.wait_until(lambda: fleet.server_stats()["edge-1"]["status"] == "UP", 30, "edge-1 UP")


def test_a_canary_its_push_never_reached_is_put_back_in_rotation_untouched(
        fleet: Lab, artifacts: dict[str, Path]) -> None:
    """A canary failing before its push changed it (here its staging folder cannot be made) is only put back
    in rotation. The restore's check crashed on the release record's empty `pending` (ansible-core 2.19's
    conditionals must be true or false), leaving the canary drained."""
    files, before = node_files(fleet), pids(fleet)
    staging = fleet.node_dir("edge-1") / ".staging"
    staging.write_text("in the way\n")
    try:
        result = deploy(fleet, artifacts["v2"])
        assert result.returncode != 0
        printed = " ".join(result.stdout.split())
        assert f"It was reverted to sha256:{sha256(artifacts['v1'])[:12]} and is back in rotation." in printed, \
            result.stdout[-3000:]
        assert "Conditional" not in printed, result.stdout[-3000:]
        fleet.wait_until(lambda: set(fleet.lb_states().values()) == {"READY"}, 10, "every node READY")
        # Untouched but for their release records, which note that this deploy never reached them.
        assert {path: sha for path, sha in node_files(fleet).items() if not path.endswith("/release.json")} \
            == {path: sha for path, sha in files.items() if not path.endswith("/release.json")}
        deploy_id = run_summary(result.stdout)["id"]
        for node in fleet.settings.node_names():
            record = json.loads((fleet.node_dir(node) / "release.json").read_text())
            assert record["not_reached"]["deploy_id"] == deploy_id, (node, record)
        assert pids(fleet) == before
    finally:
        staging.unlink(missing_ok=True)  # the failed push removes it (and says so)


def test_bad_artifacts_are_refused_before_any_drain(fleet: Lab, tmp_path: Path, artifacts: dict[str, Path]) -> None:
    """Refused as input (exit 64, no run record), as a mistyped BATCH is; they used to fail in preflight."""
    unreadable = tmp_path / "edge-unreadable"
    unreadable.write_bytes(artifacts["v2"].read_bytes())
    unreadable.chmod(0o000)
    not_executable = tmp_path / "edge-noexec"
    not_executable.write_bytes(artifacts["v2"].read_bytes())
    cases: dict[Path | str, str] = {
        tmp_path / "missing": "does not exist",
        tmp_path: "is a directory",
        unreadable: "is not readable",
        not_executable: "is not executable",
        "": "ARTIFACT is not set",
    }
    files, before = node_files(fleet), pids(fleet)
    runs = fleet.lab_dir / "control" / "runs"
    records = sorted(runs.iterdir()) if runs.exists() else []
    for artifact, expected in cases.items():
        result = deploy(fleet, artifact)
        assert result.returncode != 0
        assert f"ARTIFACT={artifact} {expected}" in result.stderr if artifact else expected in result.stderr, \
            (artifact, result.stderr)
        assert "Error 64" in result.stderr and not result.stdout.strip(), (artifact, result.stdout[-2000:])
        assert_untouched(fleet, files, before)
    assert (sorted(runs.iterdir()) if runs.exists() else []) == records


def test_an_artifact_reached_through_a_link_passes_preflight(fleet: Lab, tmp_path: Path,
                                                            artifacts: dict[str, Path]) -> None:
    """A release is often reached through a link (current -> edge-1.4.2). Preflight's stat did not
    follow it: 'is not a regular file'."""
    link = tmp_path / "current"
    link.symlink_to(artifacts["v2"])
    files, before = node_files(fleet), pids(fleet)
    result = deploy(fleet, link, CHECK="1")
    assert result.returncode == 0, result.stdout[-3000:]
    assert {row["node"]: (row["after"], row["result"]) for row in run_summary(result.stdout)["nodes"]} == \
        {node: ("v2", "would be rolled") for node in fleet.settings.node_names()}
    assert_untouched(fleet, files, before)


def test_bad_settings_are_refused_with_one_line(fleet: Lab, artifacts: dict[str, Path]) -> None:
    cases = {
        ("CANARY_NODE", "edge-9"): "deploy_canary_node=edge-9 is not an edge node of this inventory",
        ("BATCH", "0"): "BATCH=0 is not a whole number",
        ("CONFIG", "rollout_pct=101"): "rollout_pct=101 is not a whole number from 0 to 100",
        ("CONFIG", "oops"): "CONFIG entry 'oops' is not key=value",
        ("SLI_WINDOW", "soon"): "SLI_WINDOW=soon is not a positive number",
        ("PROM_URL", "http://127.0.0.1:9"): "does not answer queries",
    }
    files, before = node_files(fleet), pids(fleet)
    for (name, value), expected in cases.items():
        result = deploy(fleet, artifacts["v2"], **{name: value})
        assert result.returncode != 0
        # The input schema refuses on stderr before the play; the play's own checks print on stdout.
        assert expected in result.stdout + result.stderr, (name, result.stdout[-2000:], result.stderr)
        assert_untouched(fleet, files, before)


def test_a_node_in_maintenance_is_left_alone_and_a_canary_in_maintenance_refused(
        fleet: Lab, artifacts: dict[str, Path]) -> None:
    """A node someone put in maintenance (the tool only drains) was rolled and put back in rotation: a
    host taken out for a failing disk got traffic again. The deploy leaves it alone and says so."""
    fleet.haproxy("set server edge/edge-3 state maint")
    try:
        home = fleet.node_dir("edge-3")
        files = {name: sha256(home / name) for name in ("edge", "edge.previous")}
        refused = deploy(fleet, artifacts["v2"], CANARY_NODE="edge-3")
        assert refused.returncode != 0
        printed = " ".join(refused.stdout.split())
        assert "canary edge-3 is in maintenance on lb-1" in printed and "choose another canary" in printed
        assert "Deploy " in printed and "stopped in preflight, before anything changed" in printed
        assert set(fleet_versions(fleet).values()) == {"v1"}

        result = deploy(fleet, artifacts["v2"])
        assert result.returncode == 0, result.stdout[-4000:]
        assert "warning: edge-3 is in maintenance on lb-1" in " ".join(result.stdout.split())
        assert fleet_versions(fleet) == {"edge-1": "v2", "edge-2": "v2", "edge-3": "v1"}
        assert {name: sha256(home / name) for name in files} == files
        assert fleet.lb_states()["edge-3"] == "MAINT"
        line = next(line for line in result.stdout.splitlines() if line.startswith("EDGE_CANARY_SUMMARY "))
        rows = {row["node"]: row for row in json.loads(line.split(" ", 1)[1])["nodes"]}
        assert rows["edge-3"]["result"] == "left alone: in maintenance on lb-1 (not rolled)", rows
    finally:
        fleet.haproxy("set server edge/edge-3 state ready")


def test_check_mode_changes_nothing(fleet: Lab, artifacts: dict[str, Path]) -> None:
    files, before = node_files(fleet), pids(fleet)
    result = deploy(fleet, artifacts["v2"], CHECK="1")
    assert result.returncode == 0, result.stdout[-5000:]
    assert "CHECK MODE, nothing changed" in result.stdout
    assert "would be rolled" in result.stdout and "  ok\n" not in result.stdout, result.stdout[-3000:]
    assert_untouched(fleet, files, before)
    assert not list((fleet.lab_dir / "control").glob("*.lock"))


def test_a_secret_config_value_stays_out_of_records_and_output(fleet: Lab, artifacts: dict[str, Path]) -> None:
    """Issue 15 item 7: a key in edge_secret_config_keys (the lab's lab_api_key) reaches no record, module
    output or --diff (CHECK=1 runs the modules with --check --diff)."""
    secret = "s3cr3t-value-42"
    result = deploy(fleet, artifacts["v2"], CHECK="1", CONFIG=f"lab_api_key={secret} rollout_pct=5")
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr
    assert "lab_api_key" in result.stdout  # the key is named, its value is not
    assert secret not in result.stdout + result.stderr
    records = [path for path in (fleet.lab_dir / "control").rglob("*") if path.is_file()]
    deploy_records = [path for path in records if path.name == "deploy.json"]
    assert deploy_records
    assert all(secret not in path.read_text(errors="replace") for path in records)
    newest = max(deploy_records, key=lambda path: path.stat().st_mtime)
    assert json.loads(newest.read_text())["config"] == {"lab_api_key": "********", "rollout_pct": "5"}


def test_a_second_deploy_is_refused_while_one_holds_the_lock(fleet: Lab, artifacts: dict[str, Path]) -> None:
    lock_dir = fleet.lab_dir / "control"
    lock_dir.mkdir(exist_ok=True)  # a fresh lab has no state folder until its first deploy
    holder = subprocess.Popen(["sleep", "120"])
    try:
        (lock_dir / "deploy.lock").write_text(json.dumps(
            {"id": "20260101T000000Z-alice", "pid": holder.pid, "user": "alice", "since": "2026-01-01T00:00:00Z"}))
        files, before = node_files(fleet), pids(fleet)
        result = deploy(fleet, artifacts["v2"])
        assert result.returncode != 0
        assert "another deploy 20260101T000000Z-alice by alice" in result.stdout
        assert_untouched(fleet, files, before)
    finally:
        holder.kill()
        holder.wait()
    # The holder is gone: its lock is stale and recovered, with a message. CHECK keeps this one short.
    result = deploy(fleet, artifacts["v2"], CHECK="1")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "stale lock of deploy 20260101T000000Z-alice" in result.stdout


def test_two_deploys_at_once_one_proceeds_and_every_other_is_refused_until_it_ends(
        fleet: Lab, artifacts: dict[str, Path]) -> None:
    """Two operators (the same user) start `make deploy-canary` in the same second: one deploy id each, and a
    lock that no name can re-enter, so exactly one runs and the other is refused naming the holder. The lock
    names a process that lives as long as the winning deploy (not a per-task worker): a third deploy started
    while the winner is at its SLI gate is refused too."""
    control = fleet.lab_dir / "control"
    lock = control / "deploy.lock"
    earlier = set(control.glob("runs/*/watcher.json"))
    time.sleep(1.05 - time.time() % 1)  # both in one UTC second: the ids they had before would collide
    runs = [subprocess.Popen(["make", "--no-print-directory", "deploy-canary"], cwd=REPO,
                             env={**fleet.env, "ARTIFACT": str(artifacts["v2"]), **PROMOTING_WINDOW},
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    try:
        fleet.wait_until(lambda: set(control.glob("runs/*/watcher.json")) - earlier, timeout=300,
                         what="the winning deploy reaching its SLI gate")
        holder = json.loads(lock.read_text())
        third = deploy(fleet, artifacts["v2-errors"])
        assert third.returncode != 0
        assert f"another deploy {holder['id']}" in third.stdout
        assert json.loads(lock.read_text())["id"] == holder["id"]
    finally:
        outs = [run.communicate(timeout=900)[0] for run in runs]
    ids = [out.split("deploy-canary: deploy ", 1)[1].split()[0] for out in outs]
    assert ids[0] != ids[1]
    assert sorted(run.returncode != 0 for run in runs) == [False, True], outs
    winner = next(n for n, run in enumerate(runs) if run.returncode == 0)
    assert ids[winner] == holder["id"]
    assert f"another deploy {ids[winner]} by" in outs[1 - winner], outs[1 - winner][-3000:]
    assert fleet_versions(fleet) == {node: "v2" for node in fleet.settings.node_names()}
    assert not lock.exists()


def test_a_deploy_interrupted_before_its_ready_is_reverted_by_its_watcher_which_keeps_the_lock(
        fleet: Lab, artifacts: dict[str, Path]) -> None:
    """Ctrl-C once the canary's watcher has started, before the play puts the canary back in rotation: the
    play stops, leaving the canary drained on v2. Its detached watcher gets no ready signal, so it reverts
    the canary to v1 and back in rotation instead of judging a window it cannot see. The deploy lock stays
    held, by the watcher, until it ends; meanwhile another deploy is refused."""
    control = fleet.lab_dir / "control"
    earlier = set(control.glob("runs/*/watcher.json"))
    proc = subprocess.Popen(["make", "--no-print-directory", "deploy-canary"], cwd=REPO,
                            env={**fleet.env, "ARTIFACT": str(artifacts["v2"]), **PROMOTING_WINDOW},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    fleet.wait_until(lambda: set(control.glob("runs/*/watcher.json")) - earlier, timeout=300,
                     what="the deploy reaching its canary's watcher")
    # The watcher joins the lock as it starts, a few tasks before the play writes the ready file.
    fleet.wait_until(lambda: json.loads((control / "deploy.lock").read_text()).get("watchers"), timeout=30,
                     what="the watcher joining the deploy lock", interval=0.02)
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=300)
    held = json.loads((control / "deploy.lock").read_text())
    run_dir = control / "runs" / held["id"]
    assert not (run_dir / "canary-ready").exists(), "the play wrote its ready file before the interrupt:\n" + out
    assert fleet.lb_states()["edge-1"] != "READY" and fleet.node_version("edge-1")["version"] == "v2"
    # The summary says what the interrupted run did, not "not started" for the canary it drained and pushed.
    rows = {row["node"]: row for row in json.loads(out.split("EDGE_CANARY_SUMMARY ", 1)[1].splitlines()[0])["nodes"]}
    assert rows["edge-1"]["result"] == "interrupted after restart+health, not put back in rotation", out[-3000:]
    assert rows["edge-1"]["after"] == "v2" and rows["edge-2"]["result"] == "not started"
    assert "edge-1 is drained on lb-1" in out.split("Where the fleet stands now", 1)[1], out[-3000:]
    watcher = held["watchers"][0]["pid"]
    assert alive(held["watchers"][0]), "the watcher ended before the play: nothing left to check"

    def lock_shown() -> str:
        return subprocess.run([sys.executable, "-m", "edge_canary", "lock", "--dir", str(control), "show"],
                              capture_output=True, text=True, check=True).stdout

    # The run's own process (watcher.owned around ansible-playbook, the lock's holder) may take a moment
    # after make returns to stop what is left of its group; then the lock is the watcher's.
    fleet.wait_until(lambda: f"kept by its watcher (pid {watcher})" in lock_shown(), 10,
                     "the lock kept by the watcher")
    refused = deploy(fleet, artifacts["v2"], CHECK="1")
    assert refused.returncode != 0
    assert f"another deploy {held['id']} by" in refused.stdout
    fleet.wait_until(lambda: not alive(held["watchers"][0]), timeout=400, what="the watcher ending")
    assert lock_shown().startswith("deploy: free"), lock_shown()
    verdict = json.loads((run_dir / "verdict.json").read_text())
    assert verdict["verdict"] == "reverted" and verdict["probes"] == 0, verdict
    assert verdict["reason"].startswith("no ready signal within 60s of this watcher's start: the play that "
                                        "started it stopped before it put the canary back in rotation"), verdict
    assert fleet_versions(fleet) == {"edge-1": "v1", "edge-2": "v1", "edge-3": "v1"}
    assert set(fleet.lb_states().values()) == {"READY"}


def test_a_game_day_drill_holds_off_deploys_unless_forced(fleet: Lab, artifacts: dict[str, Path]) -> None:
    lock_dir = fleet.lab_dir / "control"
    lock_dir.mkdir(exist_ok=True)  # a fresh lab has no state folder until its first deploy
    holder = subprocess.Popen(["sleep", "120"])
    try:
        (lock_dir / "gameday.lock").write_text(json.dumps(
            {"id": "drill-errors", "pid": holder.pid, "user": "bob", "since": "2026-01-01T00:00:00Z"}))
        refused = deploy(fleet, artifacts["v2"], CHECK="1")
        assert refused.returncode != 0
        assert "a game-day drill holds the lock" in refused.stdout
        forced = deploy(fleet, artifacts["v2"], CHECK="1", FORCE="1")
        assert forced.returncode == 0, forced.stdout[-3000:]
        assert "FORCED" in (lock_dir / "locks.log").read_text()
    finally:
        holder.kill()
        holder.wait()


def test_migration_check_refuses_and_force_bypasses(fleet: Lab, artifacts: dict[str, Path], tmp_path: Path) -> None:
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "0002_drop.sql").write_text("ALTER TABLE users DROP COLUMN email;\n")
    files, before = node_files(fleet), pids(fleet)
    refused = deploy(fleet, artifacts["v2"], MIGRATIONS_DIR=str(migrations))
    assert refused.returncode != 0
    assert "DROP COLUMN" in refused.stdout
    assert_untouched(fleet, files, before)

    # A clean migrations folder passes the same check: tests/unit/edge_canary/ops/test_migrations.py.
    forced = deploy(fleet, artifacts["v2"], MIGRATIONS_DIR=str(migrations), FORCE_MIGRATE="1", CHECK="1")
    assert forced.returncode == 0, forced.stdout[-3000:]


def test_interrupted_push_then_rerun_ends_consistent(fleet: Lab, artifacts: dict[str, Path]) -> None:
    env = {**fleet.env, "ARTIFACT": str(artifacts["v2"]), **PROMOTING_WINDOW}
    proc = subprocess.Popen(["make", "--no-print-directory", "deploy-canary"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    staging = fleet.node_dir("edge-1") / ".staging"
    deadline = time.monotonic() + 120
    while not staging.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert staging.exists(), "the canary's push never started"
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in the terminal reaches the whole process group
    proc.communicate(timeout=120)
    # Whatever the interrupt cut, v1 is still on the node, as the binary or as .previous.
    node = fleet.node_dir("edge-1")
    v1 = sha256(artifacts["v1"])
    assert v1 in {sha256(node / "edge"), sha256(node / "edge.previous")}

    rerun = deploy(fleet, artifacts["v2"])
    assert rerun.returncode == 0, rerun.stdout[-5000:]
    assert fleet_versions(fleet) == {n: "v2" for n in fleet.settings.node_names()}
    for name in fleet.settings.node_names():
        assert sha256(fleet.node_dir(name) / "edge.previous") == v1
    assert set(fleet.lb_states().values()) == {"READY"}
