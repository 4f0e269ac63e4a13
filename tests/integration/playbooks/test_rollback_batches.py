"""Emergency rollback at fleet scale (issue 16): rollback.yml restores nodes in parallel batches
(rollback_batch) and never has more than rollback_max_unavailable out of rotation at once, sampled from
HAProxy's own view during the run."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from tests.helpers.fleet import fleet_versions, install_fleet
from tests.helpers.lab import Lab


def out_of_rotation(lab: Lab) -> set[str]:
    """Servers HAProxy would not send a new request to: drained, in maintenance, or not up."""
    lines = lab.haproxy("show servers state edge").splitlines()
    header = next(line for line in lines if line.startswith("# be_id")).lstrip("# ").split()
    out = set()
    for line in lines:
        if line.startswith("#") or len(line.split()) < len(header):
            continue
        row = dict(zip(header, line.split(), strict=False))
        if int(row["srv_admin_state"]) & 0x1F or row["srv_op_state"] != "2":
            out.add(row["srv_name"])
    return out


def test_batched_rollback_keeps_max_unavailable(fleet: Lab, artifacts: dict[str, Path]) -> None:
    install_fleet(fleet, artifacts["v2"], previous=artifacts["v1"])
    samples: list[set[str]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append(out_of_rotation(fleet))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        result = fleet.playbook("rollback.yml", "-e", json.dumps(
            {"rollback_nodes": "all", "rollback_batch": 3, "rollback_max_unavailable": 2}))
    finally:
        done.set()
        sampler.join(10)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    assert fleet_versions(fleet) == {"edge-1": "v1", "edge-2": "v1", "edge-3": "v1"}
    assert max(len(s) for s in samples) == 2, "never two out at once: the batch did not run in parallel"
    assert all(len(s) <= 2 for s in samples), [s for s in samples if len(s) > 2][:3]
    # the order and progress, printed (words compared: the YAML callback may wrap a long line)
    printed = " ".join(result.stdout.split())
    assert "rollback batch 1/2: edge-1, edge-2" in printed and "rollback batch 2/2: edge-3" in printed
    assert "order: edge-1, edge-2, edge-3; at most 2 out of rotation at once" in printed, result.stdout[-3000:]
    assert set(fleet.lb_states().values()) == {"READY"}


def test_batch_alone_keeps_one_node_in_rotation(fleet: Lab) -> None:
    """BATCH=3 on a 3-node fleet without MAX_UNAVAILABLE: cut down to 2, so one node always serves (planned in
    check mode, which prints the plan and changes nothing)."""
    result = fleet.playbook("rollback.yml", "--check", "-e", json.dumps({"rollback_nodes": "all", "rollback_batch": 3}))
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    printed = " ".join(result.stdout.split())
    assert "rollback batch 1/2: edge-1, edge-2" in printed, result.stdout[-3000:]
    assert "at most 2 out of rotation at once" in printed, result.stdout[-3000:]


def test_a_bad_batch_is_refused_before_anything_changes(fleet: Lab) -> None:
    result = fleet.playbook("rollback.yml", "-e", json.dumps({"rollback_nodes": "all", "rollback_batch": "0"}))
    assert result.returncode == 2, result.stdout
    assert "rollback_batch=0 is not a whole number of at least 1" in result.stdout, result.stdout
