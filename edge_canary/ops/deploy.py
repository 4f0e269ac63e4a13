"""`make deploy-canary` (edge-canary deploy-canary): turn the runbook's variables into one
playbooks/deploy-canary.yml run through ansible-runner (edge_canary.ops.play), show the watcher's live
lines while it judges the canary, then print the summary table and its JSON line. Exit code: the
play's (64 for a refused variable).

Every setting comes from the environment (make passes its variables through): ARTIFACT, INVENTORY,
CANARY_NODE, PEER_NODES, BATCH, CONFIG, SLI_WINDOW, SLI_PROBE_INTERVAL, PROM_URL,
PROM_P95_THRESHOLD_S, PROM_ERR_RATE_THRESHOLD, ROLLBACK_BINARY, MIGRATIONS_DIR, ARTIFACT_SHA256,
APPROVE (1/0: wait for make approve after a promoted canary), APPROVAL_TIMEOUT (seconds), and the
flags FORCE_MIGRATE, FORCE, CHECK (1/true/yes/on). Each is checked by edge_canary.ops.inputs
(exit 64 with one line before anything runs) and reaches the play as an `!unsafe` extra var.
Credentials (PROM_TOKEN, PROM_USER, PROM_PASSWORD, or user:password@ in PROM_URL) go to the play and
its watcher through the environment only.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from edge_canary.ops import inputs
from edge_canary.ops.play import numbered_watcher_logs, run_play
from edge_canary.util import truthy
from watcher.prom import split_userinfo

# make/env variable -> (extra var, check): the one schema's (plugins/module_utils/operator_inputs.py), with
# PROM_URL's user:password@ taken off (it goes to the play's environment, see play_env). Only the ones that
# are set are passed, so group_vars keep the rest.
VARIABLES: dict[str, tuple[str, Callable[[str, str], object]]] = {
    **inputs.rules.DEPLOY,
    "PROM_URL": ("prom_url", lambda n, v: split_userinfo(inputs.url(n, v))[0]),
    # Set only when given: deploy_approval in group_vars stands otherwise (a flag, checked as the play's flags).
    "APPROVE": ("deploy_approval", inputs.flag),
}
FLAGS = {"FORCE_MIGRATE": "force_migrate", "FORCE": "force_lock"}


def checked_vars(env: Mapping[str, str]) -> dict[str, object]:
    """The extra vars of the make variables that are set; InputError on the first bad one."""
    found: dict[str, object] = {}
    for name, (var, check) in VARIABLES.items():
        value = env.get(name, "")
        if value.strip():
            found[var] = check(name, value)
    for name, var in FLAGS.items():
        found[var] = truthy(env.get(name, ""))
    inputs.inventory(env)
    return found


def play_env(env: Mapping[str, str]) -> dict[str, str]:
    """The play's environment: PROM_URL without user:password@, which become PROM_USER/PROM_PASSWORD
    (unless those are set), so that the credentials never reach a file or an argument."""
    out = dict(env)
    if env.get("PROM_URL", "").strip():
        clean, user, password = split_userinfo(env["PROM_URL"].strip())
        out["PROM_URL"] = clean
        if user is not None and not env.get("PROM_USER"):
            out["PROM_USER"] = user
        if password is not None and not env.get("PROM_PASSWORD"):
            out["PROM_PASSWORD"] = password
    return out


def extra_vars(checked: Mapping[str, object], deploy_id: str) -> dict[str, object]:
    return {"deploy_id": deploy_id, **checked}


def watcher_log(run_dir: Path) -> list[tuple[str, Path]]:
    """The first canary's watcher log, then each later wave's (a deploy across PoPs), in wave order."""
    return [("watcher", run_dir / "watcher.log"), *numbered_watcher_logs(run_dir, "wave")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args(argv)  # no flags: --help only
    env = dict(os.environ)
    try:
        if not env.get("ARTIFACT", "").strip():
            raise inputs.InputError("ARTIFACT is not set: run make deploy-canary ARTIFACT=/path/to/edge-binary")
        checked = checked_vars(env)
    except inputs.InputError as exc:
        print(f"deploy-canary: {exc}; nothing was changed", file=sys.stderr)
        return inputs.EXIT_USAGE
    deploy_id = inputs.rules.new_deploy_id()
    return run_play(
        "deploy-canary.yml",
        deploy_id,
        extra_vars(checked, deploy_id),
        play_env(env),
        heading=f"deploy-canary: deploy {deploy_id}",
        logs=watcher_log,
        on_interrupt="deploy-canary: interrupted; letting the play stop cleanly (a started watcher "
        "keeps watching and still reverts)",
    )
