"""The drill's timeline: the tool's own steps (its node records, the watcher's start and revert) and the
canary and control series the report plots, on the DrillResult."""

from __future__ import annotations

from pathlib import Path

from edge_canary.gameday.records import decision_records
from edge_canary.gameday.report import DrillResult, queries_for
from edge_canary.ops.summary import load_record
from edge_canary.util import epoch
from watcher.promql import RenderedQueries


def record_events(result: DrillResult, run_dir: Path | None, nodes: list[str]) -> None:
    """Mark the deploy's steps (its node records) and the watcher's start and revert on the timeline; take
    the watcher's own queries for the report's series."""
    if run_dir is None:
        return
    for node in nodes:
        for step in load_record(run_dir / "nodes" / f"{node}.json").get("steps", []):
            if step.get("step") != "start":
                result.event(f"{node} {step.get('step')}", at=float(step["at"]))
    for record in decision_records(run_dir):
        at = epoch(record.get("ts"))
        if at is None:
            continue
        if record.get("event") == "start":
            result.event("watcher started", at=at)
            queries = record.get("queries")
            if isinstance(queries, dict):
                result.queries = {side: RenderedQueries(**q) for side, q in queries.items()
                                  if side in ("canary", "control")}
        elif record.get("event") == "revert":
            result.event(f"watcher's revert {'done' if record.get('ok') else 'FAILED'}", "restore", at)


def set_selectors(result: DrillResult, canary: str, control: str, scrape_interval: float) -> None:
    """Canary and control for the timeline; the watcher's own queries replace these once it has run."""
    result.selectors = (canary, control)
    result.queries = queries_for(result.selectors, max(4 * scrape_interval, 2.0))


def mark_detection(result: DrillResult, verdict: str, at: float | None) -> None:
    result.detected_at = at
    if at is not None:
        result.event(f"detected: {verdict}", "detect", at)
