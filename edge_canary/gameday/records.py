"""Reading what the tool wrote: the watcher's decision log, the deploy's node records, verdict.json, the
rollout's result.json, and the play's own output. Only the tool's verdict is taken from here; the
drill reads the fleet's state itself."""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path

from edge_canary.gameday.plays import Play
from edge_canary.gameday.scenarios import DIED, PROMOTE, ROLL_FAILED
from edge_canary.ops import runs
from edge_canary.ops.summary import load_record
from edge_canary.util import epoch


def decision_records(run_dir: Path) -> list[dict[str, object]]:
    try:
        text = (run_dir / "decisions.jsonl").read_text()
    except OSError:
        return []
    records = []
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            records.append(json.loads(line))
    return records


def probes_logged(run_dir: Path) -> int:
    return sum(1 for r in decision_records(run_dir) if r.get("event") == "probe")


def watcher_decided(run_dir: Path) -> bool:
    """The watcher has logged its decision (a verdict, or the revert it starts on red)."""
    return any(r.get("event") in ("revert", "verdict") or r.get("decision") for r in decision_records(run_dir))


def watcher_pid(run_dir: Path) -> int | None:
    """The watcher's pid from its decision log, checked against its command line (pids get reused)."""
    start = next((r for r in decision_records(run_dir) if r.get("event") == "start"), None)
    if start is None or not isinstance(start.get("pid"), int):
        return None
    pid = int(start["pid"])  # type: ignore[call-overload]
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return pid if str(run_dir / "watcher.json").encode() in cmdline else None


def first_decision_at(run_dir: Path | None) -> float | None:
    """When the watcher's first probe with a decision was logged."""
    for record in decision_records(run_dir) if run_dir else []:
        if record.get("event") == "probe" and record.get("decision"):
            return epoch(record.get("ts"))
    return None


def tool_said(code: int, run_dir: Path | None, play: Play, canary: str) -> tuple[str, str]:
    """A deploy's verdict and its reason: the canary's failed roll, the watcher's verdict, the play's SLI gate
    line, or its exit."""
    node = load_record(run_dir / "nodes" / f"{canary}.json") if run_dir else {}
    if node.get("result") == "failed":
        return ROLL_FAILED, str(node.get("error", ""))
    verdict = load_record(run_dir / "verdict.json") if run_dir else {}
    if verdict.get("verdict"):
        return str(verdict["verdict"]), str(verdict.get("reason", ""))
    gate = re.search(r"SLI gate: ([A-Z]+) — (.*)", play.output())
    if gate:
        return gate.group(1).lower(), gate.group(2).strip().strip("'")
    fatal = next((line.strip() for _, line in reversed(play.lines) if "msg:" in line or "fatal:" in line), "")
    return (PROMOTE if code == 0 else f"failed (exit {code})"), fatal


def detection_time(verdict: str, run_dir: Path | None, play: Play) -> float | None:
    if verdict == ROLL_FAILED:
        return play.first_line("Note what failed]")  # a task of the node_release role
    if verdict == DIED:
        return play.first_line("TASK [Revert the canary ourselves]") or play.first_line("SLI gate: DIED")
    return first_decision_at(run_dir)


def rollout_said(code: int, run_dir: Path | None) -> tuple[str, str, Path | None]:
    """The stopped stage's watcher verdict (or promote), its reason, and that stage's record folder."""
    result = load_record(run_dir / "result.json") if run_dir else {}
    stopped = result.get("stopped")
    if isinstance(stopped, dict):
        stage = next((Path(str(s["record"])) for s in result.get("stages", [])
                      if s.get("stage") == stopped.get("stage") and s.get("record")), None)
        return str(stopped.get("verdict")), str(stopped.get("reason", "")), stage
    if result.get("ok"):
        return PROMOTE, "every stage promoted", None
    # No result.json (the play stopped early): the last watched stage's own verdict.
    stages = runs.numbered(run_dir, "stage") if run_dir else []
    for stage in reversed(stages):
        verdict = load_record(stage / "verdict.json")
        if verdict.get("verdict"):
            return str(verdict["verdict"]), str(verdict.get("reason", "")), stage
    return f"failed (exit {code})", "the rollout stopped before any stage's verdict", None
