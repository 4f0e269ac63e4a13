"""The deploy lock taken in the controller process (edge.canary.deploy_lock through the deploy_lock role),
run by real Ansible: the holder is the run's ansible-playbook, a second run is refused naming it, check
mode takes nothing, and the release gives it back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers.paths import REPO

ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")

PLAY = """\
- name: Take the deploy lock, hold it a while, give it back
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Take it
      ansible.builtin.include_role:
        name: edge.canary.deploy_lock
        tasks_from: acquire
      vars:
        deploy_lock_id: "{{ lock_id }}"
    - name: Hold it
      ansible.builtin.wait_for:
        path: "{{ go_on }}"
        timeout: 60
      when: go_on | length > 0
    - name: Give it back
      ansible.builtin.include_role:
        name: edge.canary.deploy_lock
        tasks_from: release
"""

INVENTORY = (
    "all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
    "      ansible_python_interpreter: '{{ ansible_playbook_python }}'\n"
)


def argv(tmp_path: Path, lock_id: str, go_on: str = "", *extra: str) -> list[str]:
    (tmp_path / "play.yml").write_text(PLAY)
    (tmp_path / "inventory.yml").write_text(INVENTORY)
    return [
        str(ANSIBLE_PLAYBOOK),
        "-i",
        str(tmp_path / "inventory.yml"),
        str(tmp_path / "play.yml"),
        "-e",
        f"lock_id={lock_id}",
        "-e",
        f"go_on={go_on}",
        "-e",
        f"edge_canary_state_dir={tmp_path / 'state'}",
        *extra,
    ]


def env() -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if k != "EDGE_CANARY_LOCK_TOKEN"},
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
    }


def run(tmp_path: Path, lock_id: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv(tmp_path, lock_id, "", *extra), capture_output=True, text=True, cwd=REPO, env=env(), timeout=120
    )


def test_the_run_holds_the_lock_another_is_refused_and_the_release_frees_it(tmp_path: Path) -> None:
    lock, go_on = tmp_path / "state" / "deploy.lock", tmp_path / "go-on"
    first = subprocess.Popen(
        argv(tmp_path, "first", str(go_on)),
        cwd=REPO,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not lock.exists() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        held = json.loads(lock.read_text())
        assert held["id"] == "first" and held["pid"] == first.pid  # the run itself, not a task's worker

        refused = run(tmp_path, "second")
        assert refused.returncode != 0
        assert f"another deploy first by {held['user']} (pid {first.pid}" in refused.stdout, refused.stdout[-2000:]
        asked = run(tmp_path, "third", "--check")
        assert asked.returncode != 0 and "another deploy first" in asked.stdout
        assert json.loads(lock.read_text()) == held
    finally:
        go_on.touch()
        out, _ = first.communicate(timeout=120)
    assert first.returncode == 0, out[-3000:]
    assert not lock.exists()

    dry = run(tmp_path, "fourth", "--check")
    assert dry.returncode == 0, dry.stdout[-2000:]
    assert not lock.exists()
