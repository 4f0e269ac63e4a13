"""`make rollback [NODES=edge-2,edge-3|"edge-2 edge-3"|all] [ROLLBACK_BINARY=path] [BATCH=n]
[MAX_UNAVAILABLE=n] [CHECK=1] [FORCE=1]` (edge-canary rollback, every setting from the environment,
INVENTORY too).

Checks the request with the one schema (edge_canary.ops.inputs: one line and exit 64 when it is
wrong, before anything runs), then runs playbooks/rollback.yml with the values as `!unsafe` extra
vars in a file: rollback_nodes, rollback_binary, rollback_batch, rollback_max_unavailable,
force_lock. NODES unset rolls back every node (the playbook's default). Exit code: the play's.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping

from edge_canary.ops import inputs
from edge_canary.ops.play import run_play
from edge_canary.util import truthy


def checked_vars(env: Mapping[str, str]) -> dict[str, object]:
    """The extra vars of the request; InputError on the first bad variable."""
    found: dict[str, object] = {}
    for name, (var, check) in inputs.rules.ROLLBACK.items():  # the one schema's
        value = env.get(name, "")
        if value.strip():
            found[var] = check(name, value)
    found["force_lock"] = truthy(env.get("FORCE", ""))
    inputs.inventory(env)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args(argv)  # no flags: --help only
    env = dict(os.environ)
    try:
        found = checked_vars(env)
    except inputs.InputError as exc:
        print(f"rollback: {exc}; nothing was changed", file=sys.stderr)
        return inputs.EXIT_USAGE
    asked = str(found.get("rollback_nodes", "all"))
    return run_play(
        "rollback.yml",
        "",
        found,
        env,
        heading=f"rollback: NODES={asked}",
        logs=lambda _run_dir: [],
        on_interrupt="rollback: interrupted; letting the play stop cleanly",
    )
