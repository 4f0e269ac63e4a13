"""Run a command as a child its parent owns: when the parent dies, even by SIGKILL, the command and
everything in its process group are stopped.

ansible-runner starts ansible-playbook in a session of its own (a pty), out of reach of whoever kills
the watcher's process group. The watcher's revert runs it through this wrapper instead: the kernel
sends it SIGTERM when its parent (the watcher) dies (PR_SET_PDEATHSIG), and it stops the whole group
(SIGTERM, then SIGKILL after a grace), so no rollback play outlives the watcher beside the deploy's
own revert. ansible-playbook's workers run in sessions of their own (setsid): it forwards SIGTERM to
them, but a play too slow to do so within the grace would orphan them, so the wrapper is their
subreaper and SIGKILLs every descendant left, whatever its group, except what the play detached on
purpose to outlive it (the SLI watcher, started with EDGE_CANARY_DETACHED=1: it must go on judging and
reverting the canary when the deploy's controller is gone). The deploy tools
(edge_canary.ops.play) run their play through it too, with Ctrl-C passed on: a tool killed with its
process group (a controller gone) must not leave the play running headless.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

OWNER_ENV = "EDGE_CANARY_OWNER_PID"  # the pid that must stay our parent
DETACHED_ENV = "EDGE_CANARY_DETACHED"  # =1 in the environment of a process meant to outlive the play
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
GRACE = 3.0


def prctl(option: int, value: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option}) failed")


def set_parent_death_signal(sig: int) -> None:
    """Ask Linux to send `sig` to this process when its parent dies."""
    prctl(PR_SET_PDEATHSIG, sig)


def detached(pid: int) -> bool:
    """Whether the process was started to outlive the play (DETACHED_ENV=1 in its environment)."""
    try:
        return f"{DETACHED_ENV}=1".encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False


def descendants(root: int) -> list[int]:
    """Every live process under `root`, from /proc (orphans included once we are their subreaper), but
    for detached ones and what runs under them."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        if detached(pid):  # read for our own tree only, not for every process of the machine
            continue
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def stop_own_group(grace: float = GRACE) -> None:
    """SIGTERM to our process group (ourselves excepted), SIGKILL after `grace` to it and to every
    descendant in a session of its own; done as soon as none is left (a play that ends at once must not
    keep its lock, held in our name, for the whole grace). Further SIGTERM and SIGHUP are ignored."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        os.killpg(0, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while descendants(os.getpid()) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        kill_all(descendants(os.getpid()))
        os.killpg(0, signal.SIGKILL)


def main(argv: Sequence[str], pass_interrupt: bool = False) -> int:
    """Run `argv` as the owner's: stopped with its process group when the owner dies. SIGTERM or SIGHUP
    stop it too, and SIGINT unless `pass_interrupt` (Ctrl-C reaches the whole group, as a terminal sends
    it, and the command ends by itself: this process only waits for it)."""
    owner = int(os.environ.get(OWNER_ENV) or 0)
    set_parent_death_signal(signal.SIGTERM)
    prctl(PR_SET_CHILD_SUBREAPER, 1)  # orphaned descendants stay ours to find (stop_own_group)
    if owner and os.getppid() != owner:  # the owner died before the line above
        print(f"watcher.owned: owner {owner} is gone; not starting {argv[0]}", file=sys.stderr)
        return 143
    if os.getpgrp() != os.getpid():  # not a group leader: make a group to stop as a whole
        os.setpgid(0, 0)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        # Started on a pty (ansible-runner), our stderr is the owner's terminal, hung up once it died:
        # writing there fails (EIO), and that must not keep us from stopping the group.
        with contextlib.suppress(OSError):
            print(f"watcher.owned: signal {signum}: stopping {argv[0]} and its process group", file=sys.stderr)
        stop_own_group()

    for sig in (signal.SIGTERM, signal.SIGHUP) if pass_interrupt else (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, on_signal)
    if pass_interrupt:  # a handler, not SIG_IGN: the command must not inherit an ignored SIGINT
        signal.signal(signal.SIGINT, lambda signum, frame: None)
    # Run by a detached watcher (its revert), the play must not inherit the mark that spares the watcher.
    child = subprocess.Popen(list(argv), env={k: v for k, v in os.environ.items() if k != DETACHED_ENV})
    return child.wait()


def pid_file(folder: Path) -> Path:
    """Where executable(folder, ...) writes its pid as it starts: the play's process group, which it leads
    (ansible-runner starts it as a session leader), known before the play says anything."""
    return folder / "owned-ansible-playbook.pid"


def executable(folder: Path, command: Sequence[str], pass_interrupt: bool = False) -> str:
    """An executable in `folder` that runs `command` + its own arguments under main(): ansible-runner takes
    one binary. A shell script that execs Python (same pid, so the owner stays its parent): a #! line cannot
    name a Python whose path holds a space, as a clone in "My Projects" has."""
    path = folder / "owned-ansible-playbook"
    code = (f"import sys; from watcher.owned import main; "
            f"sys.exit(main([*{list(command)!r}, *sys.argv[1:]], pass_interrupt={pass_interrupt!r}))")
    path.write_text(f'#!/bin/sh\necho $$ > {shlex.quote(str(pid_file(folder)))}\n'
                    f'exec {shlex.quote(sys.executable)} -c {shlex.quote(code)} "$@"\n')
    path.chmod(0o700)
    return str(path)
