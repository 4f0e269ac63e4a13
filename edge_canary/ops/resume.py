"""`make resume DEPLOY_ID=<id> [APPROVE=1 SLI_WINDOW=… INVENTORY=…]` (edge-canary resume): finish a
deploy whose SLI gate said `hold` (a fleet-wide breach, or not enough evidence: the canary was not
blamed, the peers were not rolled) instead of re-running it from scratch.

It runs playbooks/deploy-canary.yml again as a new deploy (its own id and record, `resumed_from` the
held one) with what the held deploy asked for (runs/<id>/deploy.json: artifact, its sha256, canary,
peers, batch, config): preflight refuses it, changing nothing, when the canary no longer runs that
release; the canary, already on it, is not pushed again; a fresh SLI gate judges it; the peers roll
if it is green. Refused with one line (exit 64) for an unknown id or a deploy that was not held.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from edge_canary.ops import deploy, inputs, runs
from edge_canary.ops.play import run_play
from edge_canary.ops.summary import last_gate, load_record

REDACTED = "********"


def resumed_env(env: Mapping[str, str], run_dir: Path) -> dict[str, str]:
    """The environment of the resumed deploy: the held one's request over the operator's; InputError
    when that deploy cannot be resumed."""
    deploy_id = run_dir.name
    asked = load_record(run_dir / "deploy.json")
    verdict = last_gate(run_dir)[1].get("verdict") or "none (the SLI gate never finished)"
    if verdict != "hold":
        raise inputs.InputError(
            f"DEPLOY_ID={deploy_id} was not held (its SLI verdict: {verdict}): only a held deploy "
            "can be resumed; start a new make deploy-canary"
        )
    if asked.get("check_mode"):
        raise inputs.InputError(f"DEPLOY_ID={deploy_id} was a CHECK=1 run: nothing to resume")
    config = asked.get("config") or {}
    if not isinstance(config, dict) or REDACTED in map(str, config.values()):
        raise inputs.InputError(
            f"DEPLOY_ID={deploy_id} set secret config keys (redacted in its record): resume it "
            "with make deploy-canary ARTIFACT=… CONFIG=… instead"
        )
    if not asked.get("artifact") or not asked.get("sha256") or not asked.get("canary"):
        raise inputs.InputError(
            f"DEPLOY_ID={deploy_id}: its record {run_dir / 'deploy.json'} lacks the artifact, "
            "sha256 or canary; start a new make deploy-canary"
        )
    return {
        **env,
        "ARTIFACT": str(asked["artifact"]),
        "ARTIFACT_SHA256": str(asked["sha256"]),
        "CANARY_NODE": str(asked["canary"]),
        "PEER_NODES": ",".join(map(str, asked.get("peers") or [])),
        "BATCH": str(asked.get("batch") or 1),
        "CONFIG": " ".join(f"{key}={value}" for key, value in config.items()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="edge-canary resume", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.parse_args(argv)  # DEPLOY_ID and the rest come from the environment (make passes them)
    env = dict(os.environ)
    try:
        held_id, run_dir = runs.run_dir(env)
        new_env = resumed_env(env, run_dir)
        checked = deploy.checked_vars(new_env)
    except inputs.InputError as exc:
        print(f"resume: {exc}; nothing was changed", file=sys.stderr)
        return inputs.EXIT_USAGE
    checked["deploy_resume_of"] = held_id
    deploy_id = inputs.rules.new_deploy_id()
    return run_play(
        "deploy-canary.yml",
        deploy_id,
        deploy.extra_vars(checked, deploy_id),
        deploy.play_env(new_env),
        heading=f"resume: deploy {deploy_id} resumes held deploy {held_id} (canary {new_env['CANARY_NODE']}, "
        "not pushed again: a fresh SLI gate, then the peers)",
        logs=deploy.watcher_log,
        on_interrupt="resume: interrupted; letting the play stop cleanly (a started watcher keeps "
        "watching and still reverts)",
    )
