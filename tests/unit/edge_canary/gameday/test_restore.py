"""The drill's cleanup stops the watchers it left running: one without a verdict is stopped (SIGTERM, letting
a revert it runs finish); one that gave its verdict and stays up a few scrapes for Prometheus is done with
the fleet and left to end by itself, not reported as stopped."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

from edge_canary.gameday.restore import stop_watchers


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
