"""Where the bench reads each node directly: its loopback port, or its own address in hosts mode."""

from __future__ import annotations

from pathlib import Path

from edge_canary.bench.cli import OWN_HOSTS_LAB, OWN_LAB
from edge_canary.bench.lab import LabHandle


def test_a_loopback_lab_is_read_on_each_nodes_own_port(tmp_path: Path) -> None:
    lab = LabHandle({**OWN_LAB, "LAB_DIR": str(tmp_path), "LAB_NODES": "3"}, tmp_path)
    assert lab.node_urls() == {"edge-1": "http://127.0.0.1:24101", "edge-2": "http://127.0.0.1:24102",
                               "edge-3": "http://127.0.0.1:24103"}


def test_a_hosts_lab_is_read_at_each_nodes_address_on_the_subnet(tmp_path: Path) -> None:
    lab = LabHandle({**OWN_HOSTS_LAB, "LAB_DIR": str(tmp_path), "LAB_NODES": "2"}, tmp_path)
    assert lab.node_urls() == {"edge-1": "http://10.212.0.2:8080", "edge-2": "http://10.212.0.3:8080"}
