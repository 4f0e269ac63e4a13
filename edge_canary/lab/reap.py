"""Stop every process that belongs to a lab: any whose command line names a path inside LAB_DIR.

Used by `make lab-down` and by `make lab-up` after a crash (supervisord killed, children orphaned).
Prints what it stopped; never touches its own ancestors.
"""

import contextlib
import os
import signal
import sys
import time
from pathlib import Path

from edge_canary.ops.wait_verdict import ended, running


def ancestors() -> set[int]:
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return pids


def lab_processes(lab_dir: str) -> list[int]:
    needle = lab_dir.rstrip("/") + "/"
    mine = ancestors()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(needle.encode() in arg for arg in args):
            found.append(int(entry.name))
    return sorted(found)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: lab-reap LAB_DIR", file=sys.stderr)
        return 64
    lab_dir = os.path.realpath(args[0])
    pids = lab_processes(lab_dir)
    if not pids:
        print("lab-reap: nothing to stop")
        return 0
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    for pid in pids:
        ended(pid, within=max(0.0, deadline - time.monotonic()))
    for pid in pids:
        if running(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    print(f"lab-reap: stopped {len(pids)} leftover lab process(es): {' '.join(map(str, pids))}")
    return 0

