"""Prometheus credentials never given as play variables: Ansible's `environment:` puts its values on
the `sh -c` command line of the task, where `ps` shows them. A prom_url with user:password@ (e.g. in
group_vars) or sli_watch_prom_token / sli_watch_prom_password set as variables are refused, in one
line saying to export PROM_USER/PROM_PASSWORD or PROM_TOKEN instead, before any task runs a process
with them: the watcher's start and preflight's Prometheus check. Runs on localhost only, no lab."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.helpers.lab import REPO, VENV_BIN

SECRET = "s3cr3t-pw-71c2"
PLAYBOOK = """
- name: One entry of the roles, on the control host
  hosts: localhost
  gather_facts: false
  tasks:
    - name: The role's entry
      ansible.builtin.include_role:
        name: "{{ entry_role }}"
        tasks_from: "{{ entry_tasks }}"
"""


def play(tmp_path: Path, role: str, tasks: str, extra: dict[str, object]) -> subprocess.CompletedProcess[str]:
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAYBOOK)
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
                         "      ansible_python_interpreter: '{{ ansible_playbook_python }}'\n")
    run_dir = tmp_path / "run"
    run_dir.mkdir(exist_ok=True)
    variables = {"entry_role": role, "entry_tasks": tasks, "deploy_id": "d1", "deploy_run_dir": str(run_dir),
                 "edge_canary_dir": str(REPO), "edge_canary_state_dir": str(tmp_path / "state"),
                 "deploy_canary": "edge-1", "sli_window": 30, "sli_probe_interval": 5,
                 "prom_p95_threshold_s": 0.5, "prom_err_rate_threshold": 0.01,
                 "prom_url": "http://127.0.0.1:9", **extra}
    (tmp_path / "vars.json").write_text(json.dumps(variables))
    # --check: the watcher is never started (shell is skipped in check mode); the checks still run.
    return subprocess.run([str(VENV_BIN / "ansible-playbook"), "--check", "-i", str(inventory), str(playbook),
                           "-e", f"@{tmp_path / 'vars.json'}"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)  # fmt: skip


ENTRIES = [("edge.canary.sli_watch", "start"), ("edge.canary.preflight", "watcher")]
CREDENTIALS = [
    ({"prom_url": f"http://alice:{SECRET}@127.0.0.1:9"}, "user:password@"),
    ({"sli_watch_prom_password": SECRET}, "sli_watch_prom_password"),
    ({"sli_watch_prom_token": SECRET}, "sli_watch_prom_token"),
]


@pytest.mark.parametrize(("role", "tasks"), ENTRIES)
@pytest.mark.parametrize(("given", "named"), CREDENTIALS)
def test_credentials_as_play_variables_are_refused(tmp_path: Path, role: str, tasks: str,
                                                   given: dict[str, object], named: str) -> None:
    result = play(tmp_path, role, tasks, given)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    line = next((ln for ln in out.splitlines() if "PROM_PASSWORD" in ln and "instead" in ln), "")
    assert named in line and "PROM_TOKEN" in line, out
    assert SECRET not in out
    assert not (tmp_path / "run" / "watcher.json").exists()


def test_the_watcher_start_passes_without_credentials_in_variables(tmp_path: Path) -> None:
    result = play(tmp_path, "edge.canary.sli_watch", "start", {"sli_watch_prom_user": "alice"})
    assert result.returncode == 0, result.stdout + result.stderr
