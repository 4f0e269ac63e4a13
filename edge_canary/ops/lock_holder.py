"""Who holds a lock: a process named so that pid reuse and another machine cannot be mistaken for it.

A holder is {pid, start, host, boot}: `start` is the process's start time (field 22 of /proc/<pid>/stat,
clock ticks since boot), `boot` the kernel's boot id. A pid that is alive but started at another time is
another process (the holder is gone and its pid was reused); another boot means every holder is gone.
A lock written by another host cannot be checked from here: it counts as held.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (index 0 is field 3, the state)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def start_time(pid: int) -> int | None:
    fields = _stat(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


def parent(pid: int) -> int:
    fields = _stat(pid)
    return int(fields[1]) if fields else 0


def boot_id() -> str:
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return ""


def this_host() -> dict[str, str]:
    return {"host": socket.gethostname(), "boot": boot_id()}


def process(pid: int) -> dict[str, Any]:
    """The holder record of a live process of this machine."""
    return {"pid": pid, "start": start_time(pid), **this_host()}


def run_pid() -> int:
    """The outermost ansible-playbook (or ansible-runner) ancestor: Ansible runs a task in a forked worker
    with the same command line, which exits with the task; the run's main process lives as long as the run.
    Without one, the parent (a tool or test that runs the lock command as its child)."""
    pid, found = os.getppid(), None
    while pid > 1:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            break
        if b"ansible-playbook" in cmdline or b"ansible_runner" in cmdline:
            found = pid
        elif found is not None:
            break
        pid = parent(pid)
    return found or os.getppid()


def ancestors() -> list[dict[str, Any]]:
    """This process and every ancestor, as holder records."""
    chain: list[dict[str, Any]] = []
    pid = os.getpid()
    while pid > 1 and len(chain) < 256:
        chain.append(process(pid))
        pid = parent(pid)
    return chain


def alive(holder: dict[str, Any] | None) -> bool:
    """Whether the process the record names still runs (True when it cannot be told: another host)."""
    if not isinstance(holder, dict):
        return False
    try:
        pid = int(holder.get("pid", -1))
    except (TypeError, ValueError):
        return False
    here = this_host()
    if holder.get("host") not in (None, here["host"]):
        return True
    if holder.get("boot") and here["boot"] and holder["boot"] != here["boot"]:
        return False
    fields = _stat(pid) if pid > 0 else None
    if not fields or fields[0] in ("Z", "X"):
        return False
    recorded = holder.get("start")
    return recorded is None or len(fields) <= 19 or int(fields[19]) == int(recorded)


def same(holder: dict[str, Any] | None, other: dict[str, Any]) -> bool:
    """The same process: pid, start time and host (a record without a start time matches no one)."""
    return (isinstance(holder, dict) and holder.get("start") is not None
            and all(holder.get(key) == other.get(key) for key in ("pid", "start", "host", "boot")))
