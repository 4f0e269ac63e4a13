"""The table `edge-canary deploy-canary` prints at the end of a deploy, from its record folder
(runs/<deploy id>/): deploy.json (what was asked), nodes/<node>.json (what each node went through),
verdict.json (the watcher's verdict, when it ran)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def load_record(path: Path) -> dict[str, Any]:
    """A JSON object record; {} when it is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _durations(steps: list[dict[str, Any]]) -> str:
    parts = []
    for earlier, later in zip(steps, steps[1:], strict=False):
        try:
            parts.append(f"{later['step']} {float(later['at']) - float(earlier['at']):.1f}s")
        except (KeyError, TypeError, ValueError):
            continue
    return ", ".join(parts) or "-"


def _release_name(release: dict[str, Any] | None) -> str:
    """A release's version, or its sha256 prefix when the node's record does not know the version."""
    if not release or not release.get("sha256"):
        return "-"
    return str(release.get("version") or f"sha256:{str(release['sha256'])[:12]}")


def node_rows(run_dir: Path) -> list[dict[str, str]]:
    deploy = load_record(run_dir / "deploy.json")
    verdict = load_record(run_dir / "verdict.json")
    canary = deploy.get("canary")
    rows = []
    for node in ([canary] if canary else []) + list(deploy.get("peers", [])):
        record = load_record(run_dir / "nodes" / f"{node}.json")
        before = _release_name(record.get("before"))
        result = record.get("result", "not started")
        if result in ("ok", "already on the release"):
            after = record.get("release", "?")
        elif record.get("reverted_to"):
            after = _release_name(record["reverted_to"])
        elif result == "failed":
            after = f"{record.get('release', '?')} (out of rotation)"
        else:
            after = before
        if node == canary and verdict.get("verdict") == "reverted":
            after, result = before, "reverted by the SLI watcher"
        if result == "failed" and record.get("error"):
            result = f"failed: {record['error']}"
        rows.append({"node": node, "role": "canary" if node == canary else "peer", "before": before,
                     "after": after, "steps": _durations(record.get("steps", [])), "result": result})
    return rows


def summary_table(run_dir: Path) -> str:
    deploy = load_record(run_dir / "deploy.json")
    verdict = load_record(run_dir / "verdict.json")
    rows = node_rows(run_dir)
    check = " — CHECK MODE, nothing changed" if deploy.get("check_mode") else ""
    lines = [f"\nDeploy {deploy.get('deploy_id', run_dir.name)} of {deploy.get('version', '?')} "
             f"(sha256 {str(deploy.get('sha256', '?'))[:12]}){check}"]
    if verdict:
        lines.append(f"SLI verdict: {str(verdict.get('verdict')).upper()} — {verdict.get('reason', '')}")
    if rows:
        widths = {key: max(len(key), *(len(row[key]) for row in rows)) for key in rows[0]}
        lines.append("  ".join(key.ljust(widths[key]) for key in rows[0]))
        lines += ["  ".join(row[key].ljust(widths[key]) for key in row) for row in rows]
    lines.append(f"Record: {run_dir}")
    return "\n".join(lines)
