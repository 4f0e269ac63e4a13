"""The fast path on red (issue 16): the watcher drains the canary on every load balancer through the
admin socket itself, before its rollback play starts. Measured from loadgen's own records: no request
reaches the canary more than 1 s after the watcher's red verdict."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from edge_canary.lab.loadgen_records import parse_requests
from tests.helpers.fleet import fleet_versions
from tests.helpers.lab import Lab

INTERVAL = 3


def test_no_request_reaches_the_canary_a_second_after_red(fleet: Lab, artifacts: dict[str, Path],
                                                           tmp_path: Path) -> None:  # fmt: skip
    records = tmp_path / "requests.jsonl"
    load = subprocess.Popen([sys.executable, "-m", "edge_canary", "loadgen", "--url", fleet.frontend_url("/"),
                             "--rps", "50", "--duration", "600", "--out", str(records)],
                            stdout=subprocess.DEVNULL)  # fmt: skip
    try:
        result = fleet.make("deploy-canary", extra_env={
            "ARTIFACT": str(artifacts["v2-errors"]), "CANARY_NODE": "edge-3",
            "SLI_WINDOW": "30", "SLI_PROBE_INTERVAL": str(INTERVAL)})
    finally:
        load.terminate()
        load.wait(30)
    assert "SLI verdict: REVERTED" in result.stdout, result.stdout[-3000:]
    assert fleet_versions(fleet) == {"edge-1": "v1", "edge-2": "v1", "edge-3": "v1"}
    assert set(fleet.lb_states().values()) == {"READY"}

    run_dir = Path(result.stdout.split("Record: ")[-1].split()[0])
    events = [json.loads(line) for line in (run_dir / "decisions.jsonl").read_text().splitlines()]
    red = next(e for e in events if e["event"] == "probe" and e.get("decision"))
    revert = next(e for e in events if e["event"] == "revert")
    assert revert["extra"]["drain"]["ok"], revert["extra"]["drain"]
    verdict_at = datetime.fromisoformat(red["ts"]).timestamp()
    on_canary = [r.start for r in parse_requests(records.read_text().splitlines()) if r.version == "v2-errors"]
    assert on_canary, "the canary served nothing through HAProxy"
    late = max(on_canary) - verdict_at
    assert late <= 1.0, f"a request reached the canary {late:.2f}s after the red verdict"
    # the fast path drained long before the rollback play could have
    assert revert["extra"]["drain"]["seconds"] < 1.0
