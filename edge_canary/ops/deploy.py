"""`make deploy-canary` (edge-canary deploy-canary): turn the runbook's variables into one
playbooks/deploy-canary.yml run, show the watcher's live lines while it judges the canary, then print
the summary table. Exit code: the play's.

Every setting comes from the environment (make passes its variables through): ARTIFACT, INVENTORY,
CANARY_NODE, PEER_NODES, BATCH, CONFIG, SLI_WINDOW, SLI_PROBE_INTERVAL, PROM_URL,
PROM_P95_THRESHOLD_S, PROM_ERR_RATE_THRESHOLD, ROLLBACK_BINARY, MIGRATIONS_DIR, and the flags
FORCE_MIGRATE, FORCE, CHECK (1/true/yes/on).
"""

from __future__ import annotations

import argparse
import getpass
import os
import time
from pathlib import Path

from edge_canary.ops.play import run_play
from edge_canary.ops.summary import summary_table
from edge_canary.util import truthy

# make/env variable -> extra var; only the ones that are set are passed, so group_vars keep the rest.
VARIABLES = {
    "ARTIFACT": "deploy_artifact",
    "CANARY_NODE": "deploy_canary_node",
    "PEER_NODES": "deploy_peer_nodes",
    "BATCH": "deploy_batch",
    "CONFIG": "deploy_config",
    "SLI_WINDOW": "sli_window",
    "SLI_PROBE_INTERVAL": "sli_probe_interval",
    "PROM_URL": "prom_url",
    "PROM_P95_THRESHOLD_S": "prom_p95_threshold_s",
    "PROM_ERR_RATE_THRESHOLD": "prom_err_rate_threshold",
    "ROLLBACK_BINARY": "rollback_binary",
    "MIGRATIONS_DIR": "migrations_dir",
}
PATHS = {"ARTIFACT", "ROLLBACK_BINARY", "MIGRATIONS_DIR"}
FLAGS = {"FORCE_MIGRATE": "force_migrate", "FORCE": "force_lock"}


def extra_vars(env: dict[str, str], deploy_id: str, announce: Path) -> dict[str, object]:
    found: dict[str, object] = {"deploy_id": deploy_id, "deploy_announce_file": str(announce)}
    for name, var in VARIABLES.items():
        value = env.get(name, "").strip()
        if value:
            found[var] = os.path.abspath(value) if name in PATHS else value
    if "ARTIFACT" in env and not env["ARTIFACT"].strip():
        found["deploy_artifact"] = ""
    for name, var in FLAGS.items():
        found[var] = truthy(env.get(name, ""))
    return found


def watcher_log(run_dir: Path) -> list[tuple[str, Path]]:
    return [("watcher", run_dir / "watcher.log")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args(argv)  # no flags: --help only
    env = dict(os.environ)
    user = getpass.getuser()
    deploy_id = f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{user}-{os.urandom(3).hex()}"
    return run_play("deploy-canary.yml", deploy_id, lambda announce: extra_vars(env, deploy_id, announce), env,
                    heading=f"deploy-canary: deploy {deploy_id}", logs=watcher_log, summary=summary_table,
                    on_interrupt="deploy-canary: interrupted; letting the play stop cleanly (a started watcher "
                                 "keeps watching and still reverts)")

