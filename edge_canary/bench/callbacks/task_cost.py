"""Ansible callback for the bench (not part of the collection): what a play cost per host.

Enabled with ANSIBLE_CALLBACK_PLUGINS=<this folder> ANSIBLE_CALLBACKS_ENABLED=task_cost and
EDGE_CANARY_TASK_COST=<file>: at the end of the run it writes one JSON object with, per host, the task
results it got and the module runs among them (a result of a task whose action runs a module on the
target, not one the controller answers itself: set_fact, assert, debug, include_*), and per task its
name, its first start and its last result (seconds since the run started) and its module runs; and the
forks the run had (Ansible's, from ansible.cfg, ANSIBLE_FORKS or --forks).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from ansible import context
from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: task_cost
    type: aggregate
    short_description: per-host task results and module runs, per-task times (edge-canary bench)
    description: Writes a JSON summary to the file named by EDGE_CANARY_TASK_COST.
"""

# Actions answered by the controller alone: no module process, no connection.
CONTROLLER_ONLY = frozenset({
    "set_fact", "assert", "debug", "fail", "meta", "include_tasks", "include_role", "import_tasks", "import_role",
    "include_vars", "add_host", "group_by", "pause", "set_stats", "validate_argument_spec",
    "ansible.builtin.set_fact", "ansible.builtin.assert", "ansible.builtin.debug", "ansible.builtin.fail",
    "ansible.builtin.meta", "ansible.builtin.include_tasks", "ansible.builtin.include_role",
    "ansible.builtin.include_vars", "ansible.builtin.add_host", "ansible.builtin.group_by",
    "ansible.builtin.pause", "ansible.builtin.set_stats", "ansible.builtin.validate_argument_spec",
    # Our action plugins that do their work in the controller process and start no module.
    "edge.canary.control_file", "edge.canary.operator_inputs", "edge.canary.deploy_event", "edge.canary.deploy_lock",
})


def module_runs(result: dict[str, Any], retried: bool) -> int:
    """Module runs behind one task result: one per loop item, and per `until` attempt when the task retries.
    Without `until`, an `attempts` key is the module's own (edge_service_health counts its health polls in it)."""
    items = result.get("results")
    if not isinstance(items, list):
        items = [result]
    return sum(int(item.get("attempts", 1)) if retried and isinstance(item, dict) else 1 for item in items)


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "task_cost"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self.t0 = time.time()
        self.hosts: dict[str, dict[str, int]] = {}
        self.tasks: list[dict[str, Any]] = []
        self.by_uuid: dict[str, dict[str, Any]] = {}

    def _task(self, task: Any) -> dict[str, Any]:
        entry = self.by_uuid.get(task._uuid)
        if entry is None:
            entry = {"name": task.get_name(), "action": task.action, "start": time.time() - self.t0, "end": None,
                     "results": 0, "module_runs": 0}
            self.by_uuid[task._uuid] = entry
            self.tasks.append(entry)
        return entry

    def v2_playbook_on_task_start(self, task: Any, is_conditional: bool) -> None:
        self._task(task)

    v2_playbook_on_handler_task_start = v2_playbook_on_task_start

    def _result(self, result: Any, skipped: bool = False) -> None:
        task = result._task
        entry = self._task(task)
        entry["end"] = time.time() - self.t0
        entry["results"] += 1
        host = self.hosts.setdefault(result._host.get_name(), {"results": 0, "module_runs": 0, "skipped": 0})
        host["results"] += 1
        if skipped:
            host["skipped"] += 1
        elif task.action not in CONTROLLER_ONLY:
            runs = module_runs(result._result, retried=bool(task.until))
            host["module_runs"] += runs
            entry["module_runs"] += runs

    def v2_runner_on_ok(self, result: Any) -> None:
        self._result(result)

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        self._result(result)

    def v2_runner_on_skipped(self, result: Any) -> None:
        self._result(result, skipped=True)

    def v2_runner_on_unreachable(self, result: Any) -> None:
        self._result(result)

    def v2_playbook_on_stats(self, stats: Any) -> None:
        path = os.environ.get("EDGE_CANARY_TASK_COST", "")
        if path:
            with open(path, "w", encoding="utf-8") as out:
                json.dump({"elapsed_s": time.time() - self.t0, "forks": context.CLIARGS.get("forks"),
                           "hosts": self.hosts, "tasks": self.tasks}, out, indent=1)
