"""Whatever happened, the drill leaves the fleet on its last-known-good release: it stops what it left
running (plays, watchers), then rolls back whichever node is off the baseline, and says what it took."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge_canary.gameday.context import sha256
from edge_canary.gameday.fleet import Fleet, Sample
from edge_canary.gameday.judging import Baseline
from edge_canary.gameday.plays import Play
from edge_canary.gameday.records import watcher_pid
from edge_canary.gameday.report import DrillResult
from edge_canary.ops import runs
from edge_canary.ops.wait_verdict import ended


def stop_plays(plays: list[Play], note: Callable[[str], None]) -> bool:
    """Stop every play still running; whether there was one (the fleet may have changed since last read)."""
    stopped = False
    for play in plays:
        if play.running():
            play.stop()
            stopped = True
            note(f"stopped the unfinished {play.name} play")
    return stopped


# A watcher stays up a few scrapes after its verdict (60 s at most), so that Prometheus records it.
VERDICT_LINGER_S = 65.0
# It holds a SIGTERM while a revert runs: that revert may take this long.
REVERT_S = 600.0


def stop_watchers(run_dirs: list[Path], note: Callable[[str], None]) -> bool:
    """Stop every watcher still running (a deploy's or a later wave's, a rollout stage's), letting a revert it
    runs finish.
    One that gave its verdict is done with the fleet and only lingering for Prometheus: it ends by itself."""
    stopped = False
    watched = [d for run in run_dirs for d in (run, *runs.numbered(run, "wave"), *runs.numbered(run, "stage"))]
    for run_dir in watched:
        pid = watcher_pid(run_dir)
        if pid is None or ((run_dir / "verdict.json").exists() and ended(pid, VERDICT_LINGER_S)):
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        stopped = True
        ended(pid, REVERT_S)
        note(f"stopped the watcher still running for {run_dir.name} (pid {pid})")
    return stopped


def off_baseline(base: Baseline, fleet: Fleet, sample: Sample) -> dict[str, str]:
    """Nodes not on the last-known-good release, not serving it, not in rotation, or with other config keys."""
    off = {}
    for node, f in fleet.files.items():
        reasons = []
        if f.binary.sha256 != base.sha:
            reasons.append(f"binary sha256 {(f.binary.sha256 or 'missing')[:12]}")
        if sample.versions.get(node) != base.version:
            reasons.append(f"serves {sample.versions.get(node) or 'nothing'}")
        for lb in fleet.node_lbs[node]:
            state = sample.lbs.get(lb, {}).get(node)
            if state is None or not state.serving:
                reasons.append(f"not serving on {lb}")
        if f.config_keys() != base.files[node].config_keys():
            reasons.append(f"config {f.config_keys()}")
        if reasons:
            off[node] = ", ".join(reasons)
    return off


def find_binary(folder: Path, wanted: str) -> Path | None:
    for path in sorted(folder.glob("edge-*")) if folder.is_dir() else []:
        with contextlib.suppress(OSError):
            if path.is_file() and sha256(path) == wanted:
                return path
    return None


@dataclass
class Restore:
    """Puts the fleet back on the baseline with a rollback of the nodes off it, and checks it did."""

    base: Baseline
    result: DrillResult
    artifacts_dir: Path
    read: Callable[[], tuple[Fleet, Sample]]  # the fleet now
    rollback: Callable[[str, str, Path | None], int]  # (label, nodes, rollback binary) -> exit
    say: Callable[[str], None]

    def __call__(self, reading: tuple[Fleet, Sample] | None) -> None:
        base, result = self.base, self.result
        try:
            fleet, sample = reading or self.read()
        except RuntimeError as exc:
            result.cleanup.append(f"could not read the fleet to check it: {exc}")
            return
        off = off_baseline(base, fleet, sample)
        if not off:
            return
        self.say(f"cleaning up: {'; '.join(f'{n}: {why}' for n, why in off.items())}")
        nodes = ",".join(off)
        lkg_copy = find_binary(self.artifacts_dir, base.sha)
        need_binary = any(fleet.files[n].previous.sha256 != base.sha for n in off)
        code = self.rollback("cleanup", nodes, lkg_copy if need_binary else None)
        fleet, sample = self.read()
        still = off_baseline(base, fleet, sample)
        why = "; ".join(f"{n}: {reason}" for n, reason in off.items())
        if code == 0 and not still:
            result.cleanup.append(f"the drill put the fleet back on {base.version} itself ({why}): "
                                  f"rollback of {nodes} succeeded")
        else:
            left = "; ".join(f"{n}: {reason}" for n, reason in still.items())
            result.cleanup.append(f"CLEANUP FAILED (rollback exit {code}): {left or why}; run make rollback "
                                  f"NODES={nodes}" + ("" if lkg_copy else " ROLLBACK_BINARY=<a copy of "
                                                                          f"{base.version}>"))
            result.error = result.error or "the fleet could not be put back on its last-known-good release"
