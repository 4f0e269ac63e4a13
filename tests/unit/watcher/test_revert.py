"""Revert actions: the ansible-runner call's arguments, a real command, shadow mode."""

from __future__ import annotations

import os
import shlex
import stat
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from watcher.config import load_settings
from watcher.revert import AnsibleRevert, CommandRevert, ShadowRevert, build_reverter


class FakeRunner:
    def __init__(self, status: str = "successful", rc: int = 0, raises: bool = False) -> None:
        self.calls: list[dict[str, Any]] = []
        self.status, self.rc, self.raises = status, rc, raises
        self.dir_existed = False

    def __call__(self, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        self.dir_existed = Path(kwargs["private_data_dir"]).is_dir()
        if self.raises:
            raise RuntimeError("bad private data dir")
        out = Path(kwargs["private_data_dir"]) / "stdout"
        out.write_text("PLAY RECAP edge-2 ok=3 changed=1\n")
        return SimpleNamespace(status=self.status, rc=self.rc, stdout=out.open())


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "ansible.cfg").write_text("[defaults]\n")
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "rollback.yml").write_text("- hosts: all\n  tasks: []\n")
    (tmp_path / "lab.hosts.yml").write_text("all: {}\n")
    return tmp_path


def test_ansible_runner_call_arguments(repo: Path) -> None:
    runner = FakeRunner()
    revert = AnsibleRevert(
        str(repo / "playbooks" / "rollback.yml"), "edge-2", str(repo / "lab.hosts.yml"),
        {"edge_release_reason": "watcher"}, 120, runner=runner,
    )  # fmt: skip
    outcome = revert.revert("canary red")
    (call,) = runner.calls
    assert call["playbook"] == str(repo / "playbooks" / "rollback.yml")
    assert call["limit"] == "edge-2"
    assert call["inventory"] == str(repo / "lab.hosts.yml")
    assert call["extravars"] == {"edge_release_reason": "watcher"}
    assert call["project_dir"] == str(repo)  # where ansible.cfg is: Ansible reads it from cwd
    assert call["timeout"] == 120 and call["quiet"] is True
    assert runner.dir_existed and not Path(call["private_data_dir"]).exists()  # tmp, cleaned up
    assert outcome.ok and outcome.action == "ansible" and outcome.rc == 0
    assert "PLAY RECAP" in outcome.output_tail
    assert "limited to edge-2" in revert.describe()


def test_ansible_without_inventory_leaves_it_to_ansible_cfg(repo: Path) -> None:
    runner = FakeRunner()
    AnsibleRevert(str(repo / "playbooks" / "rollback.yml"), "edge-2", None, {}, 60,
                  runner=runner).revert("x")  # fmt: skip
    assert "inventory" not in runner.calls[0]


@pytest.mark.parametrize(
    ("runner", "detail"),
    [
        (FakeRunner(status="failed", rc=2), "ended failed (rc 2)"),
        (FakeRunner(status="timeout", rc=254), "ended timeout"),
        (FakeRunner(raises=True), "ansible-runner failed to start the rollback: RuntimeError"),
    ],
)
def test_ansible_failures_are_outcomes(repo: Path, runner: FakeRunner, detail: str) -> None:
    outcome = AnsibleRevert(
        str(repo / "playbooks" / "rollback.yml"), "edge-2", None, {}, 60, runner=runner,
        sleep=lambda seconds: None,
    ).revert("x")
    assert not outcome.ok and detail in outcome.detail


def script(path: Path, body: str) -> str:
    """An executable that runs `body` with this Python: a sh script, as a #! line cannot name a path with a space."""
    path.with_suffix(".py").write_text(body)
    path.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(path.with_suffix(".py")))} "$@"\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_command_revert_runs_with_the_canary_node(tmp_path: Path) -> None:
    marker = tmp_path / "reverted"
    exe = script(
        tmp_path / "revert",
        "import os, sys\n"
        f"open({str(marker)!r}, 'w').write(os.environ['EDGE_CANARY_NODE'] + ' ' + sys.argv[1])\n"
        "print('rolled back')\n",
    )
    outcome = CommandRevert([exe, "--now"], "edge-2", 30).revert("canary red")
    assert outcome.ok and outcome.rc == 0 and "rolled back" in outcome.output_tail
    assert marker.read_text() == "edge-2 --now"


def test_command_revert_names_the_canary_node_only_when_there_is_one() -> None:
    assert CommandRevert(["revert", "--now"], "edge-2", 30).describe() == \
        "the command `revert --now` with EDGE_CANARY_NODE=edge-2"
    assert CommandRevert(["revert"], None, 30).describe() == "the command `revert`"  # a rollout's stage


def test_command_revert_failure_and_timeout(tmp_path: Path) -> None:
    failing = script(tmp_path / "fail", "import sys\nprint('no such node')\nsys.exit(4)\n")
    outcome = CommandRevert([failing], "edge-2", 30).revert("x")
    assert not outcome.ok and outcome.rc == 4 and "exited 4" in outcome.detail
    assert "no such node" in outcome.output_tail
    slow = script(tmp_path / "slow", "import time\ntime.sleep(30)\n")
    outcome = CommandRevert([slow], "edge-2", 0.5).revert("x")
    assert not outcome.ok and "timed out after 0.5s" in outcome.detail


def test_command_that_cannot_start(tmp_path: Path) -> None:
    path = tmp_path / "not-executable"
    path.write_text("x")
    outcome = CommandRevert([str(path)], "edge-2", 5).revert("x")
    assert not outcome.ok and "could not start" in outcome.detail


def test_shadow_mode_changes_nothing_and_says_what_it_would_do(tmp_path: Path) -> None:
    marker = tmp_path / "reverted"
    exe = script(tmp_path / "revert", f"open({str(marker)!r}, 'w').write('x')\n")
    shadow = ShadowRevert(CommandRevert([exe], "edge-2", 5), "edge-2")
    outcome = shadow.revert("canary red")
    assert outcome.ok and outcome.shadow and outcome.action == "none"
    assert f"would have run the command `{exe}`" in outcome.detail
    assert not marker.exists()


def _settings(*args: str) -> Any:
    base = ["--prom-url", "http://127.0.0.1:9", "--canary-selector", 'node="edge-2"',
            "--control-selector", 'node!="edge-2"', "--canary-node", "edge-2"]  # fmt: skip
    return load_settings([*base, *args], environ={})


def test_build_reverter_by_action(repo: Path) -> None:
    playbook = str(repo / "playbooks" / "rollback.yml")
    assert isinstance(build_reverter(_settings("--revert-action", "command", "--revert-command",
                                               "true")), CommandRevert)  # fmt: skip
    ansible = build_reverter(_settings("--revert-action", "ansible", "--playbook", playbook))
    assert isinstance(ansible, AnsibleRevert) and ansible.node == "edge-2"
    shadow = build_reverter(_settings("--revert-action", "none", "--playbook", playbook))
    assert isinstance(shadow, ShadowRevert)
    assert "rollback playbook" in shadow.describe()
    bare = build_reverter(_settings("--revert-action", "none", "--playbook", "/nonexistent"))
    assert "would have reverted edge-2" in bare.describe()


def test_command_environment_keeps_path(tmp_path: Path) -> None:
    out = tmp_path / "path"
    body = f"import os\nopen({str(out)!r}, 'w').write(os.environ['PATH'])\n"
    exe = script(tmp_path / "env", body)
    assert CommandRevert([exe], None, 5).revert("x").ok
    assert out.read_text() == os.environ["PATH"]


def test_ansible_runner_finds_the_ansible_playbook_beside_this_python(repo: Path) -> None:
    runner = FakeRunner()
    AnsibleRevert(str(repo / "playbooks" / "rollback.yml"), "edge-2", None, {}, 60,
                  runner=runner).revert("x")  # fmt: skip
    first = runner.calls[0]["envvars"]["PATH"].split(os.pathsep)[0]
    assert (Path(first) / "ansible-playbook").exists()


def test_an_outer_runner_jobs_display_settings_are_forgotten_before_the_revert() -> None:
    from watcher.revert import forget_outer_runner_job

    env = {"ANSIBLE_STDOUT_CALLBACK": "awx_display", "ORIGINAL_STDOUT_CALLBACK": "yaml",
           "ANSIBLE_CALLBACK_PLUGINS": "/x/ansible_runner/display_callback", "PATH": "/bin"}
    forget_outer_runner_job(env)
    assert env == {"ANSIBLE_STDOUT_CALLBACK": "yaml", "PATH": "/bin"}
    mine = {"ANSIBLE_STDOUT_CALLBACK": "json", "ANSIBLE_CALLBACK_PLUGINS": "/mine"}
    forget_outer_runner_job(mine)
    assert mine == {"ANSIBLE_STDOUT_CALLBACK": "json", "ANSIBLE_CALLBACK_PLUGINS": "/mine"}
