"""edge.canary.release_name: how messages name a release (module_utils/run_summary.py, as the summary's table)."""

from __future__ import annotations

from typing import Any

from ansible_collections.edge.canary.plugins.module_utils.run_summary import release_name


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"release_name": release_name}
