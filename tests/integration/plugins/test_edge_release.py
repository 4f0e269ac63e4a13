"""The edge_release role through real ansible-playbook runs on two local "nodes" in a tmp dir.

Each node is a host with ansible_connection=local and its own install dir; the artifacts are small
executable scripts. The playbook includes one task file of the role, then prints the module's
result, which the test reads from the oneline callback's JSON lines. Ansible runs are the slow
part: tests use both nodes where a fleet matters and one (--limit) elsewhere; the module's
every-step behaviour is covered in tests/unit/plugins/module_utils/test_release_actions.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.paths import REPO

ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
HOSTS = ("n1", "n2")

PLAYBOOK = """\
- name: Exercise the edge_release role
  hosts: all
  gather_facts: false
  tasks:
    - name: Run one task file of the role
      ansible.builtin.include_role:
        name: edge.canary.edge_release
        tasks_from: "{{ test_tasks }}"
    - name: Print the module result on one line for the test
      ansible.builtin.debug:
        msg:
          test_result: "{{ lookup('vars', test_register) }}"
"""

REGISTER = {"push": "edge_release_result", "revert": "edge_release_result",
            "inspect": "edge_release_inspect", "serving": "edge_release_serving_result",
            "configure": "edge_release_configure_result"}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def script(name: str) -> bytes:
    return f"#!/bin/sh\necho {name}\n".encode()


V0, V1, V2, V3 = (script(n) for n in ("v0", "v1", "v2", "v3"))


def module_results(stdout: str) -> dict[str, dict[str, Any]]:
    """Per host, the result the playbook's last task printed ("host | SUCCESS => {json}")."""
    results = {}
    for line in stdout.splitlines():
        host, sep, payload = line.partition(" => ")
        if not sep or not payload.startswith("{"):
            continue
        msg = json.loads(payload).get("msg")
        if isinstance(msg, dict) and "test_result" in msg:
            results[host.split(" | ")[0].strip()] = msg["test_result"]
    return results


@dataclass
class Play:
    rc: int
    output: str
    results: dict[str, dict[str, Any]]


class Fleet:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.artifacts = root / "artifacts"
        self.artifacts.mkdir()
        for name, data in {"v0": V0, "v1": V1, "v2": V2, "v3": V3}.items():
            path = self.artifacts / name
            path.write_bytes(data)
            path.chmod(0o755)
        self.nodes = {h: root / "nodes" / h for h in HOSTS}
        # n1 keeps its config beside the binary (the lab's layout), n2 in an etc dir of its own.
        self.configs = {"n1": self.nodes["n1"] / "edge.conf",
                        "n2": root / "etc" / "n2" / "edge.conf"}
        hosts = {
            h: {
                "ansible_connection": "local",
                "ansible_python_interpreter": sys.executable,
                "edge_install_dir": str(self.nodes[h]),
                "edge_config_path": str(self.configs[h]),
            }
            for h in HOSTS
        }
        (root / "inventory.json").write_text(json.dumps({"all": {"hosts": hosts}}))
        (root / "play.yml").write_text(PLAYBOOK)
        (root / "ansible.cfg").write_text(
            "[defaults]\n"
            f"collections_path = {REPO / 'collections'}\n"
            f"local_tmp = {root / 'ansible-tmp'}\n"
            "retry_files_enabled = False\n"
            "interpreter_python = auto_silent\n"
            "nocolor = True\n"
            "[connection]\npipelining = True\n"
        )
        self.runs = 0

    def play(self, tasks: str, extra: dict[str, Any] | None = None, check: bool = False,
             env: dict[str, str] | None = None, hosts: tuple[str, ...] = HOSTS) -> Play:
        self.runs += 1
        vars_file = self.root / f"vars-{self.runs}.json"
        vars_file.write_text(json.dumps({"test_tasks": tasks, "test_register": REGISTER[tasks],
                                         **(extra or {})}))
        cmd = [str(ANSIBLE_PLAYBOOK), "-i", str(self.root / "inventory.json"),
               str(self.root / "play.yml"), "-e", f"@{vars_file}", "--limit", ",".join(hosts)]
        if check:
            cmd.append("--check")
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
        full_env.pop("EDGE_RELEASE_TEST_KILL_AFTER", None)
        full_env.update({"ANSIBLE_CONFIG": str(self.root / "ansible.cfg"),
                         "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.oneline", **(env or {})})
        proc = subprocess.run(cmd, cwd=self.root, env=full_env, capture_output=True, text=True,
                              timeout=300)
        return Play(proc.returncode, proc.stdout + proc.stderr, module_results(proc.stdout))

    def push(self, artifact: str, check: bool = False, env: dict[str, str] | None = None,
             hosts: tuple[str, ...] = HOSTS, **extra: object) -> Play:
        return self.play("push", {"edge_release_artifact": str(self.artifacts / artifact),
                                  **extra}, check=check, env=env, hosts=hosts)

    def install(self, host: str, current: bytes | None, previous: bytes | None = None,
                config: str | None = None, config_previous: str | None = None) -> None:
        """Put a node in a known state directly, with a matching release record."""
        node, conf = self.nodes[host], self.configs[host]
        node.mkdir(parents=True, exist_ok=True)
        conf.parent.mkdir(parents=True, exist_ok=True)
        versions = {sha(V0): "v0", sha(V1): "v1", sha(V2): "v2", sha(V3): "v3"}
        record: dict[str, Any] = {}
        for name, data, key in ((node / "edge", current, "current"),
                                (node / "edge.previous", previous, "previous")):
            if data is not None:
                name.write_bytes(data)
                name.chmod(0o755)
                record[key] = {"sha256": sha(data), "version": versions[sha(data)]}
        if current is not None:  # a known state: the current binary served healthily
            record["good_sha256"] = sha(current)
        for path, text in ((conf, config), (Path(f"{conf}.previous"), config_previous)):
            if text is not None:
                path.write_text(text)
        (node / "release.json").write_text(json.dumps(record))

    def snapshot(self) -> dict[str, tuple[str, str]]:
        """Full listing of every node's files and directories with content hash and mode."""
        out = {}
        for base in [self.root / "nodes", self.root / "etc"]:
            if not base.exists():
                continue
            for path in sorted([base, *base.rglob("*")]):
                digest = sha(path.read_bytes()) if path.is_file() else "dir"
                mode = oct(stat.S_IMODE(path.stat().st_mode))
                out[str(path.relative_to(self.root))] = (digest, mode)
        return out

    def read(self, host: str, name: str) -> bytes:
        return (self.nodes[host] / name).read_bytes()

    def record(self, host: str) -> dict[str, Any]:
        return json.loads((self.nodes[host] / "release.json").read_text())


@pytest.fixture
def fleet(tmp_path: Path) -> Fleet:
    assert ANSIBLE_PLAYBOOK.exists(), f"{ANSIBLE_PLAYBOOK} missing: run from the project venv"
    return Fleet(tmp_path)


def test_first_deploy_then_v2_keeps_v1_as_previous_then_same_artifact_changes_nothing(
    fleet: Fleet,
) -> None:
    first = fleet.push("v1", edge_release_version="v1", edge_release_config={"rollout_pct": 0})
    assert first.rc == 0, first.output
    for host in HOSTS:
        assert first.results[host]["first_deploy"] is True
        assert "first deploy" in first.results[host]["msg"]
        assert fleet.read(host, "edge") == V1
        assert not (fleet.nodes[host] / "edge.previous").exists()
        assert not (fleet.nodes[host] / ".staging").exists()
    assert fleet.play("serving").rc == 0  # v1 served healthily: the last-known-good a push keeps

    (fleet.nodes["n1"] / "edge").chmod(0o750)
    fleet.configs["n1"].write_text(fleet.configs["n1"].read_text() + "team=edge\n")
    second = fleet.push("v2", edge_release_version="v2", edge_release_deploy_id="deploy-2",
                        edge_release_config={"rollout_pct": 10})
    assert second.rc == 0, second.output
    for host in HOSTS:
        assert fleet.read(host, "edge") == V2 and fleet.read(host, "edge.previous") == V1
        record = fleet.record(host)
        assert record["current"] == {"sha256": sha(V2), "version": "v2"}
        assert record["previous"] == {"sha256": sha(V1), "version": "v1"}
        assert record["action"] == "deploy" and record["deploy_id"] == "deploy-2"
        assert second.results[host]["changed"] is True
        assert not (fleet.nodes[host] / ".staging").exists()
    assert stat.S_IMODE((fleet.nodes["n1"] / "edge").stat().st_mode) == 0o750
    assert stat.S_IMODE((fleet.nodes["n2"] / "edge").stat().st_mode) == 0o755
    assert fleet.configs["n1"].read_text() == "rollout_pct=10\nteam=edge\n"
    assert Path(f"{fleet.configs['n1']}.previous").read_text() == "rollout_pct=0\nteam=edge\n"
    assert fleet.configs["n2"].read_text() == "rollout_pct=10\n"

    before = fleet.snapshot()
    again = fleet.push("v2", edge_release_version="v2", edge_release_config={"rollout_pct": 10})
    assert again.rc == 0, again.output
    assert all(again.results[h]["changed"] is False for h in HOSTS)
    assert fleet.snapshot() == before
    assert all(fleet.read(h, "edge.previous") == V1 for h in HOSTS)


ONE = ("n1",)


@pytest.mark.parametrize("problem", ["sha256 mismatch", "missing artifact"])
def test_bad_artifact_is_refused_with_nothing_changed(fleet: Fleet, problem: str) -> None:
    fleet.install("n1", V1, V0, "rollout_pct=0\n", "rollout_pct=0\n")
    before = fleet.snapshot()
    if problem == "sha256 mismatch":
        play = fleet.push("v2", edge_release_sha256=sha(V3), hosts=ONE)
        assert "sha256 mismatch" in play.output
    else:
        play = fleet.push("no-such-file", hosts=ONE)
        assert "is not a readable file on the control host" in play.output
    assert play.rc != 0
    assert fleet.snapshot() == before


def test_revert_restores_v1_keeps_v2_aside_and_a_second_revert_is_a_no_op(fleet: Fleet) -> None:
    for host in HOSTS:
        fleet.install(host, V2, V1, "rollout_pct=10\n", "rollout_pct=0\n")
    play = fleet.play("revert", {"edge_release_deploy_id": "rollback-1"})
    assert play.rc == 0, play.output
    for host in HOSTS:
        assert fleet.read(host, "edge") == V1 and fleet.read(host, "edge.previous") == V1
        assert fleet.read(host, "edge.rolled-back") == V2
        assert fleet.configs[host].read_text() == "rollout_pct=0\n"
        record = fleet.record(host)
        assert record["action"] == "rollback" and record["deploy_id"] == "rollback-1"
        assert record["current"] == {"sha256": sha(V1), "version": "v1"}
        assert record["rolled_back"]["sha256"] == sha(V2)

    before = fleet.snapshot()
    again = fleet.play("revert")
    assert again.rc == 0, again.output
    assert all(again.results[h]["changed"] is False for h in HOSTS)
    assert fleet.snapshot() == before


def test_a_release_that_never_served_never_becomes_previous(fleet: Fleet) -> None:
    """Issue 15 item 2: v1 serves, v2 is pushed but fails its health check (no `serving` after it),
    v3 is pushed: .previous stays v1, and a revert lands on v1, never on the unproven v2."""
    fleet.install("n1", V1, V0, "rollout_pct=0\n", "rollout_pct=0\n")
    v2 = fleet.push("v2", edge_release_version="v2", hosts=ONE)
    assert v2.rc == 0, v2.output
    assert fleet.read("n1", "edge") == V2 and fleet.read("n1", "edge.previous") == V1
    # v2's health check fails here: the play stops before `serving`, so v2 never served.
    v3 = fleet.push("v3", edge_release_version="v3", hosts=ONE)
    assert v3.rc == 0, v3.output
    assert fleet.read("n1", "edge") == V3
    assert fleet.read("n1", "edge.previous") == V1
    assert fleet.record("n1")["good_sha256"] == sha(V1)

    revert = fleet.play("revert", hosts=ONE)
    assert revert.rc == 0, revert.output
    assert fleet.read("n1", "edge") == V1
    assert fleet.record("n1")["current"] == {"sha256": sha(V1), "version": "v1"}


def test_revert_without_previous_is_refused_and_rollback_binary_allows_it(fleet: Fleet) -> None:
    fleet.install("n1", V2, None, "rollout_pct=10\n")
    before = fleet.snapshot()
    refused = fleet.play("revert", hosts=ONE)
    assert refused.rc != 0
    assert f"{fleet.nodes['n1']}/edge.previous" in refused.output
    assert "ROLLBACK_BINARY" in refused.output
    assert fleet.snapshot() == before

    play = fleet.play("revert", {"edge_release_rollback_binary": str(fleet.artifacts / "v1"),
                                 "edge_release_rollback_version": "v1"}, hosts=ONE)
    assert play.rc == 0, play.output
    assert fleet.read("n1", "edge") == V1 and fleet.read("n1", "edge.previous") == V1
    assert fleet.read("n1", "edge.rolled-back") == V2
    assert fleet.record("n1")["current"] == {"sha256": sha(V1), "version": "v1"}
    assert not (fleet.nodes["n1"] / ".staging").exists()


def test_a_rollback_binary_that_is_not_a_file_is_refused_by_the_plugin_with_nothing_changed(fleet: Fleet) -> None:
    """revert.yml has no assert task of its own for it (one task result fewer per node): the action plugin
    refuses it before the copy, naming it as the rollback binary."""
    fleet.install("n1", V2, V1, "rollout_pct=10\n", "rollout_pct=0\n")
    before = fleet.snapshot()
    missing = fleet.artifacts / "no-such-binary"
    play = fleet.play("revert", {"edge_release_rollback_binary": str(missing)}, hosts=ONE)
    assert play.rc != 0
    assert (f"edge_release: the rollback binary '{missing}' (src) is not a readable file on the control host; "
            "give a known-good edge binary") in play.output, play.output[-3000:]
    assert fleet.snapshot() == before
    assert not (fleet.nodes["n1"] / ".staging").exists()


def test_check_mode_changes_nothing_and_reports_what_would_change(fleet: Fleet) -> None:
    fleet.install("n1", V1, V0, "rollout_pct=0\n", "rollout_pct=0\n")
    before = fleet.snapshot()

    push = fleet.push("v2", edge_release_config={"rollout_pct": 50}, check=True, hosts=ONE)
    assert push.rc == 0, push.output
    result = push.results["n1"]
    assert result["changed"] is True
    assert result["current"]["before"]["sha256"] == sha(V1)
    assert result["current"]["after"]["sha256"] == sha(V2)
    assert result["previous"]["after"]["sha256"] == sha(V1)
    assert result["config"]["after"]["rollout_pct"] == "50"
    assert fleet.snapshot() == before

    revert = fleet.play("revert", {"edge_release_rollback_binary": str(fleet.artifacts / "v3")},
                        check=True, hosts=ONE)
    assert revert.rc == 0, revert.output
    assert revert.results["n1"]["current"]["after"]["sha256"] == sha(V3)
    assert fleet.snapshot() == before


def test_push_killed_mid_way_then_rerun_ends_consistent_with_v1_kept(fleet: Fleet) -> None:
    two = ("n2",)  # config in a directory of its own
    fleet.install("n2", V1, V0, "rollout_pct=0\n", "rollout_pct=0\n")
    args: dict[str, Any] = {"edge_release_version": "v2", "edge_release_sha256": sha(V2),
                            "edge_release_config": {"rollout_pct": 10}}
    killed = fleet.push("v2", env={"EDGE_RELEASE_TEST_KILL_AFTER": "binary"}, hosts=two, **args)
    assert killed.rc != 0
    # killed after the rename, before the config and the record
    assert fleet.read("n2", "edge") == V2 and fleet.read("n2", "edge.previous") == V1
    assert fleet.configs["n2"].read_text() == "rollout_pct=0\n"
    assert "pending" in fleet.record("n2")

    rerun = fleet.push("v2", hosts=two, **args)
    assert rerun.rc == 0, rerun.output
    assert rerun.results["n2"]["resumed"] is True
    assert fleet.read("n2", "edge") == V2 and fleet.read("n2", "edge.previous") == V1
    assert fleet.configs["n2"].read_text() == "rollout_pct=10\n"
    assert Path(f"{fleet.configs['n2']}.previous").read_text() == "rollout_pct=0\n"
    record = fleet.record("n2")
    assert "pending" not in record
    assert record["previous"] == {"sha256": sha(V1), "version": "v1"}


def test_inspect_and_serving_report_and_record_the_node_state(fleet: Fleet) -> None:
    fleet.install("n1", V2, V1, "rollout_pct=10\n")
    serving = fleet.play("serving", hosts=ONE)
    assert serving.rc == 0, serving.output
    assert fleet.record("n1")["serving_sha256"] == sha(V2)
    inspect = fleet.play("inspect", hosts=ONE)
    assert inspect.rc == 0, inspect.output
    result = inspect.results["n1"]
    assert result["current"]["sha256"] == sha(V2) and result["current"]["version"] == "v2"
    assert result["previous"]["sha256"] == sha(V1) and result["has_previous"] is True
    assert result["config"] == {"rollout_pct": "10"} and result["serving_current"] is True


# No task of their own per node checks the paths: the module does, and for push and a revert to a rollback
# binary the action plugin, before it copies under the install dir.
@pytest.mark.parametrize("tasks", ["inspect", "serving", "configure", "push", "revert"])
def test_a_relative_install_dir_is_refused_with_nothing_changed(fleet: Fleet, tasks: str) -> None:
    fleet.install("n1", V1, V0, "rollout_pct=0\n")
    before = fleet.snapshot()
    bad = fleet.play(tasks, {"edge_install_dir": "nodes/n1", "edge_release_config": {"rollout_pct": "5"},
                             "edge_release_artifact": str(fleet.artifacts / "v2"),
                             "edge_release_rollback_binary": str(fleet.artifacts / "v0")}, hosts=ONE)
    assert bad.rc != 0
    assert "install_dir 'nodes/n1' must be an absolute path" in bad.output, bad.output[-3000:]
    assert fleet.snapshot() == before
    assert not (fleet.root / "nodes" / "nodes").exists()


@pytest.mark.parametrize(("extra", "message"), [
    ({"edge_binary_name": "../edge"}, "binary_name '../edge' must be a plain file name"),
    ({"edge_config_path": "conf/edge.conf"}, "config_path 'conf/edge.conf' must be an absolute path"),
])
@pytest.mark.parametrize("tasks", ["push", "revert"])
def test_the_action_plugin_refuses_bad_node_paths_before_it_copies(
        fleet: Fleet, tasks: str, extra: dict[str, str], message: str) -> None:
    fleet.install("n1", V1, V0, "rollout_pct=0\n")
    before = fleet.snapshot()
    bad = fleet.play(tasks, {**extra, "edge_release_artifact": str(fleet.artifacts / "v2"),
                             "edge_release_rollback_binary": str(fleet.artifacts / "v0")}, hosts=ONE)
    assert bad.rc != 0
    assert f"edge_release: {message}; nothing was copied to the node" in bad.output, bad.output[-3000:]
    assert fleet.snapshot() == before
    assert not (fleet.nodes["n1"] / ".staging").exists()


def test_config_keys_on_a_node_without_a_config_file_are_refused_with_nothing_changed(fleet: Fleet) -> None:
    fleet.install("n1", V1, V0, "rollout_pct=0\n")
    before = fleet.snapshot()
    bad = fleet.play("configure", {"edge_config_path": "", "edge_release_config": {"rollout_pct": "5"}}, hosts=ONE)
    assert bad.rc != 0
    assert "no config_path; set edge_config_path" in bad.output, bad.output[-3000:]
    assert fleet.snapshot() == before


# The action plugin copies the artifact itself: no copy or stat module run before the install.
def test_a_push_copies_through_the_staging_folder_in_one_module_run_and_leaves_nothing_behind(
        fleet: Fleet) -> None:
    fleet.install("n1", V1, V0, "rollout_pct=0\n")
    play = fleet.push("v2", hosts=ONE, env={"ANSIBLE_VERBOSITY": "3"})  # -vvv shows each command run
    assert play.rc == 0, play.output
    python_runs = [line for line in play.output.splitlines() if line.startswith("<n1> EXEC") and "python" in line]
    assert len(python_runs) == 1, python_runs
    assert fleet.read("n1", "edge") == V2 and fleet.read("n1", "edge.previous") == V1
    assert not (fleet.nodes["n1"] / ".staging").exists()
    # the sha256 the node verified was computed on the control host, the task gave none
    assert play.results["n1"]["current"]["after"]["sha256"] == sha(V2)


def test_a_staging_folder_that_cannot_be_made_fails_the_push_naming_it_then_a_rerun_pushes(
        fleet: Fleet) -> None:
    fleet.install("n1", V1, V0, "rollout_pct=0\n")
    before = fleet.snapshot()
    (fleet.nodes["n1"] / ".staging").write_text("in the way\n")
    play = fleet.push("v2", hosts=ONE)
    assert play.rc != 0
    assert f"cannot make the staging folder {fleet.nodes['n1']}/.staging" in play.output, play.output[-3000:]
    assert "UNREACHABLE" not in play.output  # a failed task: the deploy's rescue runs for it
    assert fleet.snapshot() == before  # the file in the way is gone, the node's files untouched
    rerun = fleet.push("v2", hosts=ONE)
    assert rerun.rc == 0, rerun.output
    assert fleet.read("n1", "edge") == V2
