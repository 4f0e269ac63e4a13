"""`edge-canary wait-approval`: the deploy play's wait after a promoted canary, until the approval is
decided and done (edge_canary.ops.approval_state); prints the outcome as the JSON verdict the play
acts on, like wait-verdict.

    approved                          -> {"verdict": "promote", ...}   the peers roll
    aborted / timed out, canary back  -> {"verdict": "aborted", ...}   the deploy stops, non-zero
    red while waiting, canary back    -> {"verdict": "reverted", ...}
    the watcher's revert failed       -> {"verdict": "revert_failed", ...}
    the watcher ended first           -> {"verdict": "died", ...}, exit 3  the play reverts the canary itself
    nothing done in time              -> {"verdict": "timeout", ...}, exit 4 (the watcher stopped first)

The watcher keeps judging the canary while it waits, decides the time limit and performs every
revert; this only waits, so that the deploy is told the outcome even if it was interrupted meanwhile.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from edge_canary.ops import approval_state as state
from edge_canary.ops.wait_verdict import running, stop_watcher


def outcome(record: dict[str, Any]) -> dict[str, Any] | None:
    """The play's verdict for a record that is done; None while it is not."""
    decided = record.get("state")
    if decided == state.APPROVED:
        return {
            "verdict": "promote",
            "approval": decided,
            "by": record.get("decided_by", ""),
            "reason": f"{record.get('reason') or 'approved'}; rolling the peers",
        }
    if not record.get("done"):
        return None
    revert = record.get("revert") or {}
    by = record.get("decided_by") or "?"
    if not revert.get("ok"):
        return {
            "verdict": "revert_failed",
            "approval": decided,
            "by": by,
            "reason": f"{record.get('reason')}; THE REVERT OF THE CANARY FAILED ({revert.get('detail', '?')}): "
            "revert it by hand (make rollback NODES=<canary>)",
        }
    verdict = "reverted" if decided == state.REVERTED else "aborted"
    return {
        "verdict": verdict,
        "approval": decided,
        "by": by,
        "reason": f"{record.get('reason')}; the canary was reverted to .previous",
    }


def _gone(run_dir: Path, why: str) -> dict[str, Any]:
    """The watcher is gone before the outcome: close a wait still open, so no approve lands later."""
    state.decide(run_dir, state.ABORTED, "deploy", why)
    return {"verdict": "died", "exit_code": None, "reason": f"{why}: the deploy reverts the canary itself"}


def wait(run_dir: Path, pid: int, timeout: float, poll: float = 0.5) -> tuple[int, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        record = state.read(run_dir)
        done = outcome(record) if record is not None else None
        if done is not None:
            return 0, done
        if not running(pid):
            record = state.read(run_dir)  # it may have finished just before exiting
            done = outcome(record) if record is not None else None
            if done is not None:
                return 0, done
            return 3, _gone(run_dir, f"the watcher (pid {pid}) ended while awaiting approval")
        if time.monotonic() > deadline:
            stopped = stop_watcher(pid)
            record = state.read(run_dir)
            done = outcome(record) if record is not None else None
            if done is not None:
                return 0, done
            verdict = _gone(run_dir, f"approval not done after {timeout:g} s; {stopped}")
            return 4, {**verdict, "verdict": "timeout"}
        time.sleep(poll)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="edge-canary wait-approval", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--pid", type=int, required=True, help="the watcher judging the canary meanwhile")
    parser.add_argument("--timeout", type=float, required=True)
    args = parser.parse_args(argv)
    code, verdict = wait(args.run_dir, args.pid, args.timeout)
    print(json.dumps(verdict))
    return code
