"""The drill's cleanup stops the watchers it left running: one without a verdict is stopped (SIGTERM, letting
a revert it runs finish); one that gave its verdict and stays up a few scrapes for Prometheus is done with
the fleet and left to end by itself, not reported as stopped. The check of the fleet against the baseline
asks each node only of its own load balancers."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

from edge_canary.gameday import fleet as gf
from edge_canary.gameday.judging import Baseline
from edge_canary.gameday.restore import off_baseline, stop_watchers


def start_watcher(run_dir: Path, seconds: float) -> subprocess.Popen[bytes]:
    """A stand-in watcher of run_dir: its command line names run_dir's watcher.json, its decision log its pid."""
    run_dir.mkdir(parents=True)
    proc = subprocess.Popen([sys.executable, "-c", f"import time; time.sleep({seconds})",
                             str(run_dir / "watcher.json")])
    (run_dir / "decisions.jsonl").write_text(json.dumps({"event": "start", "pid": proc.pid}) + "\n")
    # Reaped as soon as it ends, as a real (detached) watcher is by init: no zombie left in /proc.
    threading.Thread(target=proc.wait, daemon=True).start()
    return proc


def test_a_watcher_lingering_after_its_verdict_ends_by_itself(tmp_path: Path) -> None:
    run_dir = tmp_path / "deploy-1"
    watcher = start_watcher(run_dir, 1.5)
    (run_dir / "verdict.json").write_text('{"verdict": "reverted"}')
    notes: list[str] = []
    assert stop_watchers([run_dir], notes.append) is False
    assert notes == []
    assert watcher.wait(5) == 0  # it ended by itself, no signal


def test_a_watcher_without_a_verdict_is_stopped_and_said_so(tmp_path: Path) -> None:
    run_dir = tmp_path / "deploy-2"
    # A deploy's later wave and a rollout stage have their watchers below the run's folder.
    watchers = [start_watcher(run_dir / sub, 60) for sub in ("", "wave-2", "stage-1")]
    notes: list[str] = []
    assert stop_watchers([run_dir], notes.append) is True
    assert [w.wait(5) for w in watchers] == [-signal.SIGTERM] * 3
    assert notes == [f"stopped the watcher still running for deploy-2 (pid {watchers[0].pid})",
                     f"stopped the watcher still running for wave-2 (pid {watchers[1].pid})",
                     f"stopped the watcher still running for stage-1 (pid {watchers[2].pid})"]


def test_off_baseline_asks_each_node_only_of_its_own_load_balancers() -> None:
    good = gf.NodeFiles(gf.FileState("a"), gf.FileState("b"), gf.FileState(None), gf.FileState("c"), "")
    control = gf.Control("/s", False, "http://p", 30.0, 3.0, 0.3, 0.01, 1.0, {}, "/lab", 18080)
    lbs = (gf.LoadBalancer("lb-1", "/1.sock", "edge"), gf.LoadBalancer("lb-2", "/2.sock", "edge"))
    fleet = gf.Fleet(control, {}, {"edge-1": good, "edge-4": good}, lbs,
                     served_by={"edge-1": ("lb-1",), "edge-4": ("lb-2",)})
    base = Baseline({"edge-1": good, "edge-4": good}, gf.Sample(0.0, {}, {}), "v1", "a")
    ready = gf.ServerState("READY", True)
    # Each LB knows only its own PoP's node, as in a fleet with points of presence.
    sample = gf.Sample(1.0, {"edge-1": "v1", "edge-4": "v1"}, {"lb-1": {"edge-1": ready}, "lb-2": {"edge-4": ready}})
    assert off_baseline(base, fleet, sample) == {}
    drain = gf.ServerState("DRAIN", True)
    drained = gf.Sample(2.0, sample.versions, {"lb-1": {"edge-1": ready}, "lb-2": {"edge-4": drain}})
    assert off_baseline(base, fleet, drained) == {"edge-4": "not serving on lb-2"}
