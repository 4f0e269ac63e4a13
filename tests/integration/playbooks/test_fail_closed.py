"""The deploy fails closed for real (issue 15 item 10): a watcher that hangs without a verdict is stopped
at the wait's timeout and the deploy reverts the canary itself, fast-path drain first, and says so in its
summary."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers.fleet import fleet_versions
from tests.helpers.lab import REPO, VENV_BIN, Lab


def watcher_pid(run_dir: Path, proc: subprocess.Popen[str], timeout: float = 180) -> int:
    """The watcher's pid, from the `start` line of its decision log."""
    deadline = time.monotonic() + timeout
    log = run_dir / "decisions.jsonl"
    while time.monotonic() < deadline and proc.poll() is None:
        if log.exists():
            for line in log.read_text().splitlines():
                event = json.loads(line)
                if event.get("event") == "start":
                    return int(event["pid"])
        time.sleep(0.1)
    raise AssertionError(f"no watcher started in {run_dir}")


def test_a_hung_watcher_is_stopped_and_the_deploy_reverts_the_canary_itself(
    fleet: Lab, artifacts: dict[str, Path]
) -> None:
    deploy_id = f"test-hung-{int(time.time())}"
    run_dir = fleet.lab_dir / "control" / "runs" / deploy_id
    extra = {"deploy_id": deploy_id, "deploy_artifact": str(artifacts["v2"]), "deploy_canary_node": "edge-2",
             "sli_window": 6, "sli_probe_interval": 3, "sli_watch_wait_for_traffic": 2,
             "sli_watch_revert_timeout": 5, "sli_watch_grace": 1}
    proc = subprocess.Popen(
        [str(VENV_BIN / "ansible-playbook"), str(REPO / "playbooks" / "deploy-canary.yml"), "-e", json.dumps(extra)],
        env=fleet.env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    pid = None
    try:
        pid = watcher_pid(run_dir, proc)
        os.kill(pid, signal.SIGSTOP)  # hung: alive, never writes a verdict
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        if pid is not None:
            subprocess.run([sys.executable, "-m", "edge_canary", "lock", "--dir", str(fleet.lab_dir / "control"),
                            "release", "deploy", "--id", deploy_id], env=fleet.env, capture_output=True)
    assert proc.returncode == 2, out[-5000:]
    assert "TIMEOUT" in out and "was stopped" in out, out[-5000:]
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1][:3]
    assert "drained on 1 load balancer" in out, out[-5000:]  # the fast path ran before the revert
    assert fleet_versions(fleet) == {"edge-1": "v1", "edge-2": "v1", "edge-3": "v1"}
    assert set(fleet.lb_states().values()) == {"READY"}
    assert not (run_dir / "verdict.json").exists()
    # The summary says what the deploy did: the canary is back where it was, not "v2, ok".
    line = next(line for line in out.splitlines() if line.startswith("EDGE_CANARY_SUMMARY "))
    rows = json.loads(line.removeprefix("EDGE_CANARY_SUMMARY "))["nodes"]
    canary = next(row for row in rows if row["node"] == "edge-2")
    assert canary["after"] == canary["before"], canary
    assert canary["result"] == "reverted by the deploy: its watcher hung without a verdict (timeout)", canary
