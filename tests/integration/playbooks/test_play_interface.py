"""The playbook is the interface (issue 17): deploy-canary.yml, rollback.yml and rollout.yml run by plain
ansible-playbook check their extra vars with the one schema (one line, non-zero, nothing changed), name
the run when no id is given, and end with a summary and a JSON summary line (the run_summary callback),
without make or edge-canary around them. Real ansible-playbook, HAProxy and edge nodes (the loopback lab)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.fleet import fleet_versions, node_files, node_pids
from tests.helpers.lab import Lab
from tests.helpers.paths import REPO

DEPLOY_ID = re.compile(r"[0-9]{8}T[0-9]{6}Z-[A-Za-z0-9_.-]+-[0-9a-f]{6}")
SUMMARY = "EDGE_CANARY_SUMMARY "
REFUSED = re.compile(r"(deploy|rollback|rollout): refused: ")


def summary(result: subprocess.CompletedProcess[str]) -> dict[str, object]:
    lines = [line for line in result.stdout.splitlines() if line.startswith(SUMMARY)]
    assert len(lines) == 1, result.stdout[-3000:]
    data: dict[str, object] = json.loads(lines[0].removeprefix(SUMMARY))
    return data


def runs(lab: Lab) -> set[str]:
    return {p.name for p in (lab.lab_dir / "control" / "runs").glob("*")}


def deploy_lock(lab: Lab) -> str:
    shown = subprocess.run([sys.executable, "-m", "edge_canary", "lock", "--dir", str(lab.lab_dir / "control"),
                            "show"], capture_output=True, text=True, cwd=REPO)
    return shown.stdout.splitlines()[0]


def lock_free(lab: Lab) -> bool:
    return deploy_lock(lab) == "deploy: free"


def pop_inventory(tmp_path: Path, pop_groups: str) -> Path:
    """The lab's inventory plus PoP groups under edge (`pop_groups`: YAML indented as children of edge)."""
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    os.symlink(REPO / "lab.hosts.py", inventory / "lab.hosts.py")
    os.symlink(REPO / "group_vars", inventory / "group_vars")
    (inventory / "pops.yml").write_text("all:\n  children:\n    edge:\n      children:\n" + pop_groups)
    return inventory


def test_bad_extra_vars_are_refused_in_one_line_before_anything_changes(fleet: Lab, tmp_path: Path,
                                                                         artifacts: dict[str, Path]) -> None:
    marker = tmp_path / "templated"
    hostile = f"feature_x={{{{ lookup('pipe', 'touch {marker}') }}}}"
    cases = [
        ("deploy-canary.yml", {"deploy_artifact": str(artifacts["v2"]), "deploy_batch": "x"},
         "deploy_batch=x is not a whole number of at least 1; e.g. deploy_batch=2"),
        ("deploy-canary.yml", {"deploy_artifact": str(artifacts["v2"]), "deploy_config": hostile},
         "deploy_config entry 'feature_x={{' is not key=value"),
        ("deploy-canary.yml", {"deploy_artifact": str(artifacts["v2"]), "prom_url": "http://u:s3cret@prom:9090"},
         "prom_url=http://***@prom:9090 carries a user or password"),
        ("deploy-canary.yml", {"deploy_artifact": str(artifacts["v2"]), "deploy_id": "../../etc"},
         "deploy_id=../../etc is not a usable id"),
        ("rollback.yml", {"rollback_nodes": "edge-1;id"}, "rollback_nodes=edge-1;id names edge-1;id, not a node name"),
        ("rollout.yml", {"rollout_pct": "101"}, "rollout_pct=101: 101 is not a whole number from 0 to 100"),
        ("rollout.yml", {"rollout_stages": [10, 1]}, "each stage must be above the one before"),
    ]
    files, pids, before = node_files(fleet), node_pids(fleet), runs(fleet)
    for playbook, extra, words in cases:
        # JSON extra vars: the kind ansible-core templates (the check reads them as given, never rendered).
        result = fleet.playbook(playbook, "-e", json.dumps(extra))
        assert result.returncode != 0, (playbook, extra, result.stdout[-2000:])
        refused = [line for line in result.stdout.splitlines() if REFUSED.match(line)]
        assert len(refused) == 1 and words in refused[0] and refused[0].endswith("nothing was changed"), \
            (words, result.stdout[-3000:])
        data = summary(result)
        assert data["status"] == "refused" and words in str(data["refused"]), data
        assert "s3cret" not in result.stdout + result.stderr
    assert not marker.exists(), "an extra var was templated"
    assert node_files(fleet) == files and node_pids(fleet) == pids
    assert runs(fleet) == before  # not even a record folder
    assert lock_free(fleet)


def test_a_plain_deploy_names_itself_and_ends_with_its_summary_and_exit_status(fleet: Lab,
                                                                               artifacts: dict[str, Path]) -> None:
    fast = {"sli_window": "9", "sli_probe_interval": "3"}
    checked = fleet.playbook("deploy-canary.yml", "--check", "-e",
                             json.dumps({"deploy_artifact": str(artifacts["v2"]), **fast}))
    assert checked.returncode == 0, checked.stdout[-4000:]
    data = summary(checked)
    assert data["status"] == "successful" and data["kind"] == "deploy", data
    assert DEPLOY_ID.fullmatch(str(data["id"])), data["id"]
    assert data["record"] == str(fleet.lab_dir / "control" / "runs" / str(data["id"]))
    assert f"Deploy {data['id']} of v2" in checked.stdout and "CHECK MODE, nothing changed" in checked.stdout
    assert fleet_versions(fleet) == {node: "v1" for node in fleet.settings.node_names()}

    failed = fleet.playbook("deploy-canary.yml", "-e", json.dumps(
        {"deploy_artifact": str(artifacts["v2-crash"]), "deploy_id": "plain-crash-1", **fast}))
    assert failed.returncode != 0
    data = summary(failed)
    assert data["status"] == "failed" and data["id"] == "plain-crash-1", data
    canary = [row for row in data["nodes"] if row["role"] == "canary"]  # type: ignore[attr-defined]
    # put back where it was (v1, named by its sha256: the reset fleet has no release record yet)
    assert canary and canary[0]["after"] == canary[0]["before"] and "failed" in canary[0]["result"], data["nodes"]
    assert "edge-1  canary" in failed.stdout  # the table, before the JSON line
    assert fleet_versions(fleet) == {node: "v1" for node in fleet.settings.node_names()}
    # A play that failed before its last play leaves its lock to a run that is gone: the next run recovers it.
    assert lock_free(fleet) or deploy_lock(fleet).endswith("[stale]"), deploy_lock(fleet)


def test_a_deploy_over_nodes_with_and_without_a_pop_is_refused_naming_them(fleet: Lab, tmp_path: Path,
                                                                           artifacts: dict[str, Path]) -> None:
    """Waves go PoP by PoP (edge_pop): a node left out of every PoP is named, nothing is touched."""
    inventory = pop_inventory(tmp_path, "        edge_pop_ams:\n          hosts: {edge-1: {}, edge-2: {}}\n"
                                        "          vars: {edge_pop: ams}\n")
    files, pids = node_files(fleet), node_pids(fleet)
    result = fleet.playbook("deploy-canary.yml", "-i", str(inventory),
                            "-e", json.dumps({"deploy_artifact": str(artifacts["v2"])}))
    assert result.returncode != 0
    assert "edge-3 has no edge_pop while other nodes of this deploy have one" in result.stdout, result.stdout[-3000:]
    assert node_files(fleet) == files and node_pids(fleet) == pids
    assert lock_free(fleet)


@pytest.mark.parametrize("pop", ["ams", "fra"])
def test_each_canarys_own_watcher_settings_are_checked_before_anything_changes(
        fleet: Lab, tmp_path: Path, artifacts: dict[str, Path], pop: str) -> None:
    """A canary's watcher is started with the canary's own variables (its PoP's group_vars). Preflight
    checked the control host's: a setting the watcher refuses in the canary's PoP (ams) got the canary
    rolled, then reverted; in a later wave's PoP (fra) it got the whole first PoP rolled first."""
    bad = ", sli_watch_settings: {promote_fraction: 1.5}"
    inventory = pop_inventory(tmp_path, "        edge_pop_ams:\n          hosts: {edge-1: {}, edge-2: {}}\n"
                                        f"          vars: {{edge_pop: ams{bad if pop == 'ams' else ''}}}\n"
                                        "        edge_pop_fra:\n          hosts: {edge-3: {}}\n"
                                        f"          vars: {{edge_pop: fra{bad if pop == 'fra' else ''}}}\n")
    canary = {"ams": "edge-1", "fra": "edge-3"}[pop]
    files, pids = node_files(fleet), node_pids(fleet)
    result = fleet.playbook("deploy-canary.yml", "-i", str(inventory), "-e", json.dumps(
        {"deploy_artifact": str(artifacts["v2"]), "sli_window": 15, "sli_probe_interval": 3}))
    assert result.returncode != 0
    assert re.search(rf"fatal: \[{canary} -> localhost\]", result.stdout), result.stdout[-3000:]
    assert ("the SLI watcher would refuse its settings (--promote-fraction is a share between 0 and 1)"
            in " ".join(result.stdout.split())), result.stdout[-3000:]
    assert "PLAY [Canary]" not in result.stdout, result.stdout[-3000:]
    assert node_files(fleet) == files and node_pids(fleet) == pids
    assert set(fleet.lb_states().values()) == {"READY"}
    assert lock_free(fleet), deploy_lock(fleet)


def test_a_later_waves_node_is_checked_before_anything_changes(fleet: Lab, tmp_path: Path,
                                                              artifacts: dict[str, Path]) -> None:
    """Preflight covers every wave, not only the canary's PoP: a node of a later wave with nothing to roll
    back to is refused before the canary is touched."""
    inventory = pop_inventory(tmp_path, "        edge_pop_ams:\n          hosts: {edge-1: {}, edge-2: {}}\n"
                                        "          vars: {edge_pop: ams}\n"
                                        "        edge_pop_fra:\n          hosts: {edge-3: {}}\n"
                                        "          vars: {edge_pop: fra}\n")
    previous = fleet.node_dir("edge-3") / "edge.previous"
    kept = tmp_path / "edge.previous"
    if previous.exists():
        previous.rename(kept)
    try:
        files, pids = node_files(fleet), node_pids(fleet)
        result = fleet.playbook("deploy-canary.yml", "-i", str(inventory),
                                "-e", json.dumps({"deploy_artifact": str(artifacts["v2"])}))
        assert result.returncode != 0
        assert f"edge-3 has no {previous} to roll back to" in result.stdout, result.stdout[-3000:]
        assert node_files(fleet) == files and node_pids(fleet) == pids
        # Refused after the lock was taken: left to a run that is gone, the next run recovers it.
        assert lock_free(fleet) or deploy_lock(fleet).endswith("[stale]"), deploy_lock(fleet)
    finally:
        if kept.exists():
            kept.rename(previous)
