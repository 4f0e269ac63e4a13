"""watcher.owned: the command it runs, and everything that command started, dies with the owner."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.helpers.lab import REPO
from watcher.owned import OWNER_ENV, detached

# A stand-in for ansible-playbook under a starved machine: its worker is in a session of its own (setsid,
# as ansible's WorkerProcess) and it does not pass SIGTERM on before the wrapper's grace runs out.
SLOW_PLAY = textwrap.dedent("""
    import os, signal, sys, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if os.fork() == 0:
        os.setsid()
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        open(sys.argv[1], "w").write(str(os.getpid()))
        time.sleep(120)
        os._exit(0)
    time.sleep(120)
""")


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# How the owner starts the wrapper: a plain child, or as ansible-runner (pexpect) does, on a pty of its own
# whose hang-up reaches the wrapper as SIGHUP, its stderr that hung-up terminal, when the owner dies.
START_PLAIN = """
    subprocess.Popen([sys.executable, "-c", WRAPPER], env={**os.environ, OWNER_ENV: str(os.getpid())})
"""
START_ON_A_PTY = """
    if pty.fork()[0] == 0:
        os.execve(sys.executable, [sys.executable, "-c", WRAPPER], {**os.environ, OWNER_ENV: str(os.getppid())})
"""


def start_owner(play_code: str, pidfile: Path, start: str) -> subprocess.Popen[bytes]:
    """An owner process (its own session) that starts watcher.owned around `play_code` (given `pidfile`)
    the way `start` says."""
    play = [sys.executable, "-c", play_code, str(pidfile)]
    wrapper = f"import sys; from watcher.owned import main; sys.exit(main({play!r}))"
    owner_code = (f"import os, pty, subprocess, sys, time\nWRAPPER = {wrapper!r}\nOWNER_ENV = {OWNER_ENV!r}\n"
                  + textwrap.dedent(start) + "time.sleep(120)\n")
    return subprocess.Popen([sys.executable, "-c", owner_code], cwd=REPO, start_new_session=True)


@pytest.mark.parametrize("start", [START_PLAIN, START_ON_A_PTY], ids=["plain child", "on a pty"])
def test_a_worker_in_its_own_session_dies_with_the_owner(tmp_path: Path, start: str) -> None:
    pidfile = tmp_path / "worker.pid"
    owner = start_owner(SLOW_PLAY, pidfile, start)
    worker = 0
    try:
        deadline = time.monotonic() + 30
        while not pidfile.exists() or not pidfile.read_text():
            assert time.monotonic() < deadline, "the worker never started"
            time.sleep(0.1)
        worker = int(pidfile.read_text())
        owner.kill()  # SIGKILL: the owner does nothing on its way out
        owner.wait(10)
        deadline = time.monotonic() + 20
        while alive(worker):
            assert time.monotonic() < deadline, f"worker {worker} (own session) outlived its owner"
            time.sleep(0.1)
    finally:
        clean_up(owner, worker)



def clean_up(owner: subprocess.Popen[bytes], pid: int) -> None:
    """Whatever a failed test left: the process it watched (0: none yet) and the owner's session."""
    if pid and alive(pid):
        os.kill(pid, signal.SIGKILL)
    if owner.poll() is None:
        os.killpg(owner.pid, signal.SIGKILL)
        owner.wait()

# A play that, like a deploy's, starts the SLI watcher detached (setsid, EDGE_CANARY_DETACHED=1) from a task
# that then ends: the watcher is orphaned, and the wrapper, as subreaper, inherits it.
PLAY_WITH_A_WATCHER = textwrap.dedent("""
    import os, sys, time
    if os.fork() == 0:
        if os.fork() == 0:
            os.setsid()
            open(sys.argv[1] + ".tmp", "w").write(str(os.getpid()))
            os.rename(sys.argv[1] + ".tmp", sys.argv[1])
            os.execve(sys.executable, [sys.executable, "-c", "import time; time.sleep(120)"],
                      {**os.environ, "EDGE_CANARY_DETACHED": "1"})
        os._exit(0)
    os.wait()
    time.sleep(120)
""")


def test_the_watcher_the_play_detached_outlives_the_owner(tmp_path: Path) -> None:
    pidfile = tmp_path / "watcher.pid"
    owner = start_owner(PLAY_WITH_A_WATCHER, pidfile, START_ON_A_PTY)
    watcher = 0
    try:
        deadline = time.monotonic() + 30
        while not pidfile.exists():
            assert time.monotonic() < deadline, "the play never started its watcher"
            time.sleep(0.1)
        watcher = int(pidfile.read_text())
        deadline = time.monotonic() + 10
        while not detached(watcher):  # until its exec
            assert time.monotonic() < deadline, "the detached watcher never started"
            time.sleep(0.1)
        owner.kill()
        owner.wait(10)
        time.sleep(6)  # longer than the wrapper's grace
        assert alive(watcher), "the owner's end took the detached watcher with it"
    finally:
        clean_up(owner, watcher)

