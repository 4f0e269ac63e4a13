"""The watch host's cases (inventory group edge_canary_watch), run on the hosts-mode lab by
test_hosts_lab.py (one file brings that lab up): the watcher is a program of the watch host's supervisor and
the deploy lock and the watcher's records are on the watch host, so a controller killed with SIGKILL in the
watch window still has its bad canary reverted and its lock released, and a second controller is refused
naming the first (host, user, deploy id)."""

from __future__ import annotations

import getpass
import json
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

from tests.helpers.lab import REPO, VENV_BIN, Lab
from tests.helpers.watch_host import WatchHost


def deploy(watch: WatchHost, artifact: Path, canary: str, log: Path) -> subprocess.Popen[str]:
    """A controller: `edge-canary deploy-canary` (the driver) and its ansible-playbook, in their own session."""
    env = {**watch.env, "ARTIFACT": str(artifact), "CANARY_NODE": canary, "SLI_WINDOW": "60",
           "SLI_PROBE_INTERVAL": "2"}
    return subprocess.Popen([sys.executable, "-m", "edge_canary", "deploy-canary"], cwd=REPO, env=env,
                            stdout=log.open("w"), stderr=subprocess.STDOUT, text=True, start_new_session=True)


def processes_naming(text: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and text.encode() in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def controller_killed_in_the_watch_window_and_a_second_controller_refused(
        fleet: Lab, watch: WatchHost, artifacts: dict[str, Path], tmp_path: Path) -> None:
    runs = watch.state / "runs"
    first = deploy(watch, artifacts["v2-errors"], "edge-2", tmp_path / "first.log")
    killed = threading.Event()
    seen: dict[str, str] = {}

    def kill_in_the_watch_window() -> None:
        """SIGKILL the whole controller (driver, ansible-playbook, its workers and ssh clients) as soon as the
        watcher's window opens: the canary is back in rotation and serving (its `traffic` decision)."""
        while first.poll() is None:
            opened = [log for log in runs.glob("*/decisions.jsonl") if '"event": "traffic"' in log.read_text()]
            if opened:
                os.killpg(first.pid, signal.SIGKILL)
                seen["deploy_id"] = opened[0].parent.name
                seen["programs"] = watch.supervisorctl("status").stdout
                killed.set()
                return
            killed.wait(0.05)

    killer = threading.Thread(target=kill_in_the_watch_window, daemon=True)
    killer.start()
    try:
        fleet.wait_until(lambda: (watch.state / "deploy.lock").exists() or first.poll() is not None, 240,
                         "the first deploy's lock on the watch host")
        taken = json.loads((watch.state / "deploy.lock").read_text())
        assert not (fleet.lab_dir / "control" / "deploy.lock").exists()  # not on the controller
        second = subprocess.run([sys.executable, "-m", "edge_canary", "deploy-canary"], cwd=REPO, timeout=600,
                                env={**watch.env, "ARTIFACT": str(artifacts["v2"]), "CANARY_NODE": "edge-1"},
                                capture_output=True, text=True)
        killer.join(300)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    first.wait(30)
    log = (tmp_path / "first.log").read_text()
    assert killed.is_set() and first.returncode == -signal.SIGKILL, log[-3000:]

    # The second controller was refused, naming the first: its deploy id, user and host.
    deploy_id = seen["deploy_id"]
    assert second.returncode != 0
    assert (f"another deploy {deploy_id} by {getpass.getuser()} on host {socket.gethostname()} "
            f"(pid {taken['controller']['pid']}") in second.stdout, second.stdout[-3000:]
    assert "PLAY [Canary]" not in second.stdout

    # The watcher was the watch host's supervisor's program when the controller died, not its child.
    assert f"edge-canary-watch-{deploy_id}" in seen["programs"] and "RUNNING" in seen["programs"], seen
    record = runs / deploy_id
    fleet.wait_until(lambda: (record / "verdict.json").exists(), 240, "the watch host's watcher's verdict")
    verdict = json.loads((record / "verdict.json").read_text())
    assert verdict["verdict"] == "reverted", verdict
    assert json.loads((record / "deploy.json").read_text())["canary"] == "edge-2"
    fleet.wait_until(lambda: not (watch.state / "deploy.lock").exists(), 60, "the lock released on the watch host")
    locks_log = (watch.state / "locks.log").read_text()
    assert "released by its watcher" in locks_log, locks_log
    fleet.wait_until(lambda: not processes_naming(deploy_id), 30, "no process of the deploy left (keeper, hold)")

    assert {node: fleet.node_version(node)["version"] for node in ("edge-1", "edge-2", "edge-3")} == {
        "edge-1": "v1", "edge-2": "v1", "edge-3": "v1"}
    assert set(fleet.lb_states().values()) == {"READY"}
    assert f"edge-canary-watch-{deploy_id}" in watch.supervisorctl("status").stdout  # ended, never restarted
    assert "EXITED" in watch.supervisorctl("status", f"edge-canary-watch-{deploy_id}").stdout

    # A rollback from a controller takes the same lock on the watch host (refused while something there holds
    # it), and its release there ends its hold (nothing of it is left running).
    acquire = shlex.join([sys.executable, "-m", "edge_canary", "lock", "--dir", str(watch.state), "acquire", "deploy"])
    holder = subprocess.Popen(["sh", "-c", f"{acquire} --id held-on-the-watch-host && exec sleep 600"], cwd=REPO,
                              stdout=subprocess.PIPE)
    try:
        fleet.wait_until(lambda: (watch.state / "deploy.lock").exists(), 30, "a lock held on the watch host")
        refused = rollback(watch)
        assert refused.returncode != 0
        assert "another deploy held-on-the-watch-host by" in refused.stdout, refused.stdout[-3000:]
    finally:
        holder.kill()
        holder.wait(10)
    done = rollback(watch)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    assert not (watch.state / "deploy.lock").exists()
    fleet.wait_until(lambda: not processes_naming(str(watch.state)), 30, "the rollback's hold ended by its release")


def rollback(watch: WatchHost) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge_canary", "rollback"], cwd=REPO, timeout=600,
                          env={**watch.env, "NODES": "edge-2"}, capture_output=True, text=True)


START_PLAY = """
- name: The watcher's start, as the canary's roll runs it
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Start the watcher on the watch host
      ansible.builtin.include_role:
        name: edge.canary.sli_watch
        tasks_from: start
"""


def credentials_reach_the_watch_host_in_a_file_never_on_a_command_line(
        fleet: Lab, watch: WatchHost, tmp_path: Path) -> None:
    """PROM_TOKEN reaches watch-service on the watch host (the lab's supervisor service refuses it, which shows
    it arrived) in a 0600 file it removes, never in a task's `environment:`: -vvv prints every SSH and remote
    command line, and the token is in none. The role's start task itself, as the canary's roll runs it."""
    token = f"tok-{secrets.token_hex(8)}"
    (tmp_path / "start.yml").write_text(START_PLAY)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (tmp_path / "vars.json").write_text(json.dumps({
        "deploy_id": "creds-1", "deploy_run_dir": str(run_dir), "deploy_canary": "edge-1", "sli_window": 30,
        "sli_probe_interval": 2, "prom_url": f"http://127.0.0.1:{fleet.settings.prom_port}"}))
    done = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-vvv", str(tmp_path / "start.yml"),
                           "-e", f"@{tmp_path / 'vars.json'}"], cwd=REPO, env={**watch.env, "PROM_TOKEN": token},
                          capture_output=True, text=True, timeout=300)
    out = done.stdout + done.stderr
    assert "SSH: EXEC" in out
    assert token not in out, [line for line in out.splitlines() if token in line][:3]
    assert done.returncode != 0
    assert "takes no Prometheus credentials" in out, out[-5000:]
    assert not list((watch.state / "runs").glob("*/credentials.json"))
