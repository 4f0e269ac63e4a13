"""edge_canary/procgroup.py: the one process-group stop of the bench and the game-day driver."""

from __future__ import annotations

import os
import subprocess
import time

from edge_canary.procgroup import stop_group


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is not alive
        return stat.read().split(")")[-1].split()[0] != "Z"


def group(script: str) -> tuple[subprocess.Popen[bytes], int]:
    """A shell in a new session that starts a grandchild and prints its pid."""
    proc = subprocess.Popen(["sh", "-c", script], stdout=subprocess.PIPE, start_new_session=True)
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def test_stops_the_child_and_what_it_started() -> None:
    proc, grandchild = group("sleep 60 & echo $!; wait")
    assert stop_group(proc, timeout=10) != 0
    deadline = time.monotonic() + 5
    while alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(grandchild)


def test_kills_a_group_that_ignores_sigterm() -> None:
    proc, grandchild = group("trap '' TERM; sleep 60 & echo $!; wait")
    started = time.monotonic()
    assert stop_group(proc, timeout=1) == -9
    assert time.monotonic() - started < 10
    deadline = time.monotonic() + 5
    while alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(grandchild)


def test_a_reaped_child_is_not_signalled_again() -> None:
    proc = subprocess.Popen(["true"], start_new_session=True)
    proc.wait()
    assert stop_group(proc) == 0
