"""watcher.awaiting: after a promote, the watcher waits for make approve / make abort judging on (issue
19). Scripted Prometheus and a fake clock (tests/unit/watcher/test_watch.py): approve ends the wait
without a revert; abort, the time limit and a red canary each revert once and end it. The lab runs the
whole thing (tests/integration/playbooks/test_approval.py)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge_canary.ops import approval_state
from tests.unit.watcher.test_watch import NOW, Clock, Recorder, Scenario, ScriptedProm, healthy, settings
from watcher.approval_settings import ApprovalSettings
from watcher.awaiting import await_approval, reminder
from watcher.decision_log import DecisionLog, Scrubber
from watcher.metrics import WatcherMetrics
from watcher.notify import Notifier
from watcher.watch import WatchOutcome, run_watch


class Operator(Clock):
    """A clock that lets an operator act once its time comes."""

    def __init__(self, at: float, act: Callable[[], object]) -> None:
        super().__init__()
        self.at, self.act = at, act

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        if self.t >= self.at and self.act is not None:
            self.act()
            self.act = None  # type: ignore[assignment]


def wait(tmp_path: Path, scenario: Scenario, clock: Clock, timeout: float = 600,
         ) -> tuple[WatchOutcome, dict[str, Any] | None, list[dict[str, Any]], list[str], Recorder]:
    s = settings()
    prom, reverter = ScriptedProm(scenario), Recorder()
    lines: list[str] = []
    log = DecisionLog(str(tmp_path / "d.jsonl"), Scrubber())
    kwargs: dict[str, Any] = {"clock": clock, "sleep": clock.sleep, "wall": lambda: NOW + clock.t}
    window = run_watch(s, prom, reverter, log, WatcherMetrics(), lines.append, contextlib.nullcontext, **kwargs)
    assert window.verdict.verdict == "promote"
    gate = ApprovalSettings(run_dir=str(tmp_path), timeout=timeout, ask="the edge on-call", remind=30)
    outcome, record = await_approval(s, gate, window, reverter, log, WatcherMetrics(),
                                     Notifier(s.notify, lines.append), lines.append, contextlib.nullcontext, **kwargs)
    log.close()
    records = [json.loads(x) for x in (tmp_path / "d.jsonl").read_text().splitlines()]
    return outcome, record, records, lines, reverter


def test_approve_ends_the_wait_without_a_revert_after_judging_on(tmp_path: Path) -> None:
    clock = Operator(65, lambda: approval_state.decide(tmp_path, approval_state.APPROVED, "alice", "approved by alice"))
    outcome, record, records, lines, reverter = wait(tmp_path, healthy, clock)
    assert outcome.verdict.verdict == "promote" and reverter.reasons == []
    assert record is not None and (record["state"], record["done"]) == ("approved", True)
    awaiting = [r for r in records if r.get("phase") == "awaiting_approval"]
    assert len(awaiting) >= 10 and all(r["state"] == "green" for r in awaiting)
    assert lines[-1] == "approval: approved by alice; the deploy rolls the peers"
    reminders = [line for line in lines if line.startswith("AWAITING APPROVAL")]
    assert len(reminders) == 2 and "ask the edge on-call" in reminders[0]
    assert f"make approve DEPLOY_ID={tmp_path.name}" in reminders[0] and "make abort DEPLOY_ID=" in reminders[0]


def test_the_reminder_names_the_canary_and_a_later_waves_gate() -> None:
    first = reminder("d1", "", 3600, "abort", canary="edge-1")
    assert first == ("AWAITING APPROVAL of deploy d1, canary edge-1 (ask the release owner): `make approve "
                     "DEPLOY_ID=d1` rolls the peers, `make abort DEPLOY_ID=d1` reverts the canary; 3600 s left, "
                     "then the canary is reverted")
    wave = reminder("d1", "", 60, "approve", canary="edge-4", gate=Path("runs/d1/wave-2"))
    assert wave.startswith("AWAITING APPROVAL of deploy d1, wave 2's canary edge-4 (ask the release owner): ")
    assert "`make approve DEPLOY_ID=d1` rolls the rest of wave 2" in wave and wave.endswith("then the rest of "
                                                                                            "wave 2 rolls")


def test_abort_reverts_the_canary_once(tmp_path: Path) -> None:
    clock = Operator(40, lambda: approval_state.decide(tmp_path, approval_state.ABORTED, "bob", "aborted by bob"))
    outcome, record, _, _, reverter = wait(tmp_path, healthy, clock)
    assert (outcome.verdict.verdict, outcome.verdict.exit_code) == ("reverted", 1)
    assert reverter.reasons == ["aborted by bob"] and "aborted by bob while awaiting approval" in outcome.verdict.reason
    assert record is not None and record["done"] and record["revert"]["ok"] and record["decided_by"] == "bob"


def test_the_time_limit_aborts_and_reverts(tmp_path: Path) -> None:
    outcome, record, _, _, reverter = wait(tmp_path, healthy, Clock(), timeout=15)
    assert outcome.verdict.verdict == "reverted" and len(reverter.reasons) == 1
    assert "aborted by the time limit" in reverter.reasons[0]
    assert record is not None and (record["state"], record["decided_by"]) == ("timed_out", "time limit")


def test_a_red_canary_while_waiting_is_reverted_and_an_approve_after_it_loses(tmp_path: Path) -> None:
    def errors_after_window(k: int, side: str) -> tuple[float, float, float]:
        return (100.0, 30.0, 0.05) if side == "canary" and k >= 14 else healthy(k, side)

    outcome, record, records, _, reverter = wait(tmp_path, errors_after_window, Clock())
    assert outcome.verdict.verdict == "reverted" and "canary red: errors red" in outcome.verdict.reason
    assert len(reverter.reasons) == 1
    assert record is not None and (record["state"], record["decided_by"], record["done"]) == ("reverted", "watcher",
                                                                                             True)
    assert records[-1]["event"] == "revert"
    assert not approval_state.decide(tmp_path, approval_state.APPROVED, "alice").changed
