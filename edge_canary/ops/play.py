"""What deploy-canary and rollout share: run one playbook in the foreground while printing the SLI
watcher's live lines, let Ctrl-C reach the play without abandoning it, then free the play's lock.

The extra vars reach ansible-playbook only as a file of `!unsafe` values (edge_canary.ops.inputs):
never through a shell, never as `key=value` strings, never templated.

The play announces its record folder (runs/<id>/) by writing the folder's path into a file the tool
names in the extra vars; the watcher logs are found from there.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from edge_canary.ops import inputs
from edge_canary.util import truthy

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")

# The watcher logs of a run folder, each with the label its lines are printed under.
LogFinder = Callable[[Path], list[tuple[str, Path]]]


def announced(announce: Path) -> Path | None:
    """The run folder the play announced, once it has."""
    try:
        text = announce.read_text().strip()
    except OSError:
        return None
    return Path(text) if text else None


def follow(announce: Path, logs: LogFinder, stop: threading.Event, interval: float = 0.5) -> None:
    """Print the new lines of every watcher log as they come, `    <label> | <line>`, until `stop`."""
    positions: dict[Path, int] = {}
    while not stop.is_set():
        run_dir = announced(announce)
        for label, log in logs(run_dir) if run_dir is not None else []:
            if not log.exists():
                continue
            with log.open() as handle:
                handle.seek(positions.get(log, 0))
                for line in handle:
                    print(f"    {label} | {line.rstrip()}", flush=True)
                positions[log] = handle.tell()
        stop.wait(interval)


def run_followed(argv: list[str], announce: Path, logs: LogFinder, on_interrupt: str,
                 env: Mapping[str, str] | None = None) -> int:
    """Run the play (cwd: the repository) while following its watcher logs; its exit code.

    Ctrl-C reaches the play too (same process group): say `on_interrupt` and wait for it to stop."""
    stop = threading.Event()
    follower = threading.Thread(target=follow, args=(announce, logs, stop), daemon=True)
    follower.start()
    play = subprocess.Popen(argv, cwd=REPO, env=None if env is None else dict(env))
    while True:
        try:
            code = play.wait()
            break
        except KeyboardInterrupt:
            print(on_interrupt, flush=True)
    stop.set()
    follower.join(2)
    return code


def release_lock(run_dir: Path, lock_id: str) -> None:
    """A play that died mid-way leaves its lock to a dead process; free it now (a no-op when freed)."""
    subprocess.run([sys.executable, "-m", "edge_canary", "lock", "--dir", str(run_dir.parent.parent),
                    "release", "deploy", "--id", lock_id], capture_output=True)


def run_play(playbook: str, run_id: str, extra_vars: Callable[[Path], dict[str, Any]], env: Mapping[str, str], *,
             heading: str, logs: LogFinder, summary: Callable[[Path], str], on_interrupt: str) -> int:
    """Run playbooks/<playbook> as an on-call tool does; the play's exit code.

    The extra vars (given the announce file they must name) go in a file; INVENTORY and CHECK come from
    env, which is also the play's environment (credentials reach the watcher through it). Prints
    `heading`, the watcher's lines while the play runs, then `summary` of the announced run
    folder, and frees the lock `run_id` holds."""
    check = truthy(env.get("CHECK", ""))
    with tempfile.TemporaryDirectory(prefix=f"edge-{Path(playbook).stem}-") as tmp:
        announce = Path(tmp) / "run-dir"
        vars_file = Path(tmp) / "extra-vars.yml"
        inputs.write_extra_vars(vars_file, extra_vars(announce))
        argv = [ANSIBLE_PLAYBOOK, str(REPO / "playbooks" / playbook), "-e", f"@{vars_file}"]
        inventory = inputs.inventory(env)  # checked by the tool already
        if inventory is not None:
            argv += ["-i", inventory]
        if check:
            argv += ["--check", "--diff"]
        print(f"{heading}{' (CHECK: nothing will change)' if check else ''}", flush=True)
        code = run_followed(argv, announce, logs, on_interrupt, env)
        run_dir = announced(announce)
        if run_dir is not None:
            print(summary(run_dir), flush=True)
            release_lock(run_dir, run_id)
    return code
