"""Find a deploy's record folder, `<state dir>/runs/<deploy id>/`, from an operator's DEPLOY_ID.

The state dir is the inventory's `edge_canary_state_dir` (group_vars; the lab: .lab/control), read
through ansible with INVENTORY like every playbook run; EDGE_CANARY_STATE_DIR overrides it.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from edge_canary.ops import inputs

REPO = Path(__file__).resolve().parents[2]
ANSIBLE = str(Path(sys.executable).parent / "ansible")
STATE_DIR_ENV = "EDGE_CANARY_STATE_DIR"


def state_dir(env: Mapping[str, str]) -> Path:
    """The control host's state folder; InputError when the inventory cannot say."""
    explicit = env.get(STATE_DIR_ENV, "").strip()
    if explicit:
        return Path(inputs.path(STATE_DIR_ENV, explicit))
    argv = [ANSIBLE, "localhost", "-m", "ansible.builtin.debug", "-a", "var=edge_canary_state_dir", "-o"]
    inventory = inputs.inventory(env)
    if inventory is not None:
        argv += ["-i", inventory]
    done = subprocess.run(argv, cwd=REPO, env=dict(env), capture_output=True, text=True, timeout=120)
    _, _, payload = done.stdout.partition("=>")
    try:
        value = json.loads(payload)["edge_canary_state_dir"]
    except (ValueError, KeyError, TypeError):
        value = None
    if done.returncode != 0 or not isinstance(value, str) or not value or "VARIABLE IS NOT DEFINED" in value:
        raise inputs.InputError(
            f"cannot read edge_canary_state_dir from the inventory "
            f"({(done.stdout + done.stderr).strip().splitlines()[-1:] or ['no output']}); "
            f"check INVENTORY or set {STATE_DIR_ENV}"
        )
    return Path(value)


def run_dir(env: Mapping[str, str], name: str = "DEPLOY_ID") -> tuple[str, Path]:
    """The checked deploy id and its record folder; InputError for a bad or unknown id."""
    deploy_id = inputs.deploy_id(name, env.get(name, ""))
    folder = state_dir(env) / "runs" / deploy_id
    if not (folder / "deploy.json").is_file():
        raise inputs.InputError(
            f"{name}={deploy_id}: no such deploy in {folder.parent} (the deploy printed its id "
            "as 'deploy-canary: deploy <id>'; ls that folder for the recent ones)"
        )
    return deploy_id, folder


def numbered(run_dir: Path, kind: str) -> list[Path]:
    """The run folder's `<kind>-<n>` sub-folders (a rollout's stages, a deploy's later waves), in order of n."""
    folders = [f for f in run_dir.glob(f"{kind}-*") if f.name.removeprefix(f"{kind}-").isdigit()]
    return sorted(folders, key=lambda f: int(f.name.removeprefix(f"{kind}-")))


def operator(env: Mapping[str, str]) -> str:
    """Who runs the command, as records and messages name them: the person behind sudo, the login name,
    else the account's name (a container or cron job may set no USER), and its uid only if it has none."""
    for key in ("SUDO_USER", "USER", "LOGNAME"):
        if env.get(key, "").strip():
            return inputs.shown(env[key].strip(), 40)
    try:
        return inputs.shown(pwd.getpwuid(os.getuid()).pw_name, 40)
    except KeyError:
        return str(os.getuid())
