"""Command line entry point: `python -m watcher` / `edge-canary-watcher`.

Exit codes: 0 promote, 1 reverted, 2 hold, 3 revert attempted but failed, 4 would have
reverted (shadow mode), 64 usage or configuration error. Killed by a signal before the
verdict: no verdict file is written and the exit code is 128 + the signal, which the deploy treats as red (fail closed).
`--check-config`: 0 with what weakens the watch as `warning:` lines, or 64; nothing is watched (preflight runs it).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from types import FrameType
from typing import Any

from edge_canary.ops import approval_state as approval
from edge_canary.ops.lock import leave_joined
from watcher import EXIT_USAGE
from watcher.awaiting import await_approval
from watcher.config import ConfigError, Settings, build_parser, settings_from_args
from watcher.decision_log import DecisionLog, Scrubber, now_iso
from watcher.metrics import WatcherMetrics
from watcher.notify import Notifier, verdict_event
from watcher.promql import format_range
from watcher.report import summary
from watcher.revert import Reverter, build_reverter
from watcher.settings import settings_warnings
from watcher.traffic_check import check_traffic
from watcher.watch import WatchOutcome, rendered, run_watch

PROG = "edge-canary-watcher"
EXIT_SOFTWARE = 70


class Terminated(BaseException):
    """A termination signal arrived while watching."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated(signum)


@contextlib.contextmanager
def _deferred_signals() -> Iterator[None]:
    """Hold SIGTERM/SIGINT while the revert runs; the verdict is still written afterwards."""
    pending: list[int] = []
    previous = {
        sig: signal.signal(sig, lambda s, f: pending.append(s))
        for sig in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if pending:
            print(f"{PROG}: signal {pending[0]} held until the revert finished", file=sys.stderr)


def write_json_atomic(path: str, data: dict[str, Any]) -> None:
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write(json.dumps(data, indent=2, allow_nan=False, default=str) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, target)
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def verdict_record(settings: Settings, outcome: WatchOutcome, started_at: str) -> dict[str, Any]:
    s = outcome.state
    return {
        "verdict": outcome.verdict.verdict,
        "exit_code": outcome.verdict.exit_code,
        "reason": outcome.verdict.reason,
        "probes": s.probes,
        "planned_probes": settings.planned_probes,
        "green": s.green,
        "red": s.red,
        "inconclusive": s.inconclusive,
        "fleet_breach": s.fleet_breach,
        "blind": s.blind,
        "blind_seconds": round(s.blind_seconds, 3),
        "revert": asdict(outcome.revert) if outcome.revert else None,
        "canary_selector": settings.canary_selector,
        "control_selector": settings.control_selector,
        "canary_node": settings.canary_node,
        "started_at": started_at,
        "finished_at": now_iso(),
        "pid": os.getpid(),
    }


def abort_check(settings: Settings) -> Callable[[], str | None] | None:
    """What the window asks between probes: whether `make abort` asked for a revert now (approval_state's
    abort.json beside the verdict file); None without a verdict file (no record folder to ask in)."""
    if not settings.verdict_file:
        return None
    gate = Path(settings.verdict_file).parent
    return lambda: approval.abort_asked(gate)


def _usage_error(message: str) -> int:
    scrub = Scrubber([os.environ.get("PROM_TOKEN", ""), os.environ.get("PROM_PASSWORD", "")])
    print(f"{PROG}: error: {scrub.text(message)}", file=sys.stderr)
    return EXIT_USAGE


def _announce(notifier: Notifier, settings: Settings, record: dict[str, Any], log: DecisionLog) -> None:
    """The verdict to Alertmanager, when configured: bounded, never raising, logged either way."""
    event = verdict_event(settings.notify, record["verdict"], record["reason"], settings.canary_node)
    if event is not None and notifier.enabled:
        log.write("notify", deploy_event=event.event, sent=notifier.send(event))


def _after_approval(settings: Settings, outcome: WatchOutcome, record: dict[str, Any], started_at: str,
                    reverter: Reverter, log: DecisionLog, metrics: WatcherMetrics, notifier: Notifier,
                    out: Callable[[str], None], scrubber: Scrubber) -> tuple[WatchOutcome, dict[str, Any]]:
    """Wait for make approve / make abort judging on (watcher.awaiting); the final outcome and record:
    the verdict file is written again when the promote was undone (abort, time limit, red)."""
    assert settings.approval is not None
    outcome, approval = await_approval(settings, settings.approval, outcome, reverter, log, metrics, notifier, out,
                                       _deferred_signals)
    leave_joined()
    if outcome.verdict.verdict == "promote":
        return outcome, record
    record = {**verdict_record(settings, outcome, started_at), "window_verdict": "promote", "approval": approval}
    if settings.verdict_file:
        write_json_atomic(settings.verdict_file, scrubber.value(record))
    log.write("verdict", **record)
    metrics.final(outcome.verdict.verdict, replacing="promote")
    out(summary(record))
    if outcome.decision is not None or outcome.verdict.verdict == "revert_failed":
        _announce(notifier, settings, record, log)  # red while waiting, or a failed revert (it pages)
    return outcome, record


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        settings = settings_from_args(args)
    except ConfigError as exc:
        return _usage_error(str(exc))
    if args.check_traffic and not args.check_config:
        return _usage_error("--check-traffic goes with --check-config")
    if args.check_config:
        print(f"settings ok: {settings.planned_probes} probes, every {settings.interval:g}s")
        traffic = check_traffic(settings) if args.check_traffic else None
        for warning in [*settings_warnings(settings), *([traffic] if traffic else [])]:
            print(f"warning: {warning}")
        return 0

    scrubber = Scrubber(settings.secrets)
    scrubber.add(settings.prom_user, settings.prom_password)

    def out(line: str) -> None:
        print(scrubber.text(line), flush=True)

    metrics = WatcherMetrics()
    try:
        serving = metrics.serve(settings.metrics_port, settings.metrics_addr)
    except OSError as exc:
        return _usage_error(
            f"cannot serve metrics on {settings.metrics_addr}:{settings.metrics_port}: "
            f"{exc.strerror or exc}; pick another --metrics-port or 0"
        )
    if settings.metrics_port and not serving:
        out(f"metrics: {settings.metrics_addr}:{settings.metrics_port} is in use; "
            "watching anyway, serving /metrics once it is free")
    try:
        log = DecisionLog(settings.decision_log, scrubber)
    except OSError as exc:
        metrics.stop()
        return _usage_error(f"cannot open decision log {settings.decision_log}: {exc.strerror}")
    if settings.verdict_file:
        # A verdict left by an earlier run must never be read as this run's.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(settings.verdict_file)

    reverter = build_reverter(settings)
    client = settings.prom_client()
    started_at = now_iso()
    queries = rendered(settings)
    log.write(
        "start",
        settings=settings.public(),
        planned_probes=settings.planned_probes,
        queries={side: asdict(q) for side, q in queries.items()},
        revert=reverter.describe(),
        pid=os.getpid(),
    )
    out(
        f"watching canary {{{settings.canary_selector}}} against control "
        f"{{{settings.control_selector}}} at {settings.prom_url}: "
        f"{settings.planned_probes} probes, "
        f"every {settings.interval:g}s over {format_range(settings.range_seconds)}; "
        f"on red: {reverter.describe()}"
    )
    for warning in settings_warnings(settings):
        out(f"warning: {warning}")
    if settings.notify.deploy_id:
        metrics.deploy(settings.notify.deploy_id, settings.canary_node or "", settings.notify.release)
    previous = {
        sig: signal.signal(sig, _raise_terminated) for sig in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        outcome = run_watch(
            settings, client, reverter, log, metrics, out, _deferred_signals, wall=time.time,
            abort_asked=abort_check(settings),
        )
        record = verdict_record(settings, outcome, started_at)
        awaiting = settings.approval is not None and outcome.verdict.verdict == "promote"
        # Done with the fleet: the run's lock is no longer ours to keep (before the verdict, which the
        # run waits for, so the run's own release finds no watcher and removes the lock). Awaiting
        # approval, the canary is still ours to revert: the lock is left after the decision.
        if not awaiting:
            leave_joined()
        if settings.verdict_file:
            write_json_atomic(settings.verdict_file, scrubber.value(record))
        log.write("verdict", **record)
        metrics.final(outcome.verdict.verdict)
        out(summary(record))
        notifier = Notifier(settings.notify, out, metrics.notified)
        _announce(notifier, settings, record, log)
        if awaiting:
            outcome, record = _after_approval(settings, outcome, record, started_at, reverter, log, metrics,
                                              notifier, out, scrubber)
        if settings.metrics_port:
            # Stay scrapeable for a few scrapes, so Prometheus records the verdict (and a failed revert).
            with contextlib.suppress(Terminated):
                time.sleep(min(60.0, 3 * settings.scrape_interval))
        return outcome.verdict.exit_code
    except Terminated as exc:
        name = signal.Signals(exc.signum).name
        log.write("aborted", signal=name, reason="terminated before a verdict")
        print(
            f"{PROG}: {name} before a verdict: no verdict written; the deploy treats that as red",
            file=sys.stderr,
        )
        return 128 + exc.signum
    except Exception as exc:  # a bug: say so, leave no verdict (the deploy fails closed)
        log.write("crash", error=f"{type(exc).__name__}: {exc}")
        print(scrubber.text(traceback.format_exc()), file=sys.stderr)
        print(f"{PROG}: internal error, no verdict written: {exc}", file=sys.stderr)
        return EXIT_SOFTWARE
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        client.close()
        metrics.stop()
        log.close()
