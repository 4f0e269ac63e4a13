"""The deploy_event action plugin (deploy events to Alertmanager from the controller) run by real Ansible.
Posting to a real Alertmanager is tests/integration/watcher/test_notify.py's (deploys on the lab); here:
an Alertmanager that does not answer never fails the play and is counted, check mode posts nothing, and
arguments the notifier refuses fail the task in one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers.paths import REPO
from tests.helpers.procs import free_port

COLLECTIONS = REPO / "collections"
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
INVENTORY = "all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
PLAY = """\
- name: Post a deploy event
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Post it
      edge.canary.deploy_event:
        event: "{{ event }}"
        url: "{{ url }}"
        timeout: 1
        deploy_id: d-1
        canary: edge-1
        release: v2
        state_dir: "{{ state_dir }}"
      register: posted
    - name: Show the result
      ansible.builtin.debug:
        msg: >-
          RC={{ posted.rc | default('-') }} POSTED={{ posted.posted | default('-') }}
          SKIPPED={{ posted.skipped | default(false) }}
"""


def play(tmp_path: Path, event: str, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "play.yml").write_text(PLAY)
    (tmp_path / "inventory.yml").write_text(INVENTORY)
    return subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", "inventory.yml", "play.yml", "-e", f"event={event}", "-e", f"url={url}",
         "-e", f"state_dir={tmp_path / 'state'}", *extra],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
        env={**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS), "ANSIBLE_NOCOLOR": "1",
             "ANSIBLE_LOCALHOST_WARNING": "false"},
    )


def test_an_alertmanager_that_does_not_answer_never_fails_the_play_and_is_counted(tmp_path: Path) -> None:
    down = play(tmp_path, "started", f"http://127.0.0.1:{free_port()}")
    assert down.returncode == 0, down.stdout + down.stderr
    assert "RC=0 POSTED=False" in down.stdout
    counts = (tmp_path / "state" / "metrics" / "edge_canary_notify.prom").read_text()
    assert 'edge_canary_notifications_total{outcome="failed"} 1' in counts, counts


def test_check_mode_posts_nothing_and_counts_nothing(tmp_path: Path) -> None:
    checked = play(tmp_path, "started", f"http://127.0.0.1:{free_port()}", "--check")
    assert checked.returncode == 0 and "SKIPPED=True" in checked.stdout, checked.stdout
    assert not (tmp_path / "state").exists()


def test_an_event_the_notifier_does_not_know_fails_the_task_in_one_line(tmp_path: Path) -> None:
    bad = play(tmp_path, "finished", "http://127.0.0.1:9")
    assert bad.returncode != 0
    assert "deploy_event: edge-canary notify refused its arguments" in bad.stdout, bad.stdout
    assert not (tmp_path / "state").exists()
