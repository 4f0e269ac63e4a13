"""release_actions through the edge_release module, against real files in a tmp dir (playbook-level
tests: tests/integration/plugins/test_edge_release.py).

Runs go through AnsibleModule in-process (argument parsing, check mode, exit/fail JSON), except the
interrupted ones: those run the module file as its own process, which the module's test hook
SIGKILLs right after a named step; then a re-run (or a revert) must leave the node consistent with
the last-known-good never lost. Walking every step this way keeps the whole file fast.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import signal
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.edge.canary.plugins.modules import edge_release

from tests.helpers.paths import REPO

MODULE = "ansible_collections.edge.canary.plugins.modules.edge_release"
# The module run as its own process imports edge.canary from this checkout.
COLLECTIONS = REPO / "collections"
PUSH_STEPS = ["binary-staged", "pending", "previous-binary", "previous-config", "binary", "config",
              "record"]
REVERT_STEPS = ["pending", "binary-aside", "binary", "previous-binary", "config", "previous-config",
                "record"]



def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def artifact(name: str) -> bytes:
    return f"#!/bin/sh\necho {name}\n".encode()


V0, V1, V2, V3 = (artifact(n) for n in ("v0", "v1", "v2", "v3"))


@dataclass
class Run:
    rc: int
    result: dict[str, Any]


class Node:
    """One node: install dir, a config file in another directory, a staging dir, the module."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.install = root / "opt" / "edge"
        self.etc = root / "etc" / "edge"
        self.work = root / "work"  # args files; outside the node's directories
        for d in (self.install, self.etc, self.work):
            d.mkdir(parents=True, exist_ok=True)
        self.binary = self.install / "edge"
        self.previous = self.install / "edge.previous"
        self.config = self.etc / "edge.conf"
        self.config_previous = self.etc / "edge.conf.previous"
        self.record_path = self.install / "release.json"
        self.calls = 0

    def base(self) -> dict[str, Any]:
        return {"install_dir": str(self.install), "config_path": str(self.config)}

    def run(self, args: dict[str, Any], check: bool = False, kill_after: str | None = None) -> Run:
        params = {**self.base(), **args, "_ansible_check_mode": check}
        if kill_after is None:
            return self.run_in_process(params)
        self.calls += 1
        args_file = self.work / f"args-{self.calls}.json"
        args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": params}))
        env = {**os.environ, "EDGE_RELEASE_TEST_KILL_AFTER": kill_after, "PYTHONPATH": str(COLLECTIONS)}
        proc = subprocess.run([sys.executable, "-m", MODULE, str(args_file)], env=env,
                              capture_output=True, text=True, timeout=120)
        result = json.loads(proc.stdout) if proc.stdout.strip() else {}
        return Run(proc.returncode, result)

    @staticmethod
    def run_in_process(params: dict[str, Any]) -> Run:
        out = io.StringIO()
        code: Any = 0
        with patch_module_args(params), contextlib.redirect_stdout(out):
            try:
                edge_release.main()
            except SystemExit as exc:
                code = exc.code
        return Run(int(code or 0), json.loads(out.getvalue()))

    def stage(self, data: bytes) -> tuple[str, str]:
        path = self.work / f"staged-{sha(data)[:12]}"
        path.write_bytes(data)
        return str(path), sha(data)

    def push(self, data: bytes, check: bool = False, kill_after: str | None = None,
             **extra: Any) -> Run:
        staged, digest = self.stage(data)
        args = {"state": "pushed", "staged": staged, "sha256": digest, **extra}
        return self.run(args, check=check, kill_after=kill_after)

    def serve(self, good: bool = True) -> Run:
        """The service passed its health check on the current binary (good: the last-known-good)."""
        return self.run({"state": "serving", "good": good})

    def revert(self, check: bool = False, kill_after: str | None = None, **extra: Any) -> Run:
        return self.run({"state": "reverted", **extra}, check=check, kill_after=kill_after)

    def record(self) -> dict[str, Any]:
        return json.loads(self.record_path.read_text())

    def snapshot(self) -> dict[str, tuple[str, str]]:
        """Every file and directory of the node (not the work dir): content hash and mode."""
        out = {}
        for base in (self.install, self.etc):
            for path in sorted([base, *base.rglob("*")]):
                st = path.lstat()
                digest = sha(path.read_bytes()) if path.is_file() else "dir"
                out[str(path)] = (digest, oct(stat.S_IMODE(st.st_mode)))
        return out

    def leftovers(self) -> list[str]:
        return [p.name for base in (self.install, self.etc) for p in base.iterdir()
                if ".edge-release-tmp." in p.name]


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return Node(tmp_path)


def deployed(node: Node) -> Node:
    """v1 current with config rollout_pct=0, v0 and its config as .previous (two real pushes)."""
    assert node.push(V0, version="v0", config={"rollout_pct": 0}).rc == 0
    assert node.serve().rc == 0
    node.config.write_text(node.config.read_text() + "team=edge\n")
    assert node.push(V1, version="v1").rc == 0
    assert node.serve().rc == 0
    assert node.binary.read_bytes() == V1 and node.previous.read_bytes() == V0
    return node


# --- push --------------------------------------------------------------------------------------


def test_first_deploy_is_allowed_says_so_and_creates_no_previous(node: Node) -> None:
    run = node.push(V1, version="v1", config={"rollout_pct": 0}, deploy_id="d1")
    assert run.rc == 0 and run.result["changed"] and run.result["first_deploy"]
    assert "first deploy" in run.result["msg"]
    assert node.binary.read_bytes() == V1 and not node.previous.exists()
    assert not node.config_previous.exists()
    assert stat.S_IMODE(node.binary.stat().st_mode) == 0o755
    record = node.record()
    assert record["current"] == {"sha256": sha(V1), "version": "v1"}
    assert record["previous"] is None and record["action"] == "deploy"
    assert record["deploy_id"] == "d1" and "pending" not in record


def test_push_keeps_current_as_previous_with_mode_and_record(node: Node) -> None:
    deployed(node)
    os.chmod(node.binary, 0o750)
    run = node.push(V2, version="v2", deploy_id="d3", config={"rollout_pct": 10})
    assert run.rc == 0 and run.result["changed"] and not run.result["first_deploy"]
    assert node.binary.read_bytes() == V2 and node.previous.read_bytes() == V1
    assert stat.S_IMODE(node.binary.stat().st_mode) == 0o750
    assert stat.S_IMODE(node.previous.stat().st_mode) == 0o750
    assert node.config.read_text() == "rollout_pct=10\nteam=edge\n"
    assert node.config_previous.read_text() == "rollout_pct=0\nteam=edge\n"
    record = node.record()
    assert record["current"] == {"sha256": sha(V2), "version": "v2"}
    assert record["previous"] == {"sha256": sha(V1), "version": "v1"}
    assert record["config"] == {"rollout_pct": "10", "team": "edge"}
    assert record["deploy_id"] == "d3" and record["time"].endswith("Z")
    assert run.result["current"]["before"] == {"sha256": sha(V1), "version": "v1"}
    assert run.result["previous"]["after"] == {"sha256": sha(V1), "version": "v1"}
    assert run.result["config"]["before"]["rollout_pct"] == "0"
    assert run.result["config"]["after"]["rollout_pct"] == "10"
    assert node.leftovers() == []


def test_same_artifact_twice_changes_nothing_and_keeps_previous(node: Node) -> None:
    deployed(node)
    before = node.snapshot()
    previous_inode = node.previous.stat().st_ino
    run = node.push(V1, version="v1", config={"rollout_pct": 0})
    assert run.rc == 0 and run.result["changed"] is False
    assert node.snapshot() == before
    assert node.previous.stat().st_ino == previous_inode
    assert node.previous.read_bytes() == V0


def test_sha256_mismatch_is_refused_with_nothing_changed(node: Node) -> None:
    deployed(node)
    before = node.snapshot()
    staged, _ = node.stage(V2)
    run = node.run({"state": "pushed", "staged": staged, "sha256": sha(V3)})
    assert run.rc != 0 and run.result["failed"]
    assert "sha256 mismatch" in run.result["msg"] and sha(V3) in run.result["msg"]
    assert node.snapshot() == before


def test_missing_staged_artifact_is_refused(node: Node) -> None:
    deployed(node)
    before = node.snapshot()
    run = node.run({"state": "pushed", "staged": str(node.work / "nope"), "sha256": sha(V2)})
    assert run.rc != 0 and "not on the node" in run.result["msg"]
    assert node.snapshot() == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"sha256": "abc"}, "64-hex-digit"),
        ({"config": {"bad key": 1}}, "not a plain key"),
        ({"binary_name": "../edge"}, "plain file name"),
    ],
)
def test_bad_push_input_is_refused_with_nothing_changed(
    node: Node, args: dict[str, Any], message: str
) -> None:
    deployed(node)
    before = node.snapshot()
    staged, digest = node.stage(V2)
    run = node.run({"state": "pushed", "staged": staged, "sha256": digest, **args})
    assert run.rc != 0 and message in run.result["msg"]
    assert node.snapshot() == before


def test_config_keys_only_change_keeps_other_keys_and_lines(node: Node) -> None:
    deployed(node)
    node.config.write_text("# managed\nrollout_pct=0\nteam=edge\n")
    run = node.push(V1, config={"rollout_pct": 25, "feature_x": "on"})
    assert run.rc == 0 and run.result["changed"]
    assert node.config.read_text() == "# managed\nrollout_pct=25\nteam=edge\nfeature_x=on\n"
    assert node.binary.read_bytes() == V1
    # A config-only change is not a new release: .previous keeps the last-known-good pair (issue 15.1).
    assert node.previous.read_bytes() == V0
    assert node.config_previous.read_text() == "rollout_pct=0\nteam=edge\n"


def test_keys_added_to_a_node_without_config_file_are_taken_away_by_revert(node: Node) -> None:
    assert node.push(V1).rc == 0  # no config keys: no config file
    assert node.serve().rc == 0
    assert not node.config.exists()
    assert node.push(V2, config={"rollout_pct": 10}).rc == 0
    assert node.config.read_text() == "rollout_pct=10\n"
    assert node.config_previous.read_text() == ""
    assert node.revert().rc == 0
    assert node.binary.read_bytes() == V1 and node.config.read_text() == ""
    assert (node.etc / "edge.conf.rolled-back").read_text() == "rollout_pct=10\n"


def test_keys_not_owned_by_the_module_survive_push_and_revert(node: Node) -> None:
    deployed(node)
    record = node.record()
    record["owner_note"] = "kept"
    node.record_path.write_text(json.dumps(record))
    serving = node.run({"state": "serving"})
    assert serving.rc == 0 and serving.result["record"]["owner_note"] == "kept"
    assert node.record()["serving_sha256"] == sha(V1)
    assert node.run({"state": "serving"}).result["changed"] is False
    assert node.push(V2).rc == 0
    assert node.revert().rc == 0
    final = node.record()
    assert final["serving_sha256"] == sha(V1) and final["owner_note"] == "kept"
    assert final["action"] == "rollback"


# --- revert ------------------------------------------------------------------------------------


def test_revert_restores_previous_and_keeps_the_bad_binary_aside(node: Node) -> None:
    deployed(node)
    assert node.push(V2, version="v2", config={"rollout_pct": 10}).rc == 0
    run = node.revert(deploy_id="r1")
    assert run.rc == 0 and run.result["changed"] and run.result["action"] == "rollback"
    assert node.binary.read_bytes() == V1 and node.previous.read_bytes() == V1
    assert (node.install / "edge.rolled-back").read_bytes() == V2
    assert node.config.read_text() == "rollout_pct=0\nteam=edge\n"
    assert node.config_previous.read_text() == node.config.read_text()
    record = node.record()
    assert record["current"] == record["previous"] == {"sha256": sha(V1), "version": "v1"}
    assert record["rolled_back"]["sha256"] == sha(V2) and record["rolled_back"]["version"] == "v2"
    assert record["deploy_id"] == "r1"


def test_each_write_that_changes_config_keys_notes_it_for_make_status(node: Node) -> None:
    deployed(node)
    assert node.push(V2, version="v2", config={"rollout_pct": 10, "feature_x": "on"}, deploy_id="d2").rc == 0
    change = node.record()["config_change"]
    assert change["set"] == {"rollout_pct": "10", "feature_x": "on"} and change["deploy_id"] == "d2"
    assert change["before"] == {"rollout_pct": "0", "feature_x": None}
    # A rollout since the deploy: the rollback's restored config takes it back, and the record says so.
    assert node.run({"state": "configured", "config": {"rollout_pct": 40}}).rc == 0
    revert = node.revert(deploy_id="r1")
    change = node.record()["config_change"]
    assert revert.rc == 0 and revert.result["config_change"] == change
    assert change["set"] == {"rollout_pct": "0", "feature_x": None} and change["deploy_id"] == "r1"
    assert change["before"] == {"rollout_pct": "40", "feature_x": "on"}
    assert node.revert().result["config_change"] is None  # nothing left to restore
    # A push that leaves the keys as they are keeps the last change's note.
    assert node.push(V2, version="v2", deploy_id="d3").rc == 0
    assert node.record()["config_change"]["deploy_id"] == "r1"


def test_second_revert_is_a_no_op_never_a_swap_back(node: Node) -> None:
    deployed(node)
    assert node.push(V2).rc == 0
    assert node.revert().rc == 0
    before = node.snapshot()
    run = node.revert()
    assert run.rc == 0 and run.result["changed"] is False
    assert node.snapshot() == before and node.binary.read_bytes() == V1


def test_revert_without_previous_is_refused_naming_path_and_rollback_binary(node: Node) -> None:
    assert node.push(V1).rc == 0  # first deploy: no .previous
    before = node.snapshot()
    run = node.revert()
    assert run.rc != 0
    assert str(node.previous) in run.result["msg"] and "ROLLBACK_BINARY" in run.result["msg"]
    assert node.snapshot() == before


def test_revert_to_a_rollback_binary_without_previous(node: Node) -> None:
    assert node.push(V1, version="v1").rc == 0
    staged, digest = node.stage(V0)
    run = node.revert(rollback_binary=staged, sha256=digest, version="v0")
    assert run.rc == 0 and run.result["changed"]
    assert node.binary.read_bytes() == V0 and node.previous.read_bytes() == V0
    assert (node.install / "edge.rolled-back").read_bytes() == V1
    assert node.record()["current"] == {"sha256": sha(V0), "version": "v0"}
    assert node.revert().result["changed"] is False


def test_rollback_binary_with_wrong_sha256_is_refused(node: Node) -> None:
    assert node.push(V1).rc == 0
    before = node.snapshot()
    staged, _ = node.stage(V0)
    run = node.revert(rollback_binary=staged, sha256=sha(V3))
    assert run.rc != 0 and "sha256 mismatch" in run.result["msg"]
    assert node.snapshot() == before


# --- check mode --------------------------------------------------------------------------------


def test_check_mode_push_changes_nothing_and_reports_before_after(node: Node) -> None:
    deployed(node)
    before = node.snapshot()
    run = node.push(V2, check=True, version="v2", config={"rollout_pct": 5})
    assert run.rc == 0 and run.result["changed"]
    assert run.result["current"]["before"]["sha256"] == sha(V1)
    assert run.result["current"]["after"]["sha256"] == sha(V2)
    assert run.result["previous"]["after"]["sha256"] == sha(V1)
    assert run.result["config"]["after"]["rollout_pct"] == "5"
    assert node.snapshot() == before


def test_check_mode_push_without_staged_copy_still_reports(node: Node) -> None:
    deployed(node)
    before = node.snapshot()
    run = node.run({"state": "pushed", "staged": str(node.work / "not-copied"),
                    "sha256": sha(V2)}, check=True)
    assert run.rc == 0 and run.result["changed"] and "not verified" in run.result["msg"]
    assert node.snapshot() == before


# In check mode the action plugin copies nothing and hands src on: the module notes it and plans anyway.
@pytest.mark.parametrize("state", ["pushed", "reverted"])
def test_check_mode_with_src_not_copied_reports_what_would_change(node: Node, state: str) -> None:
    deployed(node)
    before = node.snapshot()
    run = node.run({"state": state, "src": "/on/the/control/host/edge-v3", "sha256": sha(V3)}, check=True)
    assert run.rc == 0 and run.result["changed"], run.result
    assert "src not copied to the node in check mode" in run.result["msg"]
    assert run.result["current"]["after"]["sha256"] == sha(V3)
    assert node.snapshot() == before


def test_a_push_with_neither_staged_nor_src_is_refused(node: Node) -> None:
    deployed(node)
    before = node.snapshot()
    run = node.run({"state": "pushed", "sha256": sha(V2)})
    assert run.rc != 0 and "needs src (the artifact on the control host) or staged" in run.result["msg"]
    assert node.snapshot() == before


def test_check_mode_revert_changes_nothing(node: Node) -> None:
    deployed(node)
    before = node.snapshot()
    run = node.revert(check=True)
    assert run.rc == 0 and run.result["changed"]
    assert run.result["current"]["after"]["sha256"] == sha(V0)
    assert node.snapshot() == before


# --- inspect and a bad record ------------------------------------------------------------------


def test_inspect_reports_current_previous_config_and_record(node: Node) -> None:
    deployed(node)
    run = node.run({"state": "inspected"})
    assert run.rc == 0 and run.result["changed"] is False
    assert run.result["current"]["sha256"] == sha(V1) and run.result["current"]["version"] == "v1"
    assert run.result["previous"]["sha256"] == sha(V0) and run.result["has_previous"]
    assert run.result["config"] == {"rollout_pct": "0", "team": "edge"}
    assert run.result["record"]["action"] == "deploy" and run.result["pending"] is None


def test_corrupt_record_is_refused_by_push_and_reported_by_inspect(node: Node) -> None:
    deployed(node)
    node.record_path.write_text("{not json")
    before = node.snapshot()
    run = node.push(V2)
    assert run.rc != 0 and "not valid JSON" in run.result["msg"]
    assert node.snapshot() == before
    inspect = node.run({"state": "inspected"})
    assert inspect.rc == 0 and "not valid JSON" in inspect.result["record_error"]


# --- interrupted at every step -----------------------------------------------------------------


def assert_last_known_good_kept(node: Node) -> None:
    """Right after a kill: v1 is current or .previous, and no file is partial."""
    on_disk = {node.binary.read_bytes(), node.previous.read_bytes()}
    assert V1 in on_disk
    assert on_disk <= {V0, V1, V2}


@pytest.mark.parametrize("step", PUSH_STEPS)
def test_push_killed_after_each_step_then_rerun_ends_consistent(node: Node, step: str) -> None:
    deployed(node)
    killed = node.push(V2, version="v2", config={"rollout_pct": 10}, kill_after=step)
    assert killed.rc == -signal.SIGKILL
    assert_last_known_good_kept(node)
    rerun = node.push(V2, version="v2", config={"rollout_pct": 10})
    assert rerun.rc == 0, rerun.result
    assert node.binary.read_bytes() == V2 and node.previous.read_bytes() == V1
    assert node.config.read_text() == "rollout_pct=10\nteam=edge\n"
    assert node.config_previous.read_text() == "rollout_pct=0\nteam=edge\n"
    record = node.record()
    assert "pending" not in record
    assert record["current"] == {"sha256": sha(V2), "version": "v2"}
    assert record["previous"] == {"sha256": sha(V1), "version": "v1"}
    assert node.leftovers() == []
    assert node.push(V2, config={"rollout_pct": 10}).result["changed"] is False


def test_push_killed_before_its_intent_left_the_node_untouched_but_a_temp_file(node: Node) -> None:
    deployed(node)
    before = node.snapshot()
    assert node.push(V2, kill_after="binary-staged").rc == -signal.SIGKILL
    assert len(node.leftovers()) == 1
    after = node.snapshot()
    assert {k: v for k, v in after.items() if ".edge-release-tmp." not in k} == before
    assert node.push(V2).rc == 0  # any writing run sweeps the stale temp
    assert node.leftovers() == []


@pytest.mark.parametrize("step", PUSH_STEPS[1:])  # from the intent on: the push has started
def test_push_killed_after_each_step_then_revert_returns_to_v1(node: Node, step: str) -> None:
    deployed(node)
    assert node.push(V2, config={"rollout_pct": 10}, kill_after=step).rc == -signal.SIGKILL
    run = node.revert()
    assert run.rc == 0, run.result
    assert node.binary.read_bytes() == V1 and node.previous.read_bytes() == V1
    assert node.config.read_text() == "rollout_pct=0\nteam=edge\n"
    assert node.config_previous.read_text() == node.config.read_text()
    assert "pending" not in node.record()
    assert node.revert().result["changed"] is False


@pytest.mark.parametrize("step", ["binary", "config"])
def test_push_killed_then_another_artifact_keeps_the_starting_release(
    node: Node, step: str
) -> None:
    deployed(node)
    assert node.push(V2, config={"rollout_pct": 10}, kill_after=step).rc == -signal.SIGKILL
    assert node.push(V3, version="v3").rc == 0
    assert node.binary.read_bytes() == V3 and node.previous.read_bytes() == V1
    assert node.record()["previous"] == {"sha256": sha(V1), "version": "v1"}


@pytest.mark.parametrize("step", REVERT_STEPS)
def test_revert_killed_after_each_step_then_rerun_ends_consistent(node: Node, step: str) -> None:
    deployed(node)
    assert node.push(V2, version="v2", config={"rollout_pct": 10}).rc == 0
    assert node.revert(kill_after=step).rc == -signal.SIGKILL
    assert_last_known_good_kept(node)
    run = node.revert()
    assert run.rc == 0, run.result
    assert node.binary.read_bytes() == V1 and node.previous.read_bytes() == V1
    assert (node.install / "edge.rolled-back").read_bytes() == V2
    assert node.config.read_text() == "rollout_pct=0\nteam=edge\n"
    assert node.record()["current"] == {"sha256": sha(V1), "version": "v1"}
    assert node.leftovers() == []
    assert node.revert().result["changed"] is False


def test_push_is_refused_while_an_interrupted_rollback_is_unfinished(node: Node) -> None:
    deployed(node)
    assert node.push(V2).rc == 0
    assert node.revert(kill_after="binary").rc == -signal.SIGKILL
    before = node.snapshot()
    run = node.push(V3)
    assert run.rc != 0 and "re-run the rollback" in run.result["msg"]
    assert node.snapshot() == before
    assert node.revert().rc == 0 and node.push(V3).rc == 0
    assert node.binary.read_bytes() == V3 and node.previous.read_bytes() == V1


@pytest.mark.parametrize("step", ["previous-binary", "binary", "config"])
def test_push_interrupted_by_sigint_then_rerun_ends_consistent(node: Node, step: str) -> None:
    deployed(node)
    interrupted = node.push(V2, config={"rollout_pct": 10}, kill_after=f"{step}:INT")
    assert interrupted.rc != 0
    assert_last_known_good_kept(node)
    assert node.push(V2, config={"rollout_pct": 10}).rc == 0
    assert node.binary.read_bytes() == V2 and node.previous.read_bytes() == V1
    assert node.config.read_text() == "rollout_pct=10\nteam=edge\n"
    assert node.leftovers() == []


def test_config_given_as_a_key_value_string_like_the_make_variable(node: Node) -> None:
    deployed(node)
    run = node.push(V1, config="rollout_pct=10 feature_x=on")
    assert run.rc == 0 and run.result["changed"]
    assert node.config.read_text() == "rollout_pct=10\nteam=edge\nfeature_x=on\n"
