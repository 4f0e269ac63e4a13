"""Wait for the SLI watcher's verdict file; print it as JSON.

Exit 0 with the verdict once the file is there; exit 3 with {"verdict": "died", ...} when the watcher
process ends without writing one (killed): the deploy must treat that as red. Exit 4 with
{"verdict": "timeout", ...} when none came in time: red too. With --stop-watcher a watcher still there
at the timeout (hung, stopped) is killed first, with its process group (its rollback play's wrapper
follows it: watcher/owned.py), so the deploy's own revert never runs beside the watcher's.
"""

import argparse
import contextlib
import json
import os
import signal
import time
from pathlib import Path


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def ended(pid: int, within: float) -> bool:
    """Whether process `pid` has ended (a zombie counts), waiting up to `within` seconds."""
    deadline = time.monotonic() + within
    while running(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def is_watcher(pid: int) -> bool:
    """The pid still runs the watcher (`-m watcher`), not a process that took its pid over."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"watcher" in argv or any(arg.endswith(b"edge-canary-watcher") for arg in argv)


def stop_watcher(pid: int, wait: float = 10.0) -> str:
    """SIGKILL the watcher (its process group when it leads one, as start.yml starts it); what was done."""
    if not running(pid):
        return f"the watcher (pid {pid}) is no longer running"
    if not is_watcher(pid):
        return f"pid {pid} no longer runs the watcher: left alone"
    with contextlib.suppress(ProcessLookupError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    return f"the watcher (pid {pid}) was stopped" + ("" if ended(pid, wait) else " but is still there")


def read_verdict(path: Path) -> dict[str, object] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--verdict-file", type=Path, required=True)
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--timeout", type=float, required=True)
    parser.add_argument("--stop-watcher", action="store_true",
                        help="kill a watcher still running at the timeout, with its process group")
    args = parser.parse_args(argv)
    deadline = time.monotonic() + args.timeout
    while True:
        verdict = read_verdict(args.verdict_file)
        if verdict is not None:
            print(json.dumps(verdict))
            return 0
        if not running(args.pid):
            verdict = read_verdict(args.verdict_file)  # it may have written it just before exiting
            if verdict is not None:
                print(json.dumps(verdict))
                return 0
            print(json.dumps({"verdict": "died", "exit_code": None,
                              "reason": f"the watcher (pid {args.pid}) ended without a verdict"}))
            return 3
        if time.monotonic() > deadline:
            reason = f"no verdict after {args.timeout:g} s"
            if args.stop_watcher:
                reason += "; " + stop_watcher(args.pid)
                verdict = read_verdict(args.verdict_file)
                if verdict is not None:  # it finished while being stopped: its verdict stands
                    print(json.dumps(verdict))
                    return 0
            print(json.dumps({"verdict": "timeout", "exit_code": None, "reason": reason}))
            return 4
        time.sleep(0.5)

