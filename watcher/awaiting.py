"""After a promoted canary, when the deploy asks for approval (APPROVE=1 / deploy_approval): wait for
`make approve` / `make abort`, judging the canary all the while.

The wait is the deploy's approval record (edge_canary.ops.approval_state): the watcher opens it, and
every outcome goes through its locked `decide`, so an operator's approve and a red verdict never
both win. Meanwhile the probes go on with the same prober (counts since the canary started) and a
fresh false-revert budget spread over the wait's probes: a red canary is reverted as in its window,
and the wait ends. An abort, or the time limit with on_timeout abort (the default), reverts the canary
the same way (the rollback play, limited to it). A reminder line says who to ask and what to run.
"""

from __future__ import annotations

import functools
import math
import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from edge_canary.ops import approval_state as approval
from watcher import EXIT_PROMOTE, EXIT_REVERT_FAILED, EXIT_REVERTED, judge
from watcher.approval_settings import ApprovalSettings
from watcher.decision_log import DecisionLog
from watcher.judge import Decision, Verdict, WatchState
from watcher.metrics import WatcherMetrics
from watcher.notify import Event, Notifier
from watcher.report import live_line
from watcher.revert import Reverter, RevertOutcome
from watcher.settings import Settings
from watcher.watch import WatchOutcome


def reminder(deploy_id: str, ask: str, left: float, on_timeout: str, canary: str = "",
             gate: Path | None = None) -> str:
    """The line that asks for the decision; `gate`, the gate's folder, names a later wave's (wave-<n>)."""
    who = f"ask {ask}" if ask else "ask the release owner"
    wave = approval.wave_of(gate) if gate else ""
    whose = f", {wave}'s canary {canary}" if wave and canary else f", canary {canary}" if canary else ""
    peers = approval.rolled_next(gate) if gate else "the peers"
    then = "the canary is reverted" if on_timeout == "abort" else f"{peers} {'rolls' if wave else 'roll'}"
    return (
        f"AWAITING APPROVAL of deploy {deploy_id}{whose} ({who}): `make approve DEPLOY_ID={deploy_id}` rolls "
        f"{peers}, `make abort DEPLOY_ID={deploy_id}` reverts the canary; {left:.0f} s left, then {then}"
    )


def await_approval(
    settings: Settings,
    gate: ApprovalSettings,
    window: WatchOutcome,
    reverter: Reverter,
    log: DecisionLog,
    metrics: WatcherMetrics,
    notifier: Notifier,
    out: Callable[[str], None],
    defer_signals: Callable[[], AbstractContextManager[Any]],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    wall: Callable[[], float] = time.time,
) -> tuple[WatchOutcome, dict[str, Any] | None]:
    """Wait for the decision after the window's promote; the final outcome and the approval record."""
    run_dir = Path(gate.run_dir)
    note = settings.notify
    deploy_id, canary = note.deploy_id or run_dir.name, settings.canary_node or ""

    def event(name: str, reason: str, verdict: str = "") -> None:
        if notifier.enabled:
            sent = notifier.send(
                Event(
                    name,
                    deploy_id,
                    canary=canary,
                    release=note.release,
                    verdict=verdict,
                    reason=reason,
                    record=str(run_dir / approval.FILE),
                )
            )
            log.write("notify", deploy_event=name, sent=sent)

    opened = approval.open_wait(
        run_dir,
        deploy_id=deploy_id,
        canary=canary,
        release=note.release,
        timeout=gate.timeout,
        on_timeout=gate.on_timeout,
        ask=gate.ask,
        pid=os.getpid(),
        now=wall(),
    )
    deadline = float(opened["deadline"])
    log.write(
        "awaiting_approval",
        timeout=gate.timeout,
        on_timeout=gate.on_timeout,
        ask=gate.ask,
        deadline=opened["deadline_at"],
    )
    record: dict[str, Any] | None = opened
    asking = functools.partial(reminder, deploy_id, gate.ask, on_timeout=gate.on_timeout, canary=canary,
                               gate=run_dir)
    out(asking(gate.timeout))
    event("awaiting_approval", asking(gate.timeout))

    assert window.prober is not None
    prober, start = window.prober, window.start
    rules = replace(settings.rules, planned_probes=max(1, math.ceil(gate.timeout / settings.interval)))
    n = rules.planned_probes
    state = replace(WatchState(), last_probe_at=window.state.last_probe_at, last_fresh_at=window.state.last_fresh_at)
    next_probe = start + window.state.last_probe_at + settings.interval
    next_reminder = clock() + gate.remind
    judging, k = True, 0
    red: Decision | None = None
    while True:
        record = approval.read(run_dir)
        if record is None or record.get("state") != approval.WAITING:
            break
        if wall() >= deadline:
            to = approval.APPROVED if gate.on_timeout == "approve" else approval.TIMED_OUT
            approval.decide(
                run_dir,
                to,
                "time limit",
                f"no decision within {gate.timeout:g} s (deploy_approval_timeout): "
                + ("approved by the time limit" if to == approval.APPROVED else "aborted by the time limit"),
            )
            continue
        if clock() >= next_reminder:
            out(asking(deadline - wall()))
            next_reminder += gate.remind
        if judging and clock() >= next_probe:
            k += 1
            at = clock() - start
            probe = prober.probe(at, wall())
            result = judge.evaluate_probe(probe, rules)
            state, decision = judge.advance(state, result, rules)
            metrics.probe(probe, result, clock() - start - at, 0.0)
            out("awaiting approval " + live_line(k, n, probe, result, state, rules))
            log.write(
                "probe",
                phase="awaiting_approval",
                k=k,
                n=n,
                at=round(at, 3),
                state=result.state.value,
                reasons=list(result.reasons),
                p_value=result.p_value,
                level=result.level,
                decision=asdict(decision) if decision else None,
            )
            next_probe += settings.interval * max(1, math.ceil((clock() - next_probe) / settings.interval))
            if decision is not None and decision.action == "hold":
                judging = False  # e.g. blind with blind policy hold: the operator decides alone
                out(f"awaiting approval: no longer judging ({decision.reason}); decide by hand")
            elif decision is not None:
                if approval.decide(run_dir, approval.REVERTED, "watcher", decision.reason).changed:
                    red = decision
                continue
        until = [0.5, next_reminder - clock()] + ([next_probe - clock()] if judging else [])
        sleep(max(0.05, min(until)))

    decided = str(record.get("state")) if record else "?"
    by, reason = (record or {}).get("decided_by", "?"), (record or {}).get("reason", "")
    log.write("approval", state=decided, by=by, reason=reason)
    if decided == approval.APPROVED:
        out(f"approval: {reason}; the deploy rolls {approval.rolled_next(run_dir)}")
        event("approved", reason, "promote")
        return replace(window, verdict=Verdict("promote", EXIT_PROMOTE, f"{window.verdict.reason}; {reason}")), record

    out(f"approval: {reason}; reverting the canary via {reverter.describe()}")
    with defer_signals():
        done: RevertOutcome = reverter.revert(reason)
    metrics.revert(done.ok, done.shadow)
    log.write("revert", decision=reason, **asdict(done))
    out(("revert OK: " if done.ok else "REVERT FAILED: ") + done.detail)
    record = approval.finish(run_dir, {"ok": done.ok, "shadow": done.shadow, "detail": done.detail})
    if red is not None:
        verdict = judge.verdict_after_decision(red, done.ok, done.shadow)
    elif done.ok:
        verdict = Verdict("reverted", EXIT_REVERTED, f"{reason} while awaiting approval")
    else:
        verdict = Verdict(
            "revert_failed",
            EXIT_REVERT_FAILED,
            f"{reason}; THE REVERT FAILED: revert the canary by hand (make rollback)",
        )
    if red is None:
        event("aborted", verdict.reason, verdict.verdict)
    return WatchOutcome(verdict, state, red, done, prober, start), record
