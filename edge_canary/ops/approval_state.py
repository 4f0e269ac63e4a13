"""A deploy's approval state: `<run dir>/approval.json`, one small state machine shared by the watcher
(which opens the wait, keeps judging the canary and acts on the outcome), `make approve` / `make abort`
(which decide it) and the deploy play (which waits for it to be done).

    waiting --approve--> approved                          (done at once: the peers roll)
    waiting --abort----> aborted   --the canary reverted--> done
    waiting --time-----> timed_out --the canary reverted--> done   (on_timeout: abort, the default)
    waiting --red------> reverted  --the canary reverted--> done   (the watcher's verdict while waiting)

Only a `waiting` state can be decided, and every decision is a read-modify-write under an exclusive
lock (`<run dir>/.approval.lock`) then an atomic replace: an approve and a red verdict in the same
second never both win; the loser sees who did. Deciding the same thing twice is a no-op.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge_canary.ops import runs
from edge_canary.ops.lock import flocked

FILE = "approval.json"
LOCK = ".approval.lock"
WAITING = "waiting"
APPROVED = "approved"
ABORTED = "aborted"
TIMED_OUT = "timed_out"
REVERTED = "reverted"
DECIDED = (APPROVED, ABORTED, TIMED_OUT, REVERTED)
ON_TIMEOUT = ("abort", "approve")


def now_iso(at: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if at is None else at, UTC).isoformat(timespec="seconds")


def wave_of(gate_dir: Path) -> str:
    """'wave <n>' for a later wave's gate (runs/<id>/wave-<n>/), '' for the deploy's first canary."""
    number = gate_dir.name.removeprefix("wave-")
    return f"wave {number}" if number != gate_dir.name and number.isdigit() else ""


def rolled_next(gate_dir: Path) -> str:
    """What approving the gate rolls: the peers, or the rest of a later wave."""
    wave = wave_of(gate_dir)
    return f"the rest of {wave}" if wave else "the peers"


def current_gate(run_dir: Path) -> Path:
    """The folder of the deploy's latest approval record: its latest wave's (runs/<id>/wave-<n>/, a deploy
    across points of presence waits again after each wave's canary) once one has one, else its own."""
    waves = [folder for folder in runs.numbered(run_dir, "wave") if (folder / FILE).is_file()]
    return waves[-1] if waves else run_dir


def read(run_dir: Path) -> dict[str, Any] | None:
    """The approval record, or None when this deploy never waited for approval."""
    try:
        data = json.loads((run_dir / FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write(run_dir: Path, record: dict[str, Any], name: str = FILE) -> None:
    target = run_dir / name
    tmp = run_dir / f".{name}.{os.getpid()}.tmp"
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write(json.dumps(record, indent=2) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, 0o644)
    os.replace(tmp, target)
    dir_fd = os.open(run_dir, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def locked(run_dir: Path) -> contextlib.AbstractContextManager[None]:
    return flocked(run_dir / LOCK, 0o644)


def open_wait(
    run_dir: Path, *, deploy_id: str, canary: str, release: str, timeout: float, on_timeout: str, ask: str, pid: int,
    now: float | None = None,
) -> dict[str, Any]:
    """Start waiting (the watcher, once the canary is promoted); the new record. `now`: the epoch."""
    opened = time.time() if now is None else now
    record: dict[str, Any] = {
        "deploy_id": deploy_id,
        "canary": canary,
        "release": release,
        "state": WAITING,
        "opened_at": now_iso(opened),
        "deadline": opened + timeout,
        "deadline_at": now_iso(opened + timeout),
        "timeout": timeout,
        "on_timeout": on_timeout,
        "ask": ask,
        "watcher_pid": pid,
        "decided_by": "",
        "decided_at": "",
        "reason": "",
        "done": False,
        "revert": None,
        "history": [{"state": WAITING, "by": "watcher", "at": now_iso(opened)}],
    }
    with locked(run_dir):
        _write(run_dir, record)
    return record


@dataclass(frozen=True)
class Decision:
    changed: bool  # this call decided it; False: it was decided already (or never waited)
    record: dict[str, Any] | None


def decide(run_dir: Path, state: str, by: str, reason: str = "") -> Decision:
    """waiting -> state (one of DECIDED); a no-op when the record is not waiting (see .record)."""
    if state not in DECIDED:
        raise ValueError(f"not a decision: {state!r}")
    with locked(run_dir):
        record = read(run_dir)
        if record is None or record.get("state") != WAITING:
            return Decision(False, record)
        at = now_iso()
        record.update(state=state, decided_by=by, decided_at=at, reason=reason, done=state == APPROVED)
        record["history"] = [*record.get("history", []), {"state": state, "by": by, "at": at, "reason": reason}]
        _write(run_dir, record)
    return Decision(True, record)


def finish(run_dir: Path, revert: dict[str, Any] | None) -> dict[str, Any] | None:
    """Mark a decided record done (the watcher, after its revert); the record."""
    with locked(run_dir):
        record = read(run_dir)
        if record is None or record.get("state") == WAITING:
            return record
        record.update(done=True, revert=revert)
        _write(run_dir, record)
    return record


def describe(record: dict[str, Any] | None) -> str:
    """The record in a few words, for a message: `approved by alice at …`."""
    if record is None:
        return "it never waited for approval"
    state = str(record.get("state", "?"))
    if state == WAITING:
        return f"it is waiting for approval until {record.get('deadline_at', '?')}"
    words = {
        APPROVED: "approved",
        ABORTED: "aborted",
        TIMED_OUT: "aborted at its time limit",
        REVERTED: "reverted by the watcher while waiting",
    }.get(state, state)
    by = record.get("decided_by") or "?"
    return f"it was {words} (by {by} at {record.get('decided_at') or '?'})"


# During the SLI window, before any approval wait: `make abort` asks the watcher to revert the canary now.
ABORT_FILE = "abort.json"
VERDICT_FILE = "verdict.json"
DECISION_LOG = "decisions.jsonl"


def watcher_pid(gate_dir: Path) -> int | None:
    """The pid the gate's watcher logged as it started (the first line of its decision log), if any."""
    try:
        with (gate_dir / DECISION_LOG).open(encoding="utf-8") as fh:
            first = json.loads(fh.readline())
    except (OSError, ValueError):
        return None
    pid = first.get("pid") if isinstance(first, dict) and first.get("event") == "start" else None
    return pid if isinstance(pid, int) and pid > 1 else None


def watching(gate_dir: Path) -> bool:
    """The gate's watcher is alive and has not given its verdict: it would act on an abort request."""
    pid = watcher_pid(gate_dir)
    if pid is None or (gate_dir / VERDICT_FILE).exists():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def ask_abort(gate_dir: Path, by: str, reason: str) -> bool:
    """Ask the gate's live watcher to revert its canary now; False (nothing written) when none is judging."""
    with locked(gate_dir):
        if not watching(gate_dir):
            return False
        if not (gate_dir / ABORT_FILE).exists():
            _write(gate_dir, {"by": by, "at": now_iso(), "reason": reason}, ABORT_FILE)
    return True


def abort_asked(gate_dir: Path) -> str | None:
    """The reason of an abort asked of this gate's watcher (the watcher's check), None when none was."""
    try:
        data = json.loads((gate_dir / ABORT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return str(data.get("reason") or "aborted (make abort)") if isinstance(data, dict) else None
