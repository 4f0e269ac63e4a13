"""Run a command as a child its parent owns: when the parent dies, even by SIGKILL, the command and
everything in its process group are stopped.

ansible-runner starts ansible-playbook in a session of its own (a pty), out of reach of whoever kills
the watcher's process group. The watcher's revert runs it through this wrapper instead: the kernel
sends it SIGTERM when its parent (the watcher) dies (PR_SET_PDEATHSIG), and it stops the whole group
(SIGTERM, then SIGKILL after a grace), so no rollback play outlives the watcher beside the deploy's
own revert. The deploy tools (edge_canary.ops.play) run their play through it too, with Ctrl-C passed
on: a tool killed with its process group (a controller gone) must not leave the play running headless.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType

OWNER_ENV = "EDGE_CANARY_OWNER_PID"  # the pid that must stay our parent
PR_SET_PDEATHSIG = 1
GRACE = 3.0


def set_parent_death_signal(sig: int) -> None:
    """Ask Linux to send `sig` to this process when its parent dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


def stop_own_group(grace: float = GRACE) -> None:
    """SIGTERM to our process group (ourselves excepted), SIGKILL after `grace`."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        os.killpg(0, signal.SIGTERM)
        time.sleep(grace)
    finally:
        os.killpg(0, signal.SIGKILL)


def main(argv: Sequence[str], pass_interrupt: bool = False) -> int:
    """Run `argv` as the owner's: stopped with its process group when the owner dies. SIGTERM or SIGHUP
    stop it too, and SIGINT unless `pass_interrupt` (Ctrl-C reaches the whole group, as a terminal sends
    it, and the command ends by itself: this process only waits for it)."""
    owner = int(os.environ.get(OWNER_ENV) or 0)
    set_parent_death_signal(signal.SIGTERM)
    if owner and os.getppid() != owner:  # the owner died before the line above
        print(f"watcher.owned: owner {owner} is gone; not starting {argv[0]}", file=sys.stderr)
        return 143
    if os.getpgrp() != os.getpid():  # not a group leader: make a group to stop as a whole
        os.setpgid(0, 0)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        print(f"watcher.owned: signal {signum}: stopping {argv[0]} and its process group", file=sys.stderr)
        stop_own_group()

    for sig in (signal.SIGTERM, signal.SIGHUP) if pass_interrupt else (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, on_signal)
    if pass_interrupt:  # a handler, not SIG_IGN: the command must not inherit an ignored SIGINT
        signal.signal(signal.SIGINT, lambda signum, frame: None)
    child = subprocess.Popen(list(argv))
    return child.wait()
