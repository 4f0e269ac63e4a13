"""Callback plugin: the summary at the end of a deploy, rollback or rollout, whatever runs the play.

Plain ansible-playbook, ansible-runner and AWX all load it from ansible.cfg (callbacks_enabled); the
edge-canary tools turn it off (EDGE_CANARY_RUN_SUMMARY=false) and print the same summary from
ansible-runner's events. The text and the JSON line come from plugins/module_utils/run_summary.py.
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
name: run_summary
type: aggregate
short_description: Print how an edge-canary deploy, rollback or rollout ended, and a JSON summary
description:
  - At the end of C(deploy-canary.yml), C(rollback.yml) or C(rollout.yml) (any play that ran
    C(edge.canary.operator_inputs)), prints the run's summary (a deploy's table of nodes and the SLI
    verdict, a rollout's stages, a refused input's one line) and one line
    C(EDGE_CANARY_SUMMARY {json}) with the run's kind, id, status (successful, failed, refused),
    record folder, verdict, nodes, failures and per-host counts.
  - Other playbooks print nothing.
requirements:
  - enabled in ansible.cfg (C(callbacks_enabled = edge.canary.run_summary)), as this repository's is
options:
  show:
    description: Print the summary (C(edge-canary) turns it off and prints its own from the events).
    type: bool
    default: true
    env:
      - name: EDGE_CANARY_RUN_SUMMARY
    ini:
      - section: edge_canary
        key: run_summary
author:
  - edge-canary maintainers (@edge-canary)
"""

# Below DOCUMENTATION, as ansible-test's validate-modules wants.
from typing import Any  # noqa: E402

from ansible.plugins.callback import CallbackBase  # noqa: E402
from ansible_collections.edge.canary.plugins.module_utils.run_summary import RunRecord  # noqa: E402


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "edge.canary.run_summary"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.record = RunRecord()

    def v2_runner_on_ok(self, result: Any) -> None:
        self.record.ok(result._result, result._host.get_name())

    def v2_runner_on_failed(self, result: Any, ignore_errors: bool = False) -> None:
        if not ignore_errors:
            self.record.failed(result._host.get_name(), result._task.get_name(), result._result)

    def v2_runner_on_unreachable(self, result: Any) -> None:
        self.record.failed(result._host.get_name(), result._task.get_name(), result._result)

    def v2_playbook_on_stats(self, stats: Any) -> None:
        if not self.record.kind or not self.get_option("show"):
            return
        hosts = {host: stats.summarize(host) for host in stats.processed}
        self._display.display(self.record.lines(hosts))
