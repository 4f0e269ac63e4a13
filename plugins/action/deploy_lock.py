"""Action plugin: take or release the deploy lock of the control host in the controller process itself.

Every deploy, rollback and rollout takes the lock first: as a command module run delegated to localhost it
cost a new Python process for the module and another for `python -m edge_canary lock` (about half a second
on the lab, on the way to an emergency rollout_pct=0). This calls edge_canary.ops.lock directly, with the
same holder (the run's outermost ansible-playbook, edge_canary.ops.lock_holder.run_pid) and the same words.
A lock kept on a watch host is taken by `keep_command` (edge-canary lock-keep, run here on the control host:
it holds the watch host's lock over SSH while the run lives), still with no module run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible_collections.edge.canary.plugins.plugin_utils.project_code import ops_module, run_captured


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("state", "dir", "id", "force", "dry_run", "token", "keep_command"))

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        args = self._task.args
        state = args.get("state", "acquired")
        if state not in ("acquired", "released"):
            raise AnsibleActionFail(f"deploy_lock: state must be acquired or released, got {state!r}")
        lock_id, token = args.get("id"), str(args.get("token") or "")
        if not isinstance(lock_id, str) or not lock_id:
            raise AnsibleActionFail("deploy_lock: id (the run's lock id) is required")
        keep = args.get("keep_command")
        if keep:
            if state != "acquired" or not isinstance(keep, list) or not all(isinstance(a, str) for a in keep):
                raise AnsibleActionFail("deploy_lock: keep_command is an argv list, for state=acquired only")
            done = subprocess.run(
                keep, capture_output=True, text=True, check=False, env={**os.environ, "EDGE_CANARY_LOCK_TOKEN": token}
            )
            return self._done(result, done.returncode, done.stdout, done.stderr)
        directory = args.get("dir")
        if not isinstance(directory, str) or not directory.startswith("/"):
            raise AnsibleActionFail(f"deploy_lock: dir must be an absolute path on the control host, got {directory!r}")
        lock = ops_module("deploy_lock", "lock")
        path = Path(directory)

        def take_or_release() -> int:
            try:
                path.mkdir(parents=True, exist_ok=True)
                if state == "acquired":
                    return lock.acquire(path, "deploy", lock_id, boolean(args.get("force", False), strict=False),
                                        boolean(args.get("dry_run", False), strict=False), token)
                return lock.release(path, "deploy", lock_id, token)
            except OSError as exc:
                print(f"edge-lock: cannot use the lock folder {directory}: {exc}", file=sys.stderr)
                return 1

        rc, stdout, stderr = run_captured(take_or_release)
        return self._done(result, rc, stdout, stderr)

    @staticmethod
    def _done(result: dict[str, Any], rc: int, stdout: str, stderr: str) -> dict[str, Any]:
        result.update(
            rc=rc,
            stdout=stdout,
            stderr=stderr,
            stdout_lines=stdout.splitlines(),
            changed="taken" in stdout or "released" in stdout,
        )
        return result
