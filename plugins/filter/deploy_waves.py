"""edge.canary.deploy_waves: a deploy's waves across points of presence (module_utils/deploy_waves.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.edge.canary.plugins.module_utils.deploy_waves import plan_waves


def deploy_waves(canary: str, peers: Sequence[str], pops: Mapping[str, str], batch: Any = 1) -> dict[str, Any]:
    try:
        return plan_waves(str(canary), [str(p) for p in peers], {str(k): str(v or "") for k, v in pops.items()},
                          int(batch))
    except (TypeError, ValueError) as err:
        raise AnsibleFilterError(f"deploy_waves: {err}") from err


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"deploy_waves": deploy_waves}
