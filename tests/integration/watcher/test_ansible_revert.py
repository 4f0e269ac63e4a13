"""The `ansible` revert action for real: ansible-runner runs a stand-in rollback playbook.

The real playbooks/rollback.yml is another part's; here a tmp playbook that writes a file per
host proves the call: the right playbook, inventory, --limit to the canary only, extra vars,
and a failed playbook reported as a failed revert.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from watcher.revert import AnsibleRevert

PLAYBOOK = """\
- name: Roll back the canary (test stand-in)
  hosts: all
  gather_facts: false
  tasks:
    - name: Fail when asked to
      ansible.builtin.fail:
        msg: rollback refused
      when: fail_rollback | default(false) | bool
    - name: Record the rollback
      ansible.builtin.copy:
        dest: "{{ marker_dir }}/{{ inventory_hostname }}.rolled-back"
        content: "{{ rollback_reason }}"
        mode: "0644"
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "rollback.yml").write_text(PLAYBOOK)
    host = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    inventory = {"all": {"hosts": {"edge-1": host, "edge-2": host, "edge-3": host}}}
    (tmp_path / "hosts.yml").write_text(json.dumps(inventory))
    (tmp_path / "markers").mkdir()
    return tmp_path


def revert(project: Path, **extravars: object) -> AnsibleRevert:
    return AnsibleRevert(
        str(project / "playbooks" / "rollback.yml"),
        "edge-2",
        str(project / "hosts.yml"),
        {"marker_dir": str(project / "markers"), "rollback_reason": "watcher", **extravars},
        timeout=300,
    )


def test_rollback_playbook_runs_on_the_canary_only(project: Path) -> None:
    outcome = revert(project).revert("canary red")
    assert outcome.ok, outcome
    assert outcome.rc == 0 and outcome.extra["status"] == "successful"
    markers = sorted(p.name for p in (project / "markers").iterdir())
    assert markers == ["edge-2.rolled-back"]
    assert (project / "markers" / "edge-2.rolled-back").read_text() == "watcher"
    assert "edge-2" in outcome.output_tail  # the recap, for the decision log


def test_failed_rollback_playbook_is_a_failed_revert(project: Path) -> None:
    outcome = revert(project, fail_rollback=True).revert("canary red")
    assert not outcome.ok
    assert "ended failed" in outcome.detail and outcome.rc not in (0, None)
    assert "rollback refused" in outcome.output_tail
    assert list((project / "markers").iterdir()) == []
