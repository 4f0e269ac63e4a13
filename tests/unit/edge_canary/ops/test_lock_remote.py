"""edge_canary.ops.lock_remote with real processes: the lock a controller keeps on a watch host lives as long
as the controller's run, names that controller to whoever is refused, and ends with its run's release.

The SSH session is stood for by `sh -c` (it runs the watch host's command line here, as ssh would there);
the controller's run is a shell that starts `lock-keep` and then sleeps (lock_holder.run_pid: its parent)."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_canary.ops import lock, lock_remote
from edge_canary.ops.lock_holder import alive

REPO = Path(__file__).resolve().parents[4]


class Run:
    """A controller's run that took (or was refused) the lock through lock-keep; it lives until stopped."""

    def __init__(self, directory: Path, lock_id: str, token: str) -> None:
        keep = shlex.join([sys.executable, "-m", "edge_canary", "lock-keep", "--python", sys.executable,
                           "--dir", str(directory), "--id", lock_id, "--", "sh", "-c"])
        self.proc = subprocess.Popen(["sh", "-c", f"{keep} 2>&1; echo rc=$?; exec sleep 600"], cwd=REPO,
                                     stdout=subprocess.PIPE, text=True, env={**os.environ, lock.TOKEN_ENV: token})
        assert self.proc.stdout is not None
        lines = []
        for line in self.proc.stdout:
            if line.startswith("rc="):
                self.code = int(line[3:])
                break
            lines.append(line)
        self.said = "".join(lines)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


@pytest.fixture
def runs() -> Iterator[list[Run]]:
    started: list[Run] = []
    yield started
    for run in started:
        run.stop()


def wait_for(predicate: object, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def test_the_kept_lock_names_its_controller_refuses_another_and_ends_with_its_run(tmp_path: Path,
                                                                                  runs: list[Run]) -> None:
    first = Run(tmp_path, "deploy-A", "token-a")
    runs.append(first)
    assert first.code == 0, first.said
    assert "deploy lock taken by deploy-A" in first.said and "kept on" in first.said
    held = json.loads((tmp_path / "deploy.lock").read_text())
    assert held["controller"] == {"host": socket.gethostname(), "pid": first.proc.pid}
    assert held["user"] == getpass.getuser() and held["pid"] != first.proc.pid and alive(held)

    second = Run(tmp_path, "deploy-B", "token-b")
    runs.append(second)
    assert second.code == 1
    assert (f"another deploy deploy-A by {getpass.getuser()} on host {socket.gethostname()} "
            f"(pid {first.proc.pid}, since") in second.said, second.said
    assert json.loads((tmp_path / "deploy.lock").read_text())["id"] == "deploy-A"

    # The controller's run is killed: its keeper closes the session, the hold lets the lock go.
    first.stop()
    assert wait_for(lambda: not (tmp_path / "deploy.lock").exists()), (tmp_path / "deploy.lock").read_text()
    assert wait_for(lambda: not alive(held))
    assert "its controller's session ended, lock removed" in (tmp_path / "locks.log").read_text()


def test_the_runs_release_ends_the_hold_and_a_watcher_keeps_the_lock_after_its_run(tmp_path: Path,
                                                                                   runs: list[Run]) -> None:
    run = Run(tmp_path, "deploy-C", "token-c")
    runs.append(run)
    assert run.code == 0, run.said
    hold = json.loads((tmp_path / "deploy.lock").read_text())
    released = subprocess.run([sys.executable, "-m", "edge_canary", "lock", "--dir", str(tmp_path), "release",
                               "deploy", "--id", "deploy-C"], capture_output=True, text=True, cwd=REPO,
                              env={**os.environ, lock.TOKEN_ENV: "token-c"}, timeout=60)
    assert "deploy lock released by deploy-C" in released.stdout, released.stdout + released.stderr
    assert wait_for(lambda: not alive(hold)) and not (tmp_path / "deploy.lock").exists()

    # A watcher joined with the run's token keeps the lock once the run is gone, until it ends itself.
    run = Run(tmp_path, "deploy-D", "token-d")
    runs.append(run)
    assert run.code == 0, run.said
    watcher = subprocess.Popen([sys.executable, "-m", "edge_canary", "lock", "--dir", str(tmp_path), "exec",
                                "deploy", "--", "sleep", "600"], cwd=REPO, stdout=subprocess.DEVNULL,
                               env={**os.environ, lock.TOKEN_ENV: "token-d"})
    try:
        assert wait_for(lambda: len(json.loads((tmp_path / "deploy.lock").read_text())["watchers"]) == 1)
        run.stop()
        assert wait_for(lambda: json.loads((tmp_path / "deploy.lock").read_text())["released"])
        kept = json.loads((tmp_path / "deploy.lock").read_text())
        assert lock.held(kept) and [w["pid"] for w in lock.live_watchers(kept)] == [watcher.pid]
        refused = Run(tmp_path, "deploy-E", "token-e")
        runs.append(refused)
        assert refused.code == 1 and "kept by its watcher" in refused.said, refused.said
    finally:
        watcher.kill()
        watcher.wait(10)


def test_the_inventorys_ssh_args_become_shell_words_as_ansible_splits_them() -> None:
    args = argparse.Namespace(
        python="/opt/py", dir="/state", id="d1", force=False, dry_run=False,
        ssh_args=["-o 'ProxyCommand=ssh -W %h:%p bastion' -o 'UserKnownHostsFile=\"/my clones/known_hosts\"'", ""],
        ssh=["ssh", "-o", "BatchMode=yes", "root@watch"])
    command = lock_remote.ssh_command(args, {"pid": 42})
    assert command[:-1] == ["ssh", "-o", "ProxyCommand=ssh -W %h:%p bastion",
                            "-o", 'UserKnownHostsFile="/my clones/known_hosts"', "-o", "BatchMode=yes", "root@watch"]
    assert command[-1].startswith("/opt/py -m edge_canary lock --dir /state hold deploy --id d1 ")
