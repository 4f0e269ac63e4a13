"""playbooks/tasks/left_out_note.yml, run by ansible-playbook: on a node a deploy leaves alone in maintenance
it notes in the release record that the deploy never reached it (what keeps a later rollback off its
.previous: test_previous_rule.py), and a node that does not answer costs a warning, never the run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.helpers.paths import REPO

ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")

PLAYBOOK = f"""\
- name: Note on the nodes left alone that this deploy does not reach them
  hosts: left_out
  gather_facts: false
  tasks:
    - name: Note it, or warn when the node does not answer
      ansible.builtin.import_tasks: {REPO}/playbooks/tasks/left_out_note.yml
"""


def test_a_node_left_alone_is_noted_and_one_that_does_not_answer_is_warned_about(tmp_path: Path) -> None:
    home = tmp_path / "edge-1"
    home.mkdir()
    (home / "edge").write_bytes(b"v1 binary\n")
    inventory = {"left_out": {"hosts": {
        "edge-1": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                   "edge_install_dir": str(home)},
        # Nothing listens on port 1: the SSH connection is refused until wait_for_connection gives up.
        "edge-9": {"ansible_host": "127.0.0.1", "ansible_port": 1, "edge_install_dir": "/nonexistent"},
    }}}
    (tmp_path / "inventory.json").write_text(json.dumps(inventory))
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(REPO / "collections"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_RETRY_FILES_ENABLED": "false", "ANSIBLE_HOST_KEY_CHECKING": "false"}
    proc = subprocess.run([str(ANSIBLE_PLAYBOOK), "-i", "inventory.json", "-e", "deploy_id=d-42", "play.yml"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    record = json.loads((home / "release.json").read_text())
    assert record["not_reached"]["deploy_id"] == "d-42", record
    printed = " ".join(proc.stdout.split())
    assert "warning: edge-9 does not answer (" in printed and "would take it to its .previous" in printed, output
    assert "warning: edge-1" not in printed, output
