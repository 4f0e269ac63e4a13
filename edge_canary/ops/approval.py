"""`make approve DEPLOY_ID=<id>` / `make abort DEPLOY_ID=<id>` (edge-canary approve|abort): decide a
deploy that waits for approval after its promoted canary (APPROVE=1 or deploy_approval). abort also stops
a canary still in its SLI window: its watcher reverts it at once, as on red (runs/<id>/abort.json).

approve: the deploy rolls the peers. abort: the deploy's watcher reverts the canary to .previous
(the rollback play, limited to the canary) and the deploy exits non-zero saying who aborted it.
The decision goes into the deploy's record folder (runs/<id>/approval.json, edge_canary.ops.approval_state;
a deploy across points of presence waits again after each wave's canary: its latest wave's wave-<n>/);
the deploy and its watcher act on it within a second or two. Approving twice is a no-op; a deploy
that is not waiting is left alone, saying what became of it. Exit: 0 done (or already so), 1 the
deploy is not waiting, 64 a bad or unknown DEPLOY_ID.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from edge_canary.ops import approval_state as state
from edge_canary.ops import inputs, runs

EXIT_NOT_WAITING = 1


def decide(action: str, env: Mapping[str, str]) -> int:
    """approve or abort the deploy DEPLOY_ID names; the exit code. One line on stdout or stderr."""
    prog = action
    try:
        deploy_id, run_dir = runs.run_dir(env)
    except inputs.InputError as exc:
        print(f"{prog}: {exc}; nothing was changed", file=sys.stderr)
        return inputs.EXIT_USAGE
    by = runs.operator(env)
    to = state.APPROVED if action == "approve" else state.ABORTED
    reason = f"{'approved' if to == state.APPROVED else 'aborted'} by {by} (make {action})"
    if to == state.ABORTED and abort_window(deploy_id, run_dir, by, reason):
        return 0
    run_dir = state.current_gate(run_dir)
    result = state.decide(run_dir, to, by, reason)
    record = result.record
    if result.changed:
        wave = state.wave_of(run_dir)
        canary = f"{wave}'s canary" if wave else "the canary"
        then = (
            f"the deploy now rolls {state.rolled_next(run_dir)}"
            if to == state.APPROVED
            else f"the watcher now reverts {canary} to .previous and the deploy stops"
        )
        print(f"{prog}: deploy {deploy_id} {to} by {by}: {then} (record: {run_dir / state.FILE})")
        return 0
    if record is not None and record.get("state") == to:
        print(f"{prog}: deploy {deploy_id} was already {to} by {record.get('decided_by') or '?'}: nothing to do")
        return 0
    hint = (
        ""
        if record is None
        else " (make rollback NODES=<canary> reverts a promoted canary)"
        if record.get("state") == state.APPROVED
        else ""
    )
    print(
        f"{prog}: deploy {deploy_id} is not waiting for approval: {state.describe(record)}; nothing was changed{hint}",
        file=sys.stderr,
    )
    return EXIT_NOT_WAITING


def abort_window(deploy_id: str, run_dir: Path, by: str, reason: str) -> bool:
    """Abort a canary still in its SLI window (no approval wait yet): its watcher reverts it at once, as on
    red. False when no watcher of the deploy is judging a window (then an approval wait may be decided)."""
    waves = runs.numbered(run_dir, "wave")
    gate = waves[-1] if waves else run_dir  # the latest wave's canary is the one being judged
    already = state.abort_asked(gate)
    if already is not None:
        print(f"abort: deploy {deploy_id} was already {already}: nothing to do")
        return True
    if (gate / state.FILE).exists() or not state.ask_abort(gate, by, reason):
        return False
    wave = state.wave_of(gate)
    canary = f"{wave}'s canary" if wave else "the canary"
    print(f"abort: deploy {deploy_id} aborted by {by} in its SLI window: its watcher now reverts {canary} "
          f"to .previous and the deploy stops (record: {gate / state.ABORT_FILE})")
    return True


def _main(action: str, argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(
        prog=f"edge-canary {action}", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.parse_args(argv)  # DEPLOY_ID and INVENTORY come from the environment (make passes them)
    return decide(action, dict(os.environ))


def approve_main(argv: list[str] | None = None) -> int:
    return _main("approve", argv)


def abort_main(argv: list[str] | None = None) -> int:
    return _main("abort", argv)


main = approve_main
