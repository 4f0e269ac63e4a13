"""The edge_service role's systemd side (production), which the lab (supervisor) does not run: the unit as
the role renders it passes `systemd-analyze verify` with its hardening, and a restart clears the unit's
failed state first (a fake systemctl on PATH records what the role runs). And its supervisor side against a
real supervisord of its own: one restart brings back a process left FATAL, and a failed start fails it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.paths import REPO

ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")

RENDER = """\
- name: Render the edge unit as install_unit does
  hosts: localhost
  gather_facts: false
  vars_files: ["{repo}/roles/edge_service/defaults/main.yml"]
  tasks:
    - name: Render the unit
      ansible.builtin.template:
        src: "{repo}/roles/edge_service/templates/edge.service.j2"
        dest: "{{{{ unit_out }}}}"
        mode: "0644"
"""

RESTART_UNDER = """\
- name: Restart the edge service under {manager}
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Run the restart entry point
      ansible.builtin.include_role:
        name: edge.canary.edge_service
        tasks_from: restart
      vars:
        edge_service_manager: {manager}
"""
RESTART = RESTART_UNDER.format(manager="systemd")


def play(tmp_path: Path, text: str, *extra: str, env: dict[str, str] | None = None, ok: bool = True) -> str:
    playbook, inventory = tmp_path / "play.yml", tmp_path / "inventory.yml"
    playbook.write_text(text)
    inventory.write_text(json.dumps({"all": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}))
    done = subprocess.run([str(ANSIBLE_PLAYBOOK), "-i", str(inventory), str(playbook), *extra],
                          capture_output=True, text=True, cwd=REPO, timeout=300,
                          env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), **(env or {})})
    assert (done.returncode == 0) == ok, done.stdout[-3000:] + done.stderr[-2000:]
    return done.stdout


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze (make setup installs it)")
@pytest.mark.parametrize("port", [8080, 80])
def test_the_rendered_unit_is_hardened_and_passes_systemd_analyze_verify(tmp_path: Path, port: int) -> None:
    binary = tmp_path / "edge"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    unit = tmp_path / "edge.service"
    play(tmp_path, RENDER.format(repo=REPO), "-e", f"unit_out={unit}", "-e", f"edge_service_binary_path={binary}",
         "-e", f"edge_service_listen_port={port}", "-e", '{"edge_service_read_write_paths": ["/var/lib/edge"]}')
    text = unit.read_text()
    for directive in ("NoNewPrivileges=yes", "ProtectSystem=strict", "ReadWritePaths=/var/lib/edge",
                      "ProtectHome=yes", "PrivateTmp=yes", "Restart=on-failure"):
        assert directive in text.splitlines(), directive
    assert ("AmbientCapabilities=CAP_NET_BIND_SERVICE" in text) == (port < 1024)
    # verify works without systemd as PID 1 (it loads the unit offline); any warning about it fails too.
    verified = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True,
                              timeout=120)
    about_it = [line for line in (verified.stdout + verified.stderr).splitlines() if "edge.service" in line]
    assert verified.returncode == 0 and about_it == [], verified.stdout + verified.stderr


def test_a_restart_under_systemd_resets_the_failed_state_first(tmp_path: Path) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    calls = tmp_path / "systemctl.log"
    # Like systemd after a crash loop: a restart before reset-failed hits the start limit.
    (fake / "systemctl").write_text(f"""#!/bin/sh
echo "$*" >> {calls}
case "$1" in
  reset-failed) touch {tmp_path}/reset ;;
  restart) [ -e {tmp_path}/reset ] || {{ echo "Job for $2 failed: start request repeated too quickly" >&2; exit 1; }} ;;
esac
""")
    (fake / "systemctl").chmod(0o755)
    play(tmp_path, RESTART, env={"PATH": f"{fake}:{os.environ['PATH']}"})
    assert calls.read_text().splitlines() == ["reset-failed edge.service", "restart edge.service"]


def fake_systemctl(tmp_path: Path, restart_answer: str = "exit 0") -> dict[str, str]:
    """A systemctl on PATH that logs its arguments; its restart does `restart_answer`."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "systemctl").write_text(f"""#!/bin/sh
echo "$*" >> {tmp_path}/systemctl.log
case "$1" in restart) {restart_answer} ;; esac
""")
    (fake / "systemctl").chmod(0o755)
    return {"PATH": f"{fake}:{os.environ['PATH']}"}


def test_a_failed_restart_fails_the_task_with_what_systemctl_said(tmp_path: Path) -> None:
    env = fake_systemctl(tmp_path, 'echo "Job for edge.service failed because the control process exited" >&2; exit 1')
    out = play(tmp_path, RESTART, env=env, ok=False)
    assert ("restarting edge under systemd failed: systemctl restart edge.service answered Job for edge.service "
            "failed because the control process exited") in out, out[-3000:]


def test_check_mode_restarts_nothing(tmp_path: Path) -> None:
    env = fake_systemctl(tmp_path)
    play(tmp_path, RESTART, "--check", env=env)
    assert not (tmp_path / "systemctl.log").exists()


def supervisor_restart(conf: Path) -> str:
    return RESTART_UNDER.format(manager="supervisor") + (f"        edge_service_name: edge\n"
                                                         f"        edge_service_supervisor_conf: {conf}\n")


@pytest.fixture
def supervisord(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A real supervisord whose program `edge` runs the script it returns, which exits at once (FATAL)."""
    program, conf = tmp_path / "edge.sh", tmp_path / "supervisord.conf"
    program.write_text("#!/bin/sh\nexit 1\n")
    program.chmod(0o755)
    conf.write_text(f"""[unix_http_server]
file={tmp_path}/supervisor.sock
[supervisord]
pidfile={tmp_path}/supervisord.pid
logfile={tmp_path}/supervisord.log
childlogdir={tmp_path}
directory={tmp_path}
[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
[supervisorctl]
serverurl=unix://{tmp_path}/supervisor.sock
[program:edge]
command={program}
startsecs=1
startretries=0
""")
    subprocess.run(["supervisord", "-c", str(conf)], check=True, timeout=30)
    try:
        yield conf, program
    finally:
        subprocess.run(["supervisorctl", "-c", str(conf), "shutdown"], capture_output=True, timeout=30)


def supervisor_status(conf: Path) -> str:
    deadline = time.monotonic() + 20
    while True:
        state = subprocess.run(["supervisorctl", "-c", str(conf), "status", "edge"], capture_output=True,
                               text=True, timeout=30).stdout.split()[1:2]
        if state and state[0] not in ("STARTING", "BACKOFF") or time.monotonic() > deadline:
            return state[0] if state else "?"
        time.sleep(0.2)


def test_a_restart_under_supervisor_brings_back_a_process_left_fatal(
        tmp_path: Path, supervisord: tuple[Path, Path]) -> None:
    conf, program = supervisord
    assert supervisor_status(conf) == "FATAL"  # a crash-on-start release, as a revert finds it
    program.write_text("#!/bin/sh\nexec sleep 600\n")  # .previous put back
    out = play(tmp_path, supervisor_restart(conf))
    assert supervisor_status(conf) == "RUNNING", out[-3000:]


def test_a_restart_under_supervisor_that_cannot_start_fails_with_its_answer(
        tmp_path: Path, supervisord: tuple[Path, Path]) -> None:
    conf, program = supervisord
    program.write_text("#!/bin/sh\nexec sleep 600\n")
    subprocess.run(["supervisorctl", "-c", str(conf), "start", "edge"], check=True, capture_output=True, timeout=30)
    program.write_text("#!/bin/sh\nexit 1\n")  # the release crashes on start
    out = play(tmp_path, supervisor_restart(conf), ok=False)
    assert "restarting edge under supervisor failed: supervisorctl -c" in out, out[-3000:]
    assert "restart edge answered edge: ERROR (spawn error)" in out, out[-3000:]
