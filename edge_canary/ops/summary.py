"""The summaries printed at the end of a run: plugins/module_utils/run_summary.py (the collection's,
so that the run_summary callback prints the same at the end of a plain ansible-playbook or AWX run)."""

from __future__ import annotations

from watcher.drain import module_utils

module_utils("run_summary")  # the collection importable as Ansible names it
from ansible_collections.edge.canary.plugins.module_utils.run_summary import (  # noqa: E402, F401
    SUMMARY_PREFIX,
    RunRecord,
    last_gate,
    load_record,
    node_rows,
    rollout_summary,
    summary_table,
)
