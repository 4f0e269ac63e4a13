"""edge.canary.failure_reason: what a failed task says went wrong (module_utils/run_summary.py, as the summary)."""

from __future__ import annotations

from typing import Any

from ansible_collections.edge.canary.plugins.module_utils.run_summary import failure_reason


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"failure_reason": failure_reason}
