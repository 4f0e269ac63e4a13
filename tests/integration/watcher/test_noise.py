"""Deploys on a noisy lab (issue 14): every node answers a background share of 5xx and a heavy-tailed
delay, as a real fleet does. A healthy canary is promoted, a broken one reverted, and a fleet-wide fault
(every node worse, the canary no worse) held, never blamed on the canary. One deploy per case, a 21 s
window probed every 3 s (the lab's interval)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.helpers.edge import build_artifact
from tests.helpers.fleet import config_keys, fleet_versions
from tests.helpers.lab import Lab
from tests.helpers.summary import record_dir

WINDOW = {"SLI_WINDOW": "21", "SLI_PROBE_INTERVAL": "3"}
# Half the lab's 1 % error SLO on every node (the worst production row is 0.4 % of 0.5 %), and a
# lognormal delay of median 20 ms (p95 about 0.1 s, under the lab's 0.3 s limit).
NOISE = {"noise_errors": "0.005", "noise_latency": "0.02"}
# A fault of the whole fleet: 10 % 5xx on every node, ten times the lab's SLO. At 4 % the control's
# breach reached significance only at the window's third probe here, and on a slower machine (less lab
# traffic) not at all: the real judge over simulated windows of 7 probes missed it in 3 % of windows at
# 33 control requests/s and 52 % at 12/s, and promoted. At 10 % it missed none at 12/s.
FLEET_WIDE_ERRORS = "0.1"


def set_noise(lab: Lab, errors: str, latency: str) -> None:
    """What lab_edge_node writes, by hand: every node's config with the noise keys (read live)."""
    for node in lab.settings.node_names():
        config = f"rollout_pct=0\nnoise_errors={errors}\nnoise_latency={latency}\n"
        (lab.node_dir(node) / "edge.conf").write_text(config)
    time.sleep(1.5)  # the edge re-reads its config at least every second


def deploy(lab: Lab, artifact: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return lab.make("deploy-canary", extra_env={"ARTIFACT": str(artifact), "CANARY_NODE": "edge-2", **WINDOW, **env})


def records(result: subprocess.CompletedProcess[str]) -> tuple[Path, list[dict[str, Any]]]:
    run_dir = record_dir(result.stdout)
    lines = (run_dir / "decisions.jsonl").read_text().splitlines()
    return run_dir, [json.loads(line) for line in lines if line.strip()]


def fleet_5xx(lab: Lab, seconds: int) -> float:
    found = lab.prom_query(f'sum(increase(edge_http_requests_total{{job="edge",code=~"5.."}}[{seconds}s]))')
    return float(found[0]["value"][1]) if found else 0.0


def test_lab_up_noise_and_a_healthy_canary_on_the_noisy_fleet_is_promoted(
        fleet: Lab, artifacts: dict[str, Path], tmp_path: Path) -> None:
    # make lab-up's own wiring: LAB_NOISE_* -> inventory -> lab_edge_node (the role of playbooks/lab.yml
    # that prepares the nodes, alone: the rest of the lab is up) -> each node's edge.conf, read live.
    play = tmp_path / "noise.yml"
    play.write_text("- hosts: edge\n  gather_facts: false\n  roles: [edge.canary.lab_edge_node]\n")
    up = fleet.playbook(str(play), extra_env={"LAB_NOISE_ERRORS": NOISE["noise_errors"],
                                              "LAB_NOISE_LATENCY": NOISE["noise_latency"]})
    assert up.returncode == 0, up.stdout[-3000:]
    assert all(keys == {"rollout_pct": "0", **NOISE} for keys in config_keys(fleet).values())

    started = time.monotonic()
    result = deploy(fleet, artifacts["v2"], BATCH="2")
    assert result.returncode == 0, result.stdout[-4000:]
    assert "SLI verdict: PROMOTE" in result.stdout
    assert fleet_versions(fleet) == {"edge-1": "v2", "edge-2": "v2", "edge-3": "v2"}
    assert config_keys(fleet)["edge-2"] == {"rollout_pct": "0", **NOISE}  # a deploy keeps the noise
    assert fleet_5xx(fleet, int(time.monotonic() - started) + 5) > 0, "the fleet served no background 5xx"

    # The window started when the canary served the new release: after the play said it goes back in
    # rotation (after its restart), at its first requests; nothing before counted.
    run_dir, events = records(result)
    node = json.loads((run_dir / "nodes" / "edge-2.json").read_text())
    restarted = next(s["at"] for s in node["steps"] if s["step"] == "restart+health")
    traffic = next(e for e in events if e["event"] == "traffic")
    assert traffic["seen"] is True and traffic["first_requests"] > 0
    assert restarted <= traffic["in_rotation_at"] < traffic["window_start"]
    probes = [e for e in events if e["event"] == "probe"]
    assert probes and all(p["budget"] == 0.01 and "budget_left" in p for p in probes)


def test_a_broken_canary_on_the_noisy_fleet_is_reverted(fleet: Lab, tmp_path: Path) -> None:
    set_noise(fleet, NOISE["noise_errors"], NOISE["noise_latency"])
    broken = build_artifact(tmp_path / "edge-v2-5xx", "v2-5xx", "errors=0.08:503")  # 8 % more 503s
    result = deploy(fleet, broken)
    assert result.returncode != 0
    assert "SLI verdict: REVERTED" in result.stdout, result.stdout[-4000:]
    assert fleet_versions(fleet) == {"edge-1": "v1", "edge-2": "v1", "edge-3": "v1"}
    _, events = records(result)
    red = [e for e in events if e["event"] == "probe" and e["state"] == "red"]
    assert red and red[-1]["decision"]["action"] == "revert" and red[-1]["p_value"] < red[-1]["level"]


def test_a_fleet_wide_fault_is_held_not_blamed_on_the_canary(fleet: Lab, artifacts: dict[str, Path]) -> None:
    set_noise(fleet, FLEET_WIDE_ERRORS, NOISE["noise_latency"])
    result = deploy(fleet, artifacts["v2"])
    assert result.returncode != 0
    assert "SLI verdict: HOLD" in result.stdout, result.stdout[-4000:]
    # Not reverted: the canary stays on the new release, in rotation; the peers are untouched.
    assert fleet_versions(fleet) == {"edge-1": "v1", "edge-2": "v2", "edge-3": "v1"}
    assert set(fleet.lb_states().values()) == {"READY"}
    _, events = records(result)
    assert not [e for e in events if e["event"] == "revert"]
    assert any(e["event"] == "probe" and e["state"] == "fleet_breach" for e in events)
