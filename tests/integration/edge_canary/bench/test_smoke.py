"""A short `make bench` against the test lab so the bench cannot rot: the naive deploy under load, the
watcher's cost, whole-fleet rollbacks and rolls, measured for real, with sane numbers in the report
(counts, not timings).

The full bench (real deploys, rollbacks and auto-reverts at several fleet sizes) takes far longer than a test
may; it runs as `make bench`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.helpers.fleet import fleet_versions
from tests.helpers.lab import REPO, Lab


def bench(lab: Lab, tmp_path: Path, *args: str, timeout: float = 600) -> tuple[str, str, dict[str, Any]]:
    """`edge-canary bench` with `args` on the running lab, which must succeed: (its output, its report, its
    JSON results)."""
    report, raw = tmp_path / "BENCHMARKS.md", tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "edge_canary", "bench", "--use-running-lab", *args, "--out", str(report),
         "--json", str(raw), "--work", str(tmp_path / "work")],
        cwd=REPO, env=lab.env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout, report.read_text(), json.loads(raw.read_text())


def test_bench_smoke_measures_the_naive_deploy_and_the_watcher(lab: Lab, tmp_path: Path) -> None:
    before = fleet_versions(lab)
    _, text, results = bench(lab, tmp_path, "--phases", "naive,watcher", "--runs", "1", "--watcher-seconds", "10",
                             "--rps", "40", timeout=240)
    assert results["failures"] == []
    (naive,) = [o for o in results["ops"] if o["op"] == "naive"]
    # every node was restarted under load: requests flowed before and during it, counts are sane
    assert naive["sent"] > 0
    assert 0 <= naive["not_sent"] <= naive["dropped"] <= naive["sent"]
    assert naive["by_release"] == 0
    assert naive["p99_before_s"] is not None and naive["p99_before_s"] > 0
    assert naive["p99_during_s"] is not None and naive["p99_during_s"] > 0

    watcher = results["watcher"]
    assert watcher["probes"] >= 1
    assert watcher["queries"] >= watcher["probes"]  # every probe asks Prometheus at least once
    assert watcher["queries_per_probe"] >= 1
    assert watcher["cpu_s"] > 0 and watcher["peak_rss_mib"] > 0

    assert "naive deploy (binary swapped + service restarted, no drain)" in text
    assert "## 5. Watcher cost" in text and "- Reproduce:" in text
    # the bench put every node back on the binary it ran before
    assert fleet_versions(lab) == before


def test_bench_smoke_times_whole_fleet_rollbacks(fleet: Lab, tmp_path: Path) -> None:
    """Two runs of the fleetrollback phase on the fleet (on v1): every node to the v2 artifact, then back."""
    said, text, results = bench(fleet, tmp_path, "--phases", "fleetrollback", "--fleets", "3:2", "--roll-runs", "2")
    assert "to the v2 artifact in batches of 2" in said and "to the v1 artifact in batches of 2" in said

    runs = results["fleet_rollbacks"]
    assert [(r["nodes"], r["batch"], r["run"], r["code"]) for r in runs] == [(3, 2, 1, 0), (3, 2, 2, 0)]
    assert all(r["wall_s"] > 0 for r in runs)
    assert "## 8. Rollback of the whole fleet as it grows" in text
    assert "| 3 | 2 | 2 |" in text
    assert fleet_versions(fleet) == {node: "v1" for node in fleet.settings.node_names()}


def test_bench_smoke_rolls_the_fleet_once_per_forks_setting(fleet: Lab, tmp_path: Path) -> None:
    """The roll phase with two forks settings: two real deploys (v2, then back to v1), taking turns, each
    recorded with the forks Ansible ran with and what the bench's callbacks counted."""
    said, text, results = bench(fleet, tmp_path, "--phases", "roll", "--fleets", "3:1", "--roll-runs", "1",
                                "--forks", "1 2", "--green-window", "15")
    assert "roll-3x1-forks1-1: deploying v2" in said and "roll-3x1-forks2-1: deploying v1" in said

    rolls = results["rolls"]
    assert [(r["nodes"], r["batch"], r["forks"], r["code"]) for r in rolls] == [(3, 1, 1, 0), (3, 1, 2, 0)]
    for roll in rolls:
        assert roll["roll_s"] > 0 and set(roll["steps"]) >= {"drain", "push", "restart+health", "ready+lb"}
        assert roll["module_runs_per_peer"] >= 3 and roll["results_per_peer"] > roll["module_runs_per_peer"]
        assert 0 < roll["module_cpu_s"] < roll["cpu_s"]
    assert "--fleets \"3:1\" --forks \"1 2\" --green-window 15" in text  # in the Reproduce line
    assert "| 3 | 1 | 1 | 3 | 1 |" in text and "| 3 | 1 | 2 | 3 | 1 |" in text  # section 4, one row per forks
    assert "| 3 | 1 | 1 | " in text.split("## 7.")[1] and "| 3 | 1 | 2 | " in text.split("## 7.")[1]
    assert fleet_versions(fleet) == {node: "v1" for node in fleet.settings.node_names()}


def test_bench_smoke_measures_a_rollback_from_a_fleet_on_v2(fleet: Lab, tmp_path: Path) -> None:
    """The rollback phase on its own (no green deploy before it): the fleet, on v1, is deployed to v2 first
    (not measured), so the rollback measured restores every node to v1, its .previous, and is no no-op."""
    said, _, results = bench(fleet, tmp_path, "--phases", "rollback", "--runs", "1", "--rps", "20",
                             "--green-window", "15")
    assert "rollback run 1: deploying v2 first (not measured)" in said
    assert results["failures"] == []
    (rollback,) = [o for o in results["ops"] if o["op"] == "rollback"]
    assert rollback["code"] == 0 and rollback["dropped"] == 0
    assert fleet_versions(fleet) == {node: "v1" for node in fleet.settings.node_names()}
