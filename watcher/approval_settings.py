"""The watcher's approval settings (the `approval` option; see watcher.awaiting): where the deploy's
approval record is, how long to wait, what the time limit does, who to ask."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_canary.ops.approval_state import ON_TIMEOUT


class ApprovalConfigError(ValueError):
    """An approval setting that cannot be used."""


@dataclass(frozen=True)
class ApprovalSettings:
    run_dir: str  # the deploy's record folder: approval.json goes there
    timeout: float = 3600.0  # seconds to wait for a decision
    on_timeout: str = "abort"  # abort (revert the canary) | approve (roll the peers)
    ask: str = ""  # who to ask, for the reminder line
    remind: float = 60.0  # seconds between reminder lines

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any] | None) -> ApprovalSettings | None:
        if not raw:
            return None
        raw = dict(raw)
        unknown = set(raw) - set(cls.__dataclass_fields__)
        if unknown:
            raise ApprovalConfigError(f"--approval: unknown keys {sorted(unknown)}")
        run_dir = str(raw.get("run_dir") or "")
        if not run_dir or not Path(run_dir).is_dir():
            raise ApprovalConfigError(
                f"--approval: run_dir {run_dir!r} is not a folder; give the deploy's record folder"
            )
        try:
            timeout = float(raw.get("timeout", 3600.0))
            remind = float(raw.get("remind", 60.0))
        except (TypeError, ValueError):
            raise ApprovalConfigError("--approval: timeout and remind are seconds") from None
        if not (math.isfinite(timeout) and timeout > 0 and math.isfinite(remind) and remind > 0):
            raise ApprovalConfigError("--approval: timeout and remind must be more than 0 seconds")
        on_timeout = str(raw.get("on_timeout", "abort"))
        if on_timeout not in ON_TIMEOUT:
            raise ApprovalConfigError(f"--approval: on_timeout {on_timeout!r} is not one of {', '.join(ON_TIMEOUT)}")
        return cls(
            run_dir=run_dir, timeout=timeout, on_timeout=on_timeout, ask=str(raw.get("ask") or ""), remind=remind
        )
