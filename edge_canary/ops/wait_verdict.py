"""Wait for the SLI watcher's verdict file; print it as JSON.

Exit 0 with the verdict once the file is there; exit 3 with {"verdict": "died", ...} when the watcher
process ends without writing one (killed): the deploy must treat that as red. Exit 4 on timeout.
"""

import argparse
import json
import time
from pathlib import Path


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


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
            print(json.dumps({"verdict": "timeout", "reason": f"no verdict after {args.timeout:g} s"}))
            return 4
        time.sleep(0.5)

