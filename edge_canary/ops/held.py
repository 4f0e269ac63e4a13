"""`edge-canary held-deploys --dir <state dir> ID...`: which of these deploys their SLI gate held, as JSON.

make status (playbooks/status.yml) runs it where the deploy records are (the control host, or the watch
host) with the deploy ids the nodes' release records name, so that a held deploy nobody resumed or rolled
back is named with what to do (edge_canary.ops.status judges whether it is still open). Prints a JSON list,
one object per held deploy: deploy_id, canary (of the gate that held), reason, sha256, version and nodes
(the canary and every peer it asked for). An id that is not a deploy id, has no record or did not hold is
left out; a check-mode run holds nothing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from edge_canary.ops import inputs
from edge_canary.ops.summary import last_gate, load_record


def held_deploy(runs: Path, deploy_id: str) -> dict[str, Any] | None:
    """The deploy's held gate, or None when it is no deploy id, has no record, or its last gate did not hold."""
    try:
        inputs.deploy_id("deploy_id", deploy_id)  # read from the nodes: never a path out of runs/
    except inputs.InputError:
        return None
    run_dir = runs / deploy_id
    asked = load_record(run_dir / "deploy.json")
    if not asked or asked.get("check_mode"):
        return None
    canary, verdict = last_gate(run_dir)
    if verdict.get("verdict") != "hold":
        return None
    return {"deploy_id": deploy_id, "canary": canary, "reason": str(verdict.get("reason") or "?"),
            "sha256": asked.get("sha256"), "version": asked.get("version"),
            "nodes": [asked.get("canary"), *(asked.get("peers") or [])]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="edge-canary held-deploys", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", required=True, type=Path, help="the state folder (edge_canary_state_dir)")
    parser.add_argument("deploy_ids", nargs="*", help="the deploy ids to look at")
    args = parser.parse_args(argv)
    held = [found for deploy_id in dict.fromkeys(args.deploy_ids)
            if (found := held_deploy(args.dir / "runs", deploy_id)) is not None]
    print(json.dumps(held))
    return 0
