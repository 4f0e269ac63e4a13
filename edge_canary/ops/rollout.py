"""`make rollout PCT=N | STAGES="1 10 50 100" [ROLLOUT_HOLD=s] [CHECK=1] [FORCE=1]` (edge-canary rollout,
every setting from the environment, INVENTORY too).

Checks the request (one line and exit 64 when it is wrong, before anything runs), runs
playbooks/rollout.yml, shows the watcher's live lines while it judges each stage, then prints how
each stage ended. Exit code: the play's (0 when every stage was promoted).
"""

from __future__ import annotations

import argparse
import getpass
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_canary.ops import inputs
from edge_canary.ops.play import run_play
from edge_canary.ops.summary import load_record
from edge_canary.util import truthy

EXIT_USAGE = inputs.EXIT_USAGE
_PCT = re.compile(r"[0-9]{1,3}")
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
    pct, stages, hold = pct.strip(), stages.strip(), hold.strip()
    if bool(pct) == bool(stages):
        raise UsageError("give PCT or STAGES, not both" if pct else
                         'give PCT=N (0-100) or STAGES="1 10 50 100"')
    asked = f"PCT={inputs.shown(pct)}" if pct else f'STAGES="{inputs.shown(stages)}"'
    tokens = [pct] if pct else re.findall(r"[^,\s]+", stages)
    for token in tokens:
        if not _PCT.fullmatch(token) or int(token) > 100:
            raise UsageError(f"{asked}: {inputs.shown(token, 20)} is not a whole number from 0 to 100; "
                             'e.g. PCT=10 or STAGES="1 10 50 100"')
    values = tuple(int(t) for t in tokens)
    if any(later <= earlier for earlier, later in zip(values, values[1:], strict=False)):
        raise UsageError(f'{asked}: each stage must be above the one before, '
                         'e.g. STAGES="1 10 50 100"')
    if hold and not inputs.WHOLE.fullmatch(hold):  # ASCII digits: "²".isdigit() is True, int("²") fails
        raise UsageError(f"ROLLOUT_HOLD={inputs.shown(hold)} is not a whole number of seconds (0 = no watch)")
    seconds = int(hold) if hold else None
    return Request(values, seconds, asked, single=bool(pct))


def extra_vars(req: Request, rollout_id: str, announce: Path, force: bool) -> dict[str, Any]:
    found: dict[str, Any] = {
        "rollout_id": rollout_id,
        "rollout_announce_file": str(announce),
        "force_lock": force,
    }
    if req.single:
        found["rollout_pct"] = str(req.stages[0])
    else:
        found["rollout_stages"] = " ".join(str(s) for s in req.stages)
    if req.hold is not None:
        found["rollout_hold"] = str(req.hold)
    return found


def summary(run_dir: Path) -> str:
    """How each stage ended, from the rollout's result.json."""
    result = load_record(run_dir / "result.json")
    if not result:
        return f"rollout: no result in {run_dir} (the play stopped early; see its output above)"
    lines = ["", f"rollout {result.get('rollout_id')}:"]
    for stage in result.get("stages", []):
        why = f" - {stage['reason']}" if stage.get("reason") else ""
        lines.append(f"  stage {stage.get('stage')}: {stage.get('pct')} % held {stage.get('hold')} s"
                     f" -> {stage.get('verdict')}{why}")
    stopped = result.get("stopped")
    if stopped:
        lines.append(f"  STOPPED at {stopped.get('pct')} % ({stopped.get('verdict')})")
    lines.append(f"  every node now at rollout_pct={result.get('rollout_pct')}; records in {run_dir}")
    return "\n".join(lines)


def stage_logs(run_dir: Path) -> list[tuple[str, Path]]:
    """Each watched stage's watcher log, in stage order."""
    logs = sorted(run_dir.glob("stage-*/watcher.log"), key=lambda p: int(p.parent.name.split("-")[1]))
    return [(f"watcher {log.parent.name}", log) for log in logs]


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
    rollout_id = f"rollout-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{inputs.id_part(getpass.getuser())}"
    force = truthy(env.get("FORCE", ""))
    return run_play("rollout.yml", rollout_id, lambda announce: extra_vars(req, rollout_id, announce, force), env,
                    heading=f"rollout: {rollout_id}: {req.asked}", logs=stage_logs, summary=summary,
                    on_interrupt="rollout: interrupted; letting the play stop cleanly (a started watcher keeps "
                                 "watching and still sets rollout_pct=0 on red)")

