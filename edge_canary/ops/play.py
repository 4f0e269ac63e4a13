"""What deploy-canary, rollback and rollout share: run one playbook through ansible-runner's Python API,
as AWX does, printing its events as they come and the SLI watcher's live lines, let Ctrl-C reach the
play without abandoning it, print the summary (text and one JSON line) and free the play's lock.

The extra vars reach ansible-playbook only as a file of `!unsafe` values (edge_canary.ops.inputs):
never through a shell, never as `key=value` strings, never templated. The play checks them again
itself (edge.canary.operator_inputs); a value it refuses makes the exit code 64, as the tools' own
check does.

The play announces its record folder (runs/<id>/) as a fact (deploy_run_dir, rollout_run_dir); the
watcher logs are found from there. Credentials reach the play by its environment only: ansible-runner
writes the environment of the job into its `command` artifact, so the private data folder is in
memory when it can be (/dev/shm), readable by its owner only, that file is removed as soon as the play
runs, and the folder when it ends.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import ansible_runner

from edge_canary.ops import inputs, runs
from edge_canary.ops.play_events import PlayEvents
from edge_canary.util import truthy
from watcher import owned

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")
# An interrupted play stops within seconds; beyond this it is stopped for good. ansible-playbook can hang
# when interrupted: a worker it kills while the worker sends a result leaves its result queue locked.
STOP_GRACE_S = 30.0
# ansible-playbook can also lose a Ctrl-C: its handler's KeyboardInterrupt, raised while a callback Python
# runs at fork is running, is printed ("Exception ignored in") and dropped, and the play goes on. A task it
# starts this long after the Ctrl-C reached it says so (an interrupted play starts none).
LOST_AFTER_S = 0.5

# The watcher logs of a run folder, each with the label its lines are printed under.
LogFinder = Callable[[Path], list[tuple[str, Path]]]


def numbered_watcher_logs(run_dir: Path, kind: str) -> list[tuple[str, Path]]:
    """The watcher logs of the run folder's `<kind>-<n>` folders (a rollout's stages, a deploy's later
    waves), in order of n, each labelled `watcher <kind>-<n>`."""
    return [(f"watcher {folder.name}", folder / "watcher.log") for folder in runs.numbered(run_dir, kind)
            if (folder / "watcher.log").is_file()]


class WatcherLines:
    """Prints the new lines of every watcher log of the run folder, `    <label> | <line>`, each once.

    `where` says the run folder once the play has announced it (None until then). A follower thread
    catches up every half second, and the play's events catch up first too: a line the watcher wrote
    before the play moved on ("revert OK", then the verdict the play waits for) is printed before the
    play's next output, not after its recap."""

    def __init__(self, where: Callable[[], Path | None], logs: LogFinder) -> None:
        self.where, self.logs = where, logs
        self._positions: dict[Path, int] = {}
        self._lock = threading.Lock()

    def catch_up(self) -> None:
        run_dir = self.where()
        if run_dir is None:
            return
        with self._lock:
            for label, log in self.logs(run_dir):
                if not log.exists():
                    continue
                with log.open("rb") as handle:
                    handle.seek(self._positions.get(log, 0))
                    for line in handle:
                        if not line.endswith(b"\n"):
                            break  # still being written: the rest of it comes next round
                        print(f"    {label} | {line.decode(errors='replace').rstrip()}", flush=True)
                        self._positions[log] = self._positions.get(log, 0) + len(line)


EventHandler = Callable[[Mapping[str, Any]], bool]


def lines_first(lines: WatcherLines, handler: EventHandler) -> EventHandler:
    """The play's event handler, printing the watcher's new lines before each event's own output (most
    events print nothing: they need no catching up, and a deploy has a thousand of them)."""

    def handle(event: Mapping[str, Any]) -> bool:
        if event.get("stdout"):
            lines.catch_up()
        return handler(event)

    return handle


def follow(lines: WatcherLines, stop: threading.Event, interval: float = 0.5) -> None:
    """Print the watcher's lines as they come, until `stop`."""
    while not stop.is_set():
        lines.catch_up()
        stop.wait(interval)


def release_lock(run_dir: Path, lock_id: str) -> None:
    """A play that died mid-way leaves its lock to a dead process; free it now (a no-op when freed)."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "edge_canary",
            "lock",
            "--dir",
            str(run_dir.parent.parent),
            "release",
            "deploy",
            "--id",
            lock_id,
        ],
        capture_output=True,
    )


def private_dir(prefix: str) -> tempfile.TemporaryDirectory[str]:
    """ansible-runner's private data folder: in memory when /dev/shm is usable, 0700 either way."""
    shm = Path("/dev/shm")
    where = str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None
    return tempfile.TemporaryDirectory(prefix=prefix, dir=where)


def play_group(data_dir: Path) -> int | None:
    """The play's process group, led by watcher.owned, once it has started (None until then)."""
    try:
        return int(owned.pid_file(data_dir).read_text())
    except (OSError, ValueError):
        return None


def interrupt(data_dir: Path) -> bool:
    """Ctrl-C for the play: SIGINT to its process group, as a terminal sends it (the watcher has its own).
    False when the play has not started yet: the caller passes it on once it has."""
    group = play_group(data_dir)
    if group is None:
        return False
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signal.SIGINT)
    return True


def stop_for_good(data_dir: Path) -> None:
    """SIGTERM to watcher.owned, which stops the play's whole group (SIGKILL after its grace)."""
    group = play_group(data_dir)
    if group is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(group, signal.SIGTERM)


def not_stopping(events: PlayEvents, passed_at: float, stop_by: float) -> str:
    """Why an interrupted play must be stopped for good now ('' while it is stopping as it should)."""
    if passed_at and events.last_start > passed_at + LOST_AFTER_S:
        return "the play went on after Ctrl-C (ansible-playbook lost it)"
    if time.monotonic() > stop_by:
        return f"the play has not stopped {STOP_GRACE_S:.0f} s after Ctrl-C"
    return ""


def drive(
    playbook: str,
    cmdline: list[str],
    env: Mapping[str, str],
    data_dir: Path,
    events: PlayEvents,
    logs: LogFinder,
    on_interrupt: str,
) -> tuple[int, bool]:
    """Run the play with ansible-runner while following its watcher logs: (its exit code, interrupted)."""
    runner_env = {
        **env,
        "EDGE_CANARY_RUN_SUMMARY": "false",  # we print the summary ourselves
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', os.defpath)}",
        owned.OWNER_ENV: str(os.getpid()),  # the play lives no longer than this process (watcher.owned)
    }
    if not sys.stdout.isatty():  # the play writes to runner's pty: no colours in a log or a pipe
        runner_env.setdefault("ANSIBLE_NOCOLOR", "1")

    def status(status: Mapping[str, Any], runner_config: Any = None) -> None:
        events.status_changed(status, runner_config)
        if status.get("status") == "running":  # the environment (credentials too) was written there
            for command in data_dir.glob("artifacts/*/command"):
                command.unlink(missing_ok=True)

    lines = WatcherLines(events.run_dir, logs)
    thread, runner = ansible_runner.run_async(
        private_data_dir=str(data_dir),
        project_dir=str(REPO),
        playbook=str(REPO / "playbooks" / playbook),
        # With a binary of its own, ansible-runner passes no playbook: it is the first argument. Under
        # watcher.owned, Ctrl-C passed on: ansible-runner starts it in a session of its own (a pty, SIGHUP
        # ignored), out of reach of whoever kills this tool's process group; owned, it stops when we die.
        binary=owned.executable(data_dir, [ANSIBLE_PLAYBOOK], pass_interrupt=True),
        cmdline=shlex.join([str(REPO / "playbooks" / playbook), *cmdline]),
        envvars=runner_env,
        quiet=True,
        suppress_output_file=True,
        suppress_env_files=True,
        event_handler=lines_first(lines, events.event),
        status_handler=status,
        cancel_callback=lambda: False,
    )  # Ctrl-C is ours to pass on (runner's own cancel kills the play)
    stop = threading.Event()
    follower = threading.Thread(target=follow, args=(lines, stop), daemon=True)
    follower.start()
    interrupted = threading.Event()
    passed_at = 0.0  # when the first Ctrl-C reached the play (epoch seconds, as its events are stamped)
    stop_by = 0.0

    def pass_on_now() -> None:
        nonlocal passed_at
        if interrupt(data_dir) and not passed_at:
            passed_at = time.time()

    def pass_on(signum: int, frame: Any) -> None:
        nonlocal stop_by
        if not interrupted.is_set():
            print(on_interrupt, flush=True)
            stop_by = time.monotonic() + STOP_GRACE_S
        interrupted.set()
        pass_on_now()

    # Ctrl-C is ours to pass on even where SIGINT came in ignored (a background job): ansible-playbook,
    # which got it before, sets its own handler too. The handler raises nothing: a KeyboardInterrupt in
    # Thread.join marks the thread stopped while it still runs (Python 3.11), and this function then
    # returned while the play was still stopping: its summary incomplete, its folder and lock gone under it.
    previous = signal.signal(signal.SIGINT, pass_on)
    try:
        while thread.is_alive():
            thread.join(0.25)
            if interrupted.is_set() and not passed_at:  # a Ctrl-C that came before the play started
                pass_on_now()
            why = not_stopping(events, passed_at, stop_by) if stop_by else ""
            if why:
                print(f"{why}: stopping it (SIGTERM, then SIGKILL)", flush=True)
                stop_for_good(data_dir)
                stop_by = 0.0
    finally:
        signal.signal(signal.SIGINT, previous)
    stop.set()
    follower.join(2)
    lines.catch_up()  # what the watcher wrote since the follower's last round
    return (runner.rc if runner.rc is not None else 1), interrupted.is_set()


def run_play(
    playbook: str,
    run_id: str,
    extra_vars: dict[str, Any],
    env: Mapping[str, str],
    *,
    heading: str,
    logs: LogFinder,
    on_interrupt: str,
) -> int:
    """Run playbooks/<playbook> as an on-call tool does; the play's exit code (64 when it refused input).

    The extra vars go in a file; INVENTORY and CHECK come from env, which is also the play's
    environment (credentials reach the watcher through it). Prints `heading`, the play's events and
    the watcher's lines while it runs, then the run's summary, and frees the lock `run_id` holds."""
    check = truthy(env.get("CHECK", ""))
    with private_dir(f"edge-{Path(playbook).stem}-") as tmp:
        vars_file = Path(tmp) / "extra-vars.yml"
        inputs.write_extra_vars(vars_file, extra_vars)
        cmdline = ["-e", f"@{vars_file}"]
        inventory = inputs.inventory(env)  # checked by the tool already
        if inventory is not None:
            cmdline += ["-i", os.path.abspath(inventory) if os.path.exists(inventory) else inventory]
        if check:
            cmdline += ["--check", "--diff"]
        print(f"{heading}{' (CHECK: nothing will change)' if check else ''}", flush=True)
        events = PlayEvents()
        (Path(tmp) / "runner").mkdir(mode=0o700)
        code, interrupted = drive(playbook, cmdline, env, Path(tmp) / "runner", events, logs, on_interrupt)
        print(events.summary(interrupted, code), flush=True)
        run_dir = events.run_dir()
        if run_dir is not None and run_id:
            release_lock(run_dir, run_id)
    if interrupted and not check:
        print_fleet_now(inventory)
    return inputs.EXIT_USAGE if events.record.refused else code


def print_fleet_now(inventory: str | None) -> None:
    """After Ctrl-C, the fleet as it is now (make status): the summary knows the steps each node finished,
    not whether the one cut short left it drained."""
    from edge_canary.ops.status import where_the_fleet_stands  # status imports this module

    print("\nWhere the fleet stands now (make status; Ctrl-C again to skip):", flush=True)
    try:
        print(where_the_fleet_stands(inventory), flush=True)
    except KeyboardInterrupt:
        print("skipped: run make status", flush=True)
