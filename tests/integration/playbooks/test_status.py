"""`make status [JSON=1]` against the lab (issue 6): the real status play reading real nodes and a real
HAProxy; the states it must flag are made by hand (admin socket, supervisor, a binary copied in)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.helpers.fleet import node_files, node_pids, sha256
from tests.helpers.lab import Lab, run


def status(lab: Lab, as_json: bool = False) -> tuple[int, str, str]:
    result = lab.make("status", extra_env={"JSON": "1"} if as_json else {"JSON": ""})
    return result.returncode, result.stdout, result.stderr


def test_status_of_a_healthy_fleet_is_ok_with_one_row_per_node(
        fleet: Lab, artifacts: dict[str, Path]) -> None:
    files, pids = node_files(fleet), node_pids(fleet)
    code, out, err = status(fleet, as_json=True)
    assert code == 0, out[-3000:] + err
    report = json.loads(out)
    assert report["ok"] is True and report["problems"] == []
    nodes = {row["node"]: row for row in report["nodes"]}
    assert sorted(nodes) == fleet.settings.node_names()
    v1 = sha256(artifacts["v1"])
    for row in nodes.values():
        assert row["release"]["current"]["sha256"] == v1
        assert row["release"]["previous"]["sha256"] == v1
        assert row["release"]["config"] == {"rollout_pct": "0"}
        assert row["running"]["version"] == "v1"
        assert row["health"]["status"] == 200
        assert [(lb["lb"], lb["admin_state"], lb["operational_state"]) for lb in row["lbs"]] == [
            ("lb-1", "ready", "up")]
        assert isinstance(row["lbs"][0]["sessions"], int)
    # Read only: nothing on the nodes changed, nothing restarted, nothing drained.
    assert node_files(fleet) == files and node_pids(fleet) == pids
    assert set(fleet.lb_states().values()) == {"READY"}


def test_status_flags_a_drained_node_and_a_down_node_by_name(fleet: Lab) -> None:
    fleet.haproxy("set server edge/edge-2 state drain")
    fleet.supervisorctl("stop", "edge-3")
    code, out, err = status(fleet)
    assert code != 0, out[-3000:] + err
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["NODE", "CURRENT", "PREVIOUS"]
    row = next(line for line in lines if line.startswith("edge-2"))
    assert "lb-1: drain/up" in row
    row = next(line for line in lines if line.startswith("edge-3"))
    assert "DOWN" in row
    assert "NOT OK" in out
    assert "  - edge-2 is drained on lb-1" in out
    assert "  - edge-3 is down: its health URL" in out
    assert not any(line.startswith("  - edge-1") for line in lines)
    assert "mixed versions" not in out


def test_status_flags_a_mixed_fleet_naming_the_odd_node(fleet: Lab, artifacts: dict[str, Path]) -> None:
    fleet.install("edge-3", artifacts["v2"])
    fleet.wait_until(lambda: fleet.node_version("edge-3")["version"] == "v2", 60, "edge-3 on v2")
    # The command itself, for its own exit code (make turns any failure into 2).
    result = run([sys.executable, "-m", "edge_canary", "status", "--json"], fleet.env)
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr
    report = json.loads(result.stdout)
    mixed = [p for p in report["problems"] if p.startswith("mixed versions")]
    v1, v2 = sha256(artifacts["v1"])[:12], sha256(artifacts["v2"])[:12]
    assert mixed == [f"mixed versions: v1 ({v1}) on edge-1, edge-2; v2 ({v2}) on edge-3"]
    assert report["ok"] is False
