"""ansible-runner's events of one play, as the on-call tools show them.

Each event's display text is printed as it comes (the play's progress: every task, every result), and
what the summary needs is gathered on the way, the same way the edge.canary.run_summary callback
gathers it inside a plain ansible-playbook run (plugins/module_utils/run_summary.py): the record
folder the play announced as a fact, a refused input, each failure, the per-host counts. The time the
play last started a task is kept: a play that starts one after Ctrl-C has lost it (edge_canary.ops.play).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from edge_canary.ops.summary import RunRecord
from edge_canary.util import epoch

# The events of a play, task or handler starting: what a play that stops no longer does.
_STARTS = {"playbook_on_play_start", "playbook_on_task_start", "playbook_on_handler_task_start"}

# playbook_on_stats' event data -> the per-host counts of a play recap.
_COUNTS = {
    "ok": "ok",
    "changed": "changed",
    "failures": "failures",
    "dark": "unreachable",
    "skipped": "skipped",
    "rescued": "rescued",
    "ignored": "ignored",
}


def recap(stats: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    """{host: {ok, changed, failures, unreachable, skipped, rescued, ignored}} from a stats event."""
    hosts: dict[str, dict[str, int]] = {}
    for key, name in _COUNTS.items():
        for host, count in (stats.get(key) or {}).items():
            hosts.setdefault(host, dict.fromkeys(_COUNTS.values(), 0))[name] = int(count)
    return hosts


class PlayEvents:
    """The event handler and status handler of one ansible_runner.run_async."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.record = RunRecord()
        self.hosts: dict[str, dict[str, int]] = {}
        self.status = ""
        self.recapped = False  # the play reached its recap (playbook_on_stats)
        self.last_start = 0.0  # when the play last started a task (epoch seconds, as it stamped the event)
        self._lock = threading.Lock()

    def event(self, event: Mapping[str, Any]) -> bool:
        """One event: print its text, note what the summary needs. False: runner keeps no copy on disk."""
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        res = data.get("res")
        result: Mapping[str, Any] = res if isinstance(res, Mapping) else {}
        if kind == "runner_on_ok":
            self.record.ok(result, str(data.get("host", "")))
        elif kind == "runner_on_failed" and not data.get("ignore_errors") or kind == "runner_on_unreachable":
            self.record.failed(str(data.get("host", "?")), str(data.get("task", "?")), result)
        elif kind == "playbook_on_stats":
            self.hosts = recap(data)
            self.recapped = True
        elif kind in _STARTS:
            self.last_start = max(self.last_start, epoch(event.get("created")) or 0.0)
        text = str(event.get("stdout") or "").replace("\r\n", "\n")  # the play writes to a pty
        if text:
            with self._lock:
                print(text, file=self.out, flush=True)
        return False

    def status_changed(self, status: Mapping[str, Any], runner_config: Any = None) -> None:
        self.status = str(status.get("status", ""))

    def run_dir(self) -> Path | None:
        """The record folder the play announced, once it has."""
        return self.record.run_dir

    def summary(self, interrupted: bool = False, exit_code: int = 0) -> str:
        """The run's summary; a play that ended `exit_code` != 0 before its recap (ansible-playbook that
        did not start, or died) failed, although no task said so."""
        if exit_code and not self.recapped and not interrupted:
            self.record.failed("localhost", "ansible-playbook",
                               {"msg": f"ended with exit code {exit_code} before its play recap (see above)"})
        return self.record.lines(self.hosts, interrupted)
