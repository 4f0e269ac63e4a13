"""`edge-canary <subcommand> [args]`: one front door to every tool of the project.

Each subcommand is a module with `main(argv) -> int`, imported only when it runs, so that one tool's
dependencies (matplotlib for game-day reports, say) never slow another down.
"""

from __future__ import annotations

import importlib
import sys
from typing import NamedTuple


class Subcommand(NamedTuple):
    module: str
    summary: str
    function: str = "main"  # the module's entry point, main(argv) -> int


SUBCOMMANDS: dict[str, Subcommand] = {
    # On-call
    "deploy-canary": Subcommand("edge_canary.ops.deploy", "canary deploy: preflight, canary, SLI gate, peers"),
    "rollback": Subcommand("edge_canary.ops.rollback", "roll nodes back to .previous (NODES, ROLLBACK_BINARY, BATCH)"),
    "status": Subcommand("edge_canary.ops.status", "one row per node; non-zero on drained/down nodes, mixed versions"),
    "rollout": Subcommand("edge_canary.ops.rollout", "move rollout_pct on every node, by stages"),
    "lock": Subcommand("edge_canary.ops.lock", "the control host's deploy and game-day locks"),
    "held-deploys": Subcommand("edge_canary.ops.held", "which deploys their SLI gate held (for status), as JSON"),
    "lock-keep": Subcommand("edge_canary.ops.lock_remote", "keep the watch host's deploy lock while this run lives"),
    "watch-service": Subcommand("edge_canary.ops.watch_service", "start the watcher as a service on the watch host"),
    "wait-verdict": Subcommand("edge_canary.ops.wait_verdict", "wait for the SLI watcher's verdict file"),
    "check-prometheus": Subcommand("edge_canary.ops.prom_check", "does Prometheus answer the watcher's credentials"),
    "artifact-version": Subcommand("edge_canary.ops.artifact_version", "an artifact's version, never running it"),
    "check-migrations": Subcommand("edge_canary.ops.migrations", "refuse migrations the old release cannot run with"),
    "approve": Subcommand(
        "edge_canary.ops.approval", "let a deploy waiting for approval roll its peers (DEPLOY_ID)", "approve_main"
    ),
    "abort": Subcommand(
        "edge_canary.ops.approval", "revert the canary of a deploy waiting for approval (DEPLOY_ID)", "abort_main"
    ),
    "resume": Subcommand("edge_canary.ops.resume", "re-judge a held deploy's canary and roll its peers (DEPLOY_ID)"),
    "wait-approval": Subcommand("edge_canary.ops.approval_wait", "wait until a deploy's approval is decided and done"),
    "notify": Subcommand("edge_canary.ops.notify", "post a deploy event to Alertmanager (never fails)"),
    # Game days and benchmarks
    "gameday": Subcommand("edge_canary.gameday.cli", "break a release on purpose and prove the revert fires"),
    "bench": Subcommand("edge_canary.bench.cli", "measure revert time, drops under load, roll time, watcher cost"),
    # The lab
    "lab-check": Subcommand("edge_canary.lab.check", "check the lab settings before lab-up, record them after"),
    "lab-status": Subcommand("edge_canary.lab.status", "each lab component's state"),
    "lab-netns": Subcommand("edge_canary.lab.netns", "the hosts-mode lab's network namespaces and cuts"),
    "lab-reap": Subcommand("edge_canary.lab.reap", "stop every process of a lab"),
    "build-artifact": Subcommand("edge_canary.lab.artifact", "build an edge binary (zipapp) with faults baked in"),
    "loadgen": Subcommand("edge_canary.lab.loadgen", "steady open-loop HTTP load for a bounded time"),
}


def usage() -> str:
    width = max(map(len, SUBCOMMANDS))
    rows = "\n".join(f"  {name:<{width}}  {sub.summary}" for name, sub in SUBCOMMANDS.items())
    return f"usage: edge-canary <subcommand> [args]  (edge-canary <subcommand> --help)\n\n{rows}\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        sys.stdout.write(usage())
        return 0 if args else 64
    sub = SUBCOMMANDS.get(args[0])
    if sub is None:
        sys.stderr.write(f"edge-canary: no subcommand {args[0]!r}; one of: {', '.join(SUBCOMMANDS)}\n")
        return 64
    sys.argv[0] = f"edge-canary {args[0]}"
    result: int = getattr(importlib.import_module(sub.module), sub.function)(args[1:])
    return result
