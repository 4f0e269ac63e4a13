"""`make rollout PCT=N | STAGES="1 10 50 100" [ROLLOUT_HOLD=s] [CHECK=1] [FORCE=1]` (edge-canary rollout,
every setting from the environment, INVENTORY too).

Checks the request (one line and exit 64 when it is wrong, before anything runs), runs
playbooks/rollout.yml, shows the watcher's live lines while it judges each stage, then prints how
each stage ended. Exit code: the play's (0 when every stage was promoted).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_canary.ops import inputs
from edge_canary.ops.play import numbered_watcher_logs, run_play
from edge_canary.util import truthy

EXIT_USAGE = inputs.EXIT_USAGE
# The request cannot be run; the message says what to give instead (the one schema's error).
UsageError = inputs.InputError


@dataclass(frozen=True)
class Request:
    stages: tuple[int, ...]
    hold: int | None  # seconds, overriding every stage's hold; None = group_vars' holds
    asked: str  # how the user said it, for messages
    single: bool  # PCT=N rather than STAGES


def parse_request(pct: str, stages: str, hold: str) -> Request:
    """PCT or STAGES (not both), each a whole number 0-100, stages going up; ROLLOUT_HOLD seconds."""
    stages_asked, asked = inputs.rules.rollout_stages("PCT", pct, "STAGES", stages)  # the one schema's
    seconds = inputs.rules.hold_seconds("ROLLOUT_HOLD", hold)
    return Request(stages_asked, seconds, asked, single=bool(pct.strip()))


def extra_vars(req: Request, rollout_id: str, force: bool) -> dict[str, Any]:
    found: dict[str, Any] = {"rollout_id": rollout_id, "force_lock": force}
    if req.single:
        found["rollout_pct"] = str(req.stages[0])
    else:
        found["rollout_stages"] = " ".join(str(s) for s in req.stages)
    if req.hold is not None:
        found["rollout_hold"] = str(req.hold)
    return found


def stage_logs(run_dir: Path) -> list[tuple[str, Path]]:
    """Each watched stage's watcher log, in stage order."""
    return numbered_watcher_logs(run_dir, "stage")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args(argv)  # no flags: --help only
    env = dict(os.environ)
    try:
        req = parse_request(env.get("PCT", ""), env.get("STAGES", ""), env.get("ROLLOUT_HOLD", ""))
        inputs.inventory(env)
    except UsageError as exc:
        print(f"rollout: {exc}; nothing was changed", file=sys.stderr)
        return EXIT_USAGE
    rollout_id = inputs.rules.new_run_id("rollout")
    force = truthy(env.get("FORCE", ""))
    return run_play(
        "rollout.yml",
        rollout_id,
        extra_vars(req, rollout_id, force),
        env,
        heading=f"rollout: {rollout_id}: {req.asked}",
        logs=stage_logs,
        on_interrupt="rollout: interrupted; letting the play stop cleanly (a started watcher keeps "
        "watching and still sets rollout_pct=0 on red)",
    )
