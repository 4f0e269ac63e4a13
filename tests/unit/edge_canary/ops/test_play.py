"""edge_canary.ops.play: following the watcher logs of the run folder a play announces (as a fact)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edge_canary.ops import deploy, play
from edge_canary.ops.play import REPO, WatcherLines, follow, lines_first
from edge_canary.procgroup import stop_group
from tests.helpers.procs import processes


def test_follow_prints_each_logs_new_lines_once_under_its_label(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "runs" / "r1"
    (run_dir / "stage-1").mkdir(parents=True)
    (run_dir / "stage-1" / "watcher.log").write_text("probe 1 green\n")
    stop = threading.Event()
    rounds: list[Path] = []

    def logs(found: Path) -> list[tuple[str, Path]]:
        rounds.append(found)
        if len(rounds) == 2:  # between the rounds the watcher writes on, and a second stage starts
            with (run_dir / "stage-1" / "watcher.log").open("a") as log:
                log.write("probe 2 green\n")
        if len(rounds) == 3:
            stop.set()
        return [("watcher stage-1", run_dir / "stage-1" / "watcher.log"),
                ("watcher stage-2", run_dir / "stage-2" / "watcher.log")]  # not there yet: skipped

    follow(WatcherLines(lambda: run_dir, logs), stop, interval=0)
    assert rounds == [run_dir] * 3
    assert capsys.readouterr().out.splitlines() == ["    watcher stage-1 | probe 1 green",
                                                    "    watcher stage-1 | probe 2 green"]


def test_the_watchers_lines_so_far_are_printed_before_the_plays_next_output(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The watcher logs "revert OK" before the verdict the play waits for: the play's failure and recap that
    follow must not come first, whenever the follower thread last looked."""
    (tmp_path / "watcher.log").write_text("revert OK: rollback playbook succeeded on edge-1\n")
    lines = WatcherLines(lambda: tmp_path, deploy.watcher_log)
    handle = lines_first(lines, lambda event: print(event.get("stdout") or "(no output)") or False)
    assert handle({"stdout": "PLAY RECAP"}) is False
    with (tmp_path / "watcher.log").open("a") as log:
        log.write("verdict: reverted\nprobes: 1/10")  # the last line is still being written
    handle({})  # an event that prints nothing needs no catching up
    handle({"stdout": "Deploy d1 of v2"})
    with (tmp_path / "watcher.log").open("a") as log:
        log.write(" (green 0, red 1)\n")
    lines.catch_up()
    assert capsys.readouterr().out.splitlines() == [
        "    watcher | revert OK: rollback playbook succeeded on edge-1", "PLAY RECAP", "(no output)",
        "    watcher | verdict: reverted", "Deploy d1 of v2", "    watcher | probes: 1/10 (green 0, red 1)"]


def test_a_deploy_follows_each_later_waves_watcher_too_in_wave_order(tmp_path: Path) -> None:
    for wave in ("10", "2", "2.old"):  # a copy an operator left beside the waves is not one of them
        (tmp_path / f"wave-{wave}").mkdir()
        (tmp_path / f"wave-{wave}" / "watcher.log").touch()
    assert deploy.watcher_log(tmp_path) == [("watcher", tmp_path / "watcher.log"),
                                            ("watcher wave-2", tmp_path / "wave-2" / "watcher.log"),
                                            ("watcher wave-10", tmp_path / "wave-10" / "watcher.log")]


def test_follow_waits_for_the_announcement(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stop = threading.Event()
    called: list[Path] = []
    timer = threading.Timer(0.3, stop.set)
    timer.start()

    def logs(run_dir: Path) -> list[tuple[str, Path]]:
        called.append(run_dir)
        return []

    follow(WatcherLines(lambda: None, logs), stop, interval=0.05)
    timer.join()
    assert called == []
    assert capsys.readouterr().out == ""


def plays_of(marker: str) -> list[int]:
    """The ansible-playbook processes whose command line names `marker`."""
    return [pid for pid, (_, args) in processes().items() if marker in args and "ansible-playbook" in args]


def start_driver(tmp_path: Path, after: str = "", tasks: tuple[str, ...] = ("sleep 120",),
                 env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], Path]:
    """A driver (play.drive, then the Python `after`) of a play of `tasks` (commands), once in its first."""
    playbook = tmp_path / "long.yml"
    playbook.write_text("- hosts: localhost\n  gather_facts: false\n  tasks:\n"
                        + "".join(f"    - ansible.builtin.command: {task}\n" for task in tasks))
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
                         f"      ansible_python_interpreter: {sys.executable}\n")
    data = tmp_path / "runner"
    data.mkdir()
    driver = ("import io, sys; from pathlib import Path; from edge_canary.ops import play; "
              "from edge_canary.ops.play_events import PlayEvents; "
              f"ended = play.drive({str(playbook)!r}, ['-i', {str(inventory)!r}], dict(__import__('os').environ), "
              f"Path({str(data)!r}), PlayEvents(io.StringIO()), lambda run_dir: [], 'interrupted'); {after}")
    proc = subprocess.Popen([sys.executable, "-c", driver], cwd=REPO, start_new_session=True, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    deadline = time.monotonic() + 60
    while not plays_of(str(playbook)):
        assert time.monotonic() < deadline and proc.poll() is None, "the play never started"
        time.sleep(0.2)
    time.sleep(3)  # in its task
    assert proc.poll() is None and plays_of(str(playbook)), "the play did not stay in its task"
    return proc, playbook


def test_ctrl_c_returns_once_the_play_has_stopped(tmp_path: Path) -> None:
    """Ctrl-C is passed on to the play, and drive returns only once the play has ended: the summary, the
    removal of runner's folder and the lock's release come after its last event, not under a running play.
    (A KeyboardInterrupt in Thread.join used to mark runner's thread stopped while the play still ran.)"""
    proc, playbook = start_driver(
        tmp_path, "import threading; print('ended', ended, [t.name for t in threading.enumerate()], flush=True)")
    try:
        os.kill(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        stop_group(proc, signal.SIGKILL)  # a no-op once it has ended
    assert "interrupted" in out and "ended (99, True) ['MainThread']" in out, out
    assert "stopping it" not in out, out  # it stopped by itself: neither lost nor hung
    assert plays_of(str(playbook)) == []


def test_a_play_that_does_not_stop_after_ctrl_c_is_stopped_for_good(tmp_path: Path) -> None:
    """ansible-playbook can hang when interrupted: a worker it kills while the worker sends a result leaves
    the result queue locked (seen in CI; plain ansible-playbook interrupted in a loop of large results hung
    once in 97 tries). Frozen here, it stands for that hang: drive stops the play's whole group after its
    grace, says so, and returns."""
    proc, playbook = start_driver(tmp_path, "print('ended', ended, flush=True)")
    try:
        table = processes()
        wrapper = next(pid for pid in plays_of(str(playbook)) if "watcher.owned" in table[pid][1])
        main = next(pid for pid in plays_of(str(playbook)) if table[pid][0] == wrapper)
        os.kill(main, signal.SIGSTOP)
        os.kill(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=play.STOP_GRACE_S + 30)
    finally:
        stop_group(proc, signal.SIGKILL)  # a no-op once it has ended
    assert "interrupted" in out, out
    assert f"the play has not stopped {play.STOP_GRACE_S:.0f} s after Ctrl-C: stopping it" in out, out
    assert "ended (" in out and ", True)" in out, out
    assert plays_of(str(playbook)) == []


# A callback plugin that makes ansible-playbook drop its first Ctrl-C, as it does when its handler's
# KeyboardInterrupt is raised in a callback Python runs at fork (seen in CI): the play goes on.
LOSES_CTRL_C = """
import signal
from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "loses_ctrl_c"
    CALLBACK_NEEDS_ENABLED = True

    def v2_playbook_on_play_start(self, play):
        signal.signal(signal.SIGINT, lambda signum, frame: signal.signal(signal.SIGINT, signal.SIG_DFL))
"""


def test_a_play_that_goes_on_after_ctrl_c_is_stopped_before_its_next_task_runs(tmp_path: Path) -> None:
    """ansible-playbook lost a Ctrl-C in CI, and the rollback went on to roll back every node. A task started
    after the Ctrl-C gives it away: drive stops the play for good then, says so, and returns."""
    plugins = tmp_path / "callback_plugins"
    plugins.mkdir()
    (plugins / "loses_ctrl_c.py").write_text(LOSES_CTRL_C)
    ran = tmp_path / "the-last-task-ran"
    proc, playbook = start_driver(tmp_path, "print('ended', ended, flush=True)",
                                  tasks=("sleep 6", "sleep 60", f"touch {ran}"),
                                  env={"ANSIBLE_CALLBACK_PLUGINS": str(plugins),
                                       "ANSIBLE_CALLBACKS_ENABLED": "loses_ctrl_c"})
    try:
        os.kill(proc.pid, signal.SIGINT)  # in the first task: the play drops it and starts the second
        out, _ = proc.communicate(timeout=play.STOP_GRACE_S + 30)
    finally:
        stop_group(proc, signal.SIGKILL)  # a no-op once it has ended
    assert "interrupted" in out, out
    assert "the play went on after Ctrl-C (ansible-playbook lost it): stopping it" in out, out
    assert "ended (" in out and ", True)" in out, out
    assert plays_of(str(playbook)) == []
    assert not ran.exists()


def test_a_killed_driver_takes_its_play_with_it(tmp_path: Path) -> None:
    """ansible-runner starts ansible-playbook in a session of its own (a pty, SIGHUP ignored): a driver killed
    with its process group (a controller gone, SIGKILL) must not leave the play running headless in its task."""
    proc, playbook = start_driver(tmp_path)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 15
        while plays_of(str(playbook)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert plays_of(str(playbook)) == [], "the play outlived its killed driver"
    finally:
        for pid in plays_of(str(playbook)):
            os.kill(pid, signal.SIGKILL)
        stop_group(proc, signal.SIGKILL)  # a no-op once it has ended
