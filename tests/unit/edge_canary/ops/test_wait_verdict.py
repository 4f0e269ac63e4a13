"""edge-canary wait-verdict: a hung watcher ends in a timeout verdict (exit 4), and is stopped first."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_canary.ops import wait_verdict


def start(*tail: str) -> subprocess.Popen[bytes]:
    # start.yml starts the watcher with setsid: a process group of its own.
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", *tail], start_new_session=True)


@pytest.fixture
def hung() -> Iterator[subprocess.Popen[bytes]]:
    proc = start("watcher")  # its argv names the watcher, as `python -m watcher` does
    os.kill(proc.pid, signal.SIGSTOP)  # hung: alive, never writes a verdict
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)


def run(capsys: pytest.CaptureFixture[str], tmp_path: Path, pid: int, *extra: str) -> tuple[int, dict[str, object]]:
    code = wait_verdict.main(["--verdict-file", str(tmp_path / "verdict.json"), "--pid", str(pid),
                              "--timeout", "0.5", *extra])  # fmt: skip
    return code, json.loads(capsys.readouterr().out)


def test_a_hung_watcher_is_a_timeout_and_is_stopped(hung: subprocess.Popen[bytes], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    code, verdict = run(capsys, tmp_path, hung.pid, "--stop-watcher")
    assert code == 4 and verdict["verdict"] == "timeout"
    assert "was stopped" in str(verdict["reason"])
    assert hung.wait(5) == -signal.SIGKILL


def test_without_stop_watcher_it_is_left_alone(hung: subprocess.Popen[bytes], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    code, verdict = run(capsys, tmp_path, hung.pid)
    assert code == 4 and verdict["verdict"] == "timeout" and hung.poll() is None


def test_a_pid_that_is_not_the_watcher_is_never_killed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = start()
    try:
        code, verdict = run(capsys, tmp_path, other.pid, "--stop-watcher")
        assert code == 4 and other.poll() is None and "left alone" in str(verdict["reason"])
    finally:
        other.kill()
        other.wait(10)


def test_a_verdict_is_printed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "verdict.json").write_text('{"verdict": "promote"}')
    assert run(capsys, tmp_path, os.getpid(), "--stop-watcher") == (0, {"verdict": "promote"})
