"""edge_canary.ops.held (`edge-canary held-deploys`): which deploys their SLI gate held, from their records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_canary.ops import held


def write_run(runs: Path, deploy_id: str, verdict: str, **asked: object) -> None:
    run = runs / deploy_id
    run.mkdir(parents=True)
    (run / "deploy.json").write_text(json.dumps({"canary": "edge-1", "peers": ["edge-2", "edge-3"], "sha256": "ab",
                                                 "version": "v2", **asked}))
    (run / "verdict.json").write_text(json.dumps({"verdict": verdict, "reason": f"{verdict}: why"}))


def test_only_held_deploys_are_listed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs"
    write_run(runs, "d-held", "hold")
    write_run(runs, "d-promoted", "promote")
    write_run(runs, "d-checked", "hold", check_mode=True)
    assert held.main(["--dir", str(tmp_path), "d-held", "d-promoted", "d-checked", "d-unknown", "../runs/d-held",
                      "d-held"]) == 0
    assert json.loads(capsys.readouterr().out) == [
        {"deploy_id": "d-held", "canary": "edge-1", "reason": "hold: why", "sha256": "ab", "version": "v2",
         "nodes": ["edge-1", "edge-2", "edge-3"]}]


def test_a_deploy_held_in_a_later_wave_names_that_waves_canary(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    write_run(runs, "d-waves", "promote", waves=[{"wave": 1, "canary": "edge-1"}, {"wave": 2, "canary": "edge-4"}])
    (runs / "d-waves" / "wave-2").mkdir()
    (runs / "d-waves" / "wave-2" / "verdict.json").write_text(json.dumps({"verdict": "hold", "reason": "quiet"}))
    found = held.held_deploy(runs, "d-waves")
    assert found is not None and (found["canary"], found["reason"]) == ("edge-4", "quiet")
