"""The root-level inventories get the top-level group_vars (issue 2): Ansible's own layout, checked
with ansible-inventory itself."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.lab import REPO, lab_env

ANSIBLE_INVENTORY = str(Path(sys.executable).parent / "ansible-inventory")


def host_vars(inventory: str, host: str) -> dict[str, object]:
    result = subprocess.run([ANSIBLE_INVENTORY, "-i", inventory, "--host", host], cwd=REPO,
                            env=lab_env(REPO / ".lab-inventory-test"), capture_output=True, text=True, check=True)
    return dict(json.loads(result.stdout))


@pytest.mark.parametrize(("inventory", "host", "window", "production"), [
    ("production.hosts.yml", "edge-01.prod.example.internal", 3600, True),
    ("staging.hosts.yml", "edge-a.staging.example.internal", 900, False),
    ("lab.hosts.py", "edge-1", 30, False),
])
def test_group_vars_apply_to_the_root_inventories(inventory: str, host: str, window: int, production: bool) -> None:
    found = host_vars(inventory, host)
    assert found["edge_binary_name"] == "edge"  # group_vars/all.yml
    assert found["sli_window"] == window  # the inventory's own group file overrides all.yml
    assert found["edge_canary_production"] is production


def test_lab_inventory_follows_lab_nodes() -> None:
    result = subprocess.run([ANSIBLE_INVENTORY, "-i", "lab.hosts.py", "--graph", "edge"], cwd=REPO,
                            env=lab_env(REPO / ".lab-inventory-test", LAB_NODES="5"),
                            capture_output=True, text=True, check=True)
    assert [line.strip("|-@ ") for line in result.stdout.splitlines()[1:]] == [f"edge-{i}" for i in range(1, 6)]
