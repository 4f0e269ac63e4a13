"""What a tool run said in its last line, `EDGE_CANARY_SUMMARY {json}` (every deploy, rollback and rollout ends
with it): read from the JSON, not from the text above it, whose paths may hold spaces."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from edge_canary.ops.summary import SUMMARY_PREFIX


def run_summary(output: str) -> dict[str, Any]:
    lines = [line for line in output.splitlines() if line.startswith(SUMMARY_PREFIX)]
    assert len(lines) == 1, output[-3000:]
    data: dict[str, Any] = json.loads(lines[0].removeprefix(SUMMARY_PREFIX))
    return data


def record_dir(output: str) -> Path:
    """The run's record folder."""
    record = run_summary(output)["record"]
    assert record, output[-3000:]
    return Path(record)


def warnings_in(output: str) -> list[str]:
    """The warnings a run printed, Ansible's ([WARNING]: ...) and Python's (...Warning: ...): a run that goes
    as planned prints none, so an operator never has to wonder what one means."""
    return [line for line in output.splitlines() if line.startswith("[WARNING]") or re.search(r"\w+Warning: ", line)]
