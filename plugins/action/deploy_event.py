"""Action plugin: post one deploy event to Alertmanager in the controller process itself.

The deploy, the waves and the rollback post their events (started, wave_done, rollback_done) from the
control host. As a command module run delegated to localhost each event cost a new Python process for
the module and another for `python -m edge_canary notify` (about 0.9 s on the lab, once per batch of
peers). This calls edge_canary.ops.notify, the same code and words, with no module run. Like that
command it never fails the play: Alertmanager unreachable is a line in stderr and a count in
<state_dir>/metrics/edge_canary_notify.prom; rc 64 is an argument the caller got wrong.
"""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.edge.canary.plugins.plugin_utils.project_code import ops_module, run_captured

# Option name -> the edge-canary notify flag it is passed as (event is the positional argument).
FLAGS = {"url": "--url", "timeout": "--timeout", "deploy_id": "--deploy-id", "canary": "--canary",
         "release": "--release", "verdict": "--verdict", "reason": "--reason", "record": "--record",
         "wave": "--wave", "runbook_base_url": "--runbook-base-url", "state_dir": "--state-dir"}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("event", *FLAGS))

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        args = self._task.args
        for required in ("event", "deploy_id", "state_dir"):
            if not str(args.get(required) or ""):
                raise AnsibleActionFail(f"deploy_event: {required} is required")
        argv = [str(args["event"])] + [f"{flag}={args[name]}" for name, flag in FLAGS.items()
                                       if args.get(name) is not None]
        if self._task.check_mode:
            result.update(rc=0, stdout="", stderr="", skipped=True, msg="check mode: no event posted")
            return result
        notify = ops_module("deploy_event", "notify")
        rc, stdout, stderr = run_captured(lambda: notify.main(argv))
        result.update(rc=rc, stdout=stdout, stderr=stderr, changed=False, stdout_lines=stdout.splitlines(),
                      posted=rc == 0 and bool(stdout))
        if rc:
            result.update(failed=True, msg=f"deploy_event: edge-canary notify refused its arguments (rc {rc}): "
                                           f"{stderr.strip()[-300:]}")
        return result
