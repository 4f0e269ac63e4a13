"""`make rollout` against the lab (issue 6): real make, ansible-playbook, watcher, Prometheus and edge
nodes serving the lab's background traffic. The fleet's state is read independently: config files,
each running process's rollout_pct gauge and pid, node files."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.fleet import (
    config_keys,
    install_fleet,
    node_files,
    node_pids,
    reset_fleet,
    rollout_in_force,
)
from tests.helpers.lab import REPO, Lab, lab_processes
from tests.helpers.summary import record_dir


def stop_watchers(lab: Lab) -> None:
    """A watcher a failed test left behind would set rollout_pct=0 in a later test: stop it."""
    for entry in lab_processes(lab.lab_dir):
        pid, _, args = entry.partition(": ")
        if " -m watcher " in args and "/control/runs/rollout-" in args:
            os.kill(int(pid), signal.SIGTERM)


@pytest.fixture
def fleet(lab: Lab, artifacts: dict[str, Path]) -> Iterator[Lab]:
    reset_fleet(lab, artifacts["v1"])
    yield lab
    stop_watchers(lab)
    reset_fleet(lab, artifacts["v1"])


@pytest.fixture(scope="module")
def new_only_fault(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """v2 whose new code path fails 30 % of its requests with 502; the legacy path is healthy."""
    path = tmp_path_factory.mktemp("rollout-artifacts") / "edge-v2"
    subprocess.run([sys.executable, "-m", "edge_canary", "build-artifact", "--version", "v2",
                    "--fault", "errors=0.3:502,scope=new", "--out", str(path)],
                   check=True, capture_output=True)
    return path


def rollout(lab: Lab, **env: str) -> subprocess.CompletedProcess[str]:
    return lab.make("rollout", extra_env={"PCT": "", "STAGES": "", "ROLLOUT_HOLD": "", **env})


def output(result: subprocess.CompletedProcess[str]) -> str:
    return f"{result.stdout[-6000:]}\n{result.stderr[-2000:]}"


def run_dir(result: subprocess.CompletedProcess[str]) -> Path:
    return record_dir(result.stdout)


def binaries(lab: Lab) -> dict[str, dict[str, str]]:
    """Every node file but the config and the release record: what a rollout must never touch."""
    return {node: {name: sha for name, sha in files.items()
                   if name not in ("edge.conf", "release.json")}
            for node, files in node_files(lab).items()}


def set_pct_by_hand(lab: Lab, pct: int) -> None:
    for node in lab.settings.node_names():
        (lab.node_dir(node) / "edge.conf").write_text(f"rollout_pct={pct}\n")
    lab.wait_until(lambda: set(rollout_in_force(lab).values()) == {pct}, 30,
                   f"every node serving with rollout_pct={pct}")


def rollout_runs(lab: Lab) -> set[str]:
    return {p.name for p in (lab.lab_dir / "control" / "runs").glob("rollout-*")}


def assert_lock_free(lab: Lab) -> None:
    shown = subprocess.run([sys.executable, "-m", "edge_canary", "lock", "--dir",
                            str(lab.lab_dir / "control"), "show"], capture_output=True, text=True)
    assert "deploy: free" in shown.stdout, shown.stdout


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"PCT": "abc"}, "PCT=abc: abc is not a whole number from 0 to 100"),
        ({"PCT": "101"}, "PCT=101: 101 is not a whole number from 0 to 100"),
        ({"PCT": "-1"}, "PCT=-1: -1 is not a whole number from 0 to 100"),
        ({"PCT": "2.5"}, "PCT=2.5: 2.5 is not a whole number from 0 to 100"),
        ({"STAGES": "1 10 200"}, 'STAGES="1 10 200": 200 is not a whole number'),
        ({"STAGES": "50 10"}, "each stage must be above the one before"),
        ({"PCT": "10", "STAGES": "1 10"}, "give PCT or STAGES, not both"),
        ({}, 'give PCT=N (0-100) or STAGES="1 10 50 100"'),
        ({"PCT": "10", "ROLLOUT_HOLD": "2h"}, "ROLLOUT_HOLD=2h is not a whole number of seconds"),
    ],
)
def test_bad_pct_is_refused_in_one_line_and_nothing_changes(
        fleet: Lab, env: dict[str, str], words: str) -> None:
    files, runs = node_files(fleet), rollout_runs(fleet)
    result = rollout(fleet, **env)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2, result.stderr  # ours, then make's "Error 64"
    assert words in lines[0] and lines[0].endswith("nothing was changed"), lines[0]
    assert node_files(fleet) == files
    assert rollout_runs(fleet) == runs  # not even a record: the play never started


def test_a_hold_the_watcher_would_refuse_is_refused_before_any_node_changes(fleet: Lab) -> None:
    """A stage's watcher checked its settings only once started: a hold shorter than one probe interval (the
    lab's 3 s) set rollout_pct=10 on every node, then the watcher refused to start and every node went back."""
    files, runs = node_files(fleet), rollout_runs(fleet)
    result = rollout(fleet, PCT="10", ROLLOUT_HOLD="2")
    assert result.returncode != 0
    assert ("the SLI watcher would refuse its settings (--window (2s) is shorter than one --interval (3s): "
            "widen the window)") in " ".join(result.stdout.split()), output(result)
    assert node_files(fleet) == files and set(rollout_in_force(fleet).values()) == {0}
    assert rollout_runs(fleet) == runs  # not even a record: refused before the rollout began
    assert_lock_free(fleet)


def test_a_raise_without_prometheus_is_refused_before_any_node_changes(fleet: Lab) -> None:
    """Before, the raise went out and the stage's watcher, blind, reverted it after the new code path had
    served unwatched (90 s in production). The off switch needs no Prometheus: PCT=0 still goes through."""
    set_pct_by_hand(fleet, 20)
    files, runs = node_files(fleet), rollout_runs(fleet)
    dead = {"prom_url": "http://127.0.0.1:9"}  # as an inventory's would be (make rollout has no PROM_URL)
    result = fleet.playbook("rollout.yml", "-e", json.dumps({"rollout_pct": 40, **dead}))
    assert result.returncode != 0
    printed = " ".join(result.stdout.split())
    assert "Prometheus at http://127.0.0.1:9 does not answer queries" in printed, output(result)
    assert "failed before its end" in printed and "nothing was changed" in printed, output(result)
    assert node_files(fleet) == files and set(rollout_in_force(fleet).values()) == {20}
    assert rollout_runs(fleet) == runs
    assert_lock_free(fleet)
    off = fleet.playbook("rollout.yml", "-e", json.dumps({"rollout_pct": 0, **dead}))
    assert off.returncode == 0, output(off)
    assert set(rollout_in_force(fleet).values()) == {0}


def test_the_playbook_itself_refuses_a_bad_pct_before_touching_any_node(fleet: Lab) -> None:
    files = node_files(fleet)
    result = fleet.playbook("rollout.yml", "-e", '{"rollout_pct": "101"}')
    assert result.returncode != 0
    assert "rollout_pct=101: 101 is not a whole number from 0 to 100" in result.stdout, output(result)
    assert "nothing was changed" in result.stdout
    assert node_files(fleet) == files
    assert_lock_free(fleet)


def test_pct_0_applies_in_seconds_without_restart_or_binary_change(fleet: Lab) -> None:
    set_pct_by_hand(fleet, 40)
    before, pids = binaries(fleet), node_pids(fleet)
    started = time.monotonic()
    proc = subprocess.Popen(["make", "--no-print-directory", "rollout"], cwd=REPO,
                            env={**fleet.env, "PCT": "0", "STAGES": "", "ROLLOUT_HOLD": ""},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        fleet.wait_until(lambda: set(rollout_in_force(fleet).values()) == {0}, 120,
                         "every node serving with rollout_pct=0")
        took = time.monotonic() - started
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out[-5000:]
    # "In seconds": an Ansible run that writes one key, no watch. Generous for a shared machine.
    assert took < 120, f"rollout_pct=0 took {took:.0f} s to be in force"
    print(f"PCT=0 in force on every node {took:.1f} s after make started")
    assert {node: keys["rollout_pct"] for node, keys in config_keys(fleet).items()} == dict.fromkeys(
        fleet.settings.node_names(), "0")
    assert binaries(fleet) == before  # edge, edge.previous (no config .previous made either)
    assert node_pids(fleet) == pids  # not restarted
    for node in fleet.settings.node_names():
        record = json.loads((fleet.node_dir(node) / "release.json").read_text())
        assert record["config_change"]["set"] == {"rollout_pct": "0"}
        assert record["config_change"]["before"] == {"rollout_pct": "40"}
    assert_lock_free(fleet)


def test_pct_0_with_a_node_down_sets_the_others_and_names_it(fleet: Lab) -> None:
    """The emergency off switch on a fleet with one service stopped: every other node goes to 0 and is said
    to be there, the stopped one is named with why (before, the module crashed on its own message and the end
    said "every node now at rollout_pct=0")."""
    set_pct_by_hand(fleet, 40)
    fleet.supervisorctl("stop", "edge-3")
    result = fleet.playbook("rollout.yml", "-e", json.dumps({"rollout_pct": 0, "rollout_apply_timeout": 3}))
    assert result.returncode != 0
    printed = " ".join(result.stdout.split())
    assert "got multiple values" not in printed, output(result)
    assert ('ROLLOUT FAILED at 0 %: edge-3 failed at "Set the config keys on the node, leaving the binaries and '
            '.previous untouched": rollout_pct=0 is written but not in force after') in printed, output(result)
    assert "the service does not answer (" in printed and "it takes the value when it starts" in printed
    assert "every other node is at rollout_pct=0: fix edge-3, then run make rollout PCT=0 again" in printed
    assert "every node but edge-3 (failed: see above) now at rollout_pct=0" in result.stdout, output(result)
    assert {keys["rollout_pct"] for keys in config_keys(fleet).values()} == {"0"}, "edge-3's written all the same"
    assert_lock_free(fleet)

    # A raise that fails on a node stops at once: no hold watched (an hour in production) before going back to 0.
    raised = fleet.playbook("rollout.yml", "-e", json.dumps(
        {"rollout_pct": 30, "rollout_hold": 600, "rollout_apply_timeout": 3}), timeout=300)
    assert raised.returncode != 0
    printed = " ".join(raised.stdout.split())
    assert 'ROLLOUT STOPPED at 30 % (FAILED): edge-3 failed at "Set the config keys' in printed, output(raised)
    assert "every node but edge-3 is back to rollout_pct=0" in printed, output(raised)
    records = run_dir(raised)
    assert json.loads((records / "result.json").read_text())["failed_nodes"] == ["edge-3"]
    assert not list(records.glob("stage-*")), "a stage was watched after a node failed its write"
    assert {keys["rollout_pct"] for keys in config_keys(fleet).values()} == {"0"}
    assert_lock_free(fleet)
    fleet.supervisorctl("start", "edge-3")  # and it takes it as it starts, as the message says
    fleet.wait_until(lambda: set(rollout_in_force(fleet).values()) == {0}, 30, "every node serving rollout_pct=0")


def test_healthy_rollout_reaches_100_through_its_stages(fleet: Lab) -> None:
    before, pids = binaries(fleet), node_pids(fleet)
    result = rollout(fleet, STAGES="50 100", ROLLOUT_HOLD="9")
    assert result.returncode == 0, output(result)
    assert set(rollout_in_force(fleet).values()) == {100}
    assert {keys["rollout_pct"] for keys in config_keys(fleet).values()} == {"100"}
    assert binaries(fleet) == before and node_pids(fleet) == pids
    records = run_dir(result)
    outcome = json.loads((records / "result.json").read_text())
    assert outcome["ok"] is True and outcome["rollout_pct"] == 100
    assert [(s["pct"], s["verdict"]) for s in outcome["stages"]] == [(50, "promote"), (100, "promote")]
    for stage in ("stage-1-50pct", "stage-2-100pct"):
        verdict = json.loads((records / stage / "verdict.json").read_text())
        assert verdict["verdict"] == "promote"
        assert verdict["canary_selector"] == 'job="edge",variant="new"'
        assert verdict["control_selector"] == 'job="edge",variant="legacy"'
        assert (records / stage / "decisions.jsonl").stat().st_size > 0
    assert "stage 2: 100 % held 9 s -> promote" in result.stdout
    assert_lock_free(fleet)


def test_rollout_with_a_new_only_fault_is_stopped_and_every_node_set_to_0(
        fleet: Lab, artifacts: dict[str, Path], new_only_fault: Path) -> None:
    install_fleet(fleet, new_only_fault, previous=artifacts["v1"])
    before, pids = binaries(fleet), node_pids(fleet)
    result = rollout(fleet, STAGES="50 100", ROLLOUT_HOLD="30")
    assert result.returncode != 0
    assert "ROLLOUT STOPPED at 50 %" in result.stdout, output(result)
    assert set(rollout_in_force(fleet).values()) == {0}
    assert {keys["rollout_pct"] for keys in config_keys(fleet).values()} == {"0"}
    assert binaries(fleet) == before and node_pids(fleet) == pids
    records = run_dir(result)
    assert not (records / "stage-2-100pct").exists(), "the rollout went on to 100 %"
    verdict = json.loads((records / "stage-1-50pct" / "verdict.json").read_text())
    assert verdict["verdict"] == "reverted" and verdict["revert"]["ok"] is True
    decisions = [json.loads(line) for line in
                 (records / "stage-1-50pct" / "decisions.jsonl").read_text().splitlines()]
    assert any("502" in json.dumps(d) and "red" in json.dumps(d) for d in decisions)
    outcome = json.loads((records / "result.json").read_text())
    assert outcome["stopped"]["pct"] == 50 and outcome["rollout_pct"] == 0
    assert_lock_free(fleet)


def test_rollout_in_check_mode_changes_nothing(fleet: Lab) -> None:
    files, pids = node_files(fleet), node_pids(fleet)
    result = rollout(fleet, PCT="30", CHECK="1")
    assert result.returncode == 0, output(result)
    assert "rollout_pct=30" in result.stdout  # the diff it would make
    assert node_files(fleet) == files and node_pids(fleet) == pids
    assert set(rollout_in_force(fleet).values()) == {0}
    assert_lock_free(fleet)
    # Its summary says so, from its record (marked check mode), never that the play stopped early.
    assert "— CHECK MODE, nothing changed:" in result.stdout and "stopped early" not in result.stdout, output(result)
    assert "every node would be at rollout_pct=30" in result.stdout
    assert re.search(r"stage 1: 30 % would be held \d+ s and watched", result.stdout), output(result)
    assert json.loads((record_dir(result.stdout) / "result.json").read_text())["check_mode"] is True
