"""The control_file action plugin (deploy records on the control host) run by real Ansible."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers.paths import REPO

COLLECTIONS = REPO / "collections"  # edge.canary from this checkout: the link points back at the repository
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")

PLAY = """\
- name: Write files on the control host
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Write the file
      edge.canary.control_file:
        dest: "{{ dest }}"
        content: "{{ {'node': 'edge-1', 'result': 'ok'} | to_nice_json }}"
        mode: "0640"
      register: written
    - name: Show the result
      ansible.builtin.debug:
        msg: "CHANGED={{ written.changed }}"
"""


# An inventory file, not "-i localhost,": the project's ansible.cfg (exported by make) parses only
# script and YAML inventories.
INVENTORY = "all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"


def play(tmp_path: Path, dest: str, *extra: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "play.yml").write_text(PLAY)
    (tmp_path / "inventory.yml").write_text(INVENTORY)
    return subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", "inventory.yml", "play.yml", "-e", f"dest={dest}", *extra],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
        env={**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS), "ANSIBLE_NOCOLOR": "1",
             "ANSIBLE_LOCALHOST_WARNING": "false"},
    )


def test_writes_once_then_reports_unchanged_and_check_mode_writes_nothing(tmp_path: Path) -> None:
    dest = tmp_path / "records" / "edge-1.json"
    dest.parent.mkdir()
    checked = play(tmp_path, str(dest), "--check")
    assert checked.returncode == 0 and "CHANGED=True" in checked.stdout and not dest.exists()

    first = play(tmp_path, str(dest))
    assert first.returncode == 0 and "CHANGED=True" in first.stdout, first.stdout
    assert '"result": "ok"' in dest.read_text() and oct(dest.stat().st_mode & 0o777) == "0o640"
    assert [p.name for p in dest.parent.iterdir()] == ["edge-1.json"], "no temp file left behind"

    again = play(tmp_path, str(dest))
    assert again.returncode == 0 and "CHANGED=False" in again.stdout


def test_refuses_a_relative_dest_and_a_missing_folder_in_one_line(tmp_path: Path) -> None:
    relative = play(tmp_path, "records/edge-1.json")
    assert relative.returncode != 0 and "dest must be an absolute path on the control host" in relative.stdout
    missing = play(tmp_path, str(tmp_path / "nowhere" / "edge-1.json"))
    assert missing.returncode != 0 and "cannot write" in missing.stdout and "check the folder exists" in missing.stdout


REMOVE_PLAY = """\
- name: Remove a file on the control host, write a number, create a folder
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Remove the file
      edge.canary.control_file:
        dest: "{{ dest }}"
        state: absent
      register: removed
    - name: Write a number (a template that renders to a float)
      edge.canary.control_file:
        dest: "{{ dest }}.at"
        content: "{{ 1234.5 }}\\n"
    - name: Create a folder and its parent
      edge.canary.control_file:
        dest: "{{ dest }}.d/stage-1"
        state: directory
        mode: "0750"
      register: made
    - name: Show the result
      ansible.builtin.debug:
        msg: "REMOVED={{ removed.changed }} MADE={{ made.changed }}"
"""


def test_state_absent_removes_once_a_number_is_written_as_its_text_and_a_folder_is_made_once(
        tmp_path: Path) -> None:
    dest = tmp_path / "canary-ready"
    dest.write_text("1\n")
    (tmp_path / "play.yml").write_text(REMOVE_PLAY)
    (tmp_path / "inventory.yml").write_text(INVENTORY)

    def remove(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(ANSIBLE_PLAYBOOK), "-i", "inventory.yml", "play.yml", "-e", f"dest={dest}", *extra],
            capture_output=True, text=True, cwd=tmp_path, timeout=120,
            env={**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS), "ANSIBLE_NOCOLOR": "1",
                 "ANSIBLE_LOCALHOST_WARNING": "false"})

    checked = remove("--check")
    assert checked.returncode == 0 and "REMOVED=True MADE=True" in checked.stdout, checked.stdout
    assert dest.exists() and not (tmp_path / "canary-ready.d").exists()
    first = remove()
    assert first.returncode == 0 and "REMOVED=True MADE=True" in first.stdout and not dest.exists(), first.stdout
    assert (tmp_path / "canary-ready.at").read_text() == "1234.5\n"
    assert oct((tmp_path / "canary-ready.d" / "stage-1").stat().st_mode & 0o777) == "0o750"
    again = remove()
    assert again.returncode == 0 and "REMOVED=False MADE=False" in again.stdout
