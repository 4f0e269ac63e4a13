"""Human-facing text: the live line per probe and the final summary (pure functions)."""

from __future__ import annotations

from typing import Any

from watcher.judge import ProbeInput, ProbeResult, Rules, State, WatchState
from watcher.sli import SideSLI


def _side(name: str, sli: SideSLI | None) -> str:
    if sli is None:
        return f"{name} n/a"
    p95 = "n/a" if sli.p95 is None else f"{sli.p95:.3f}s"
    ratio = sli.error_ratio
    err = "n/a" if ratio is None else f"{ratio * 100:.2f}%"
    return f"{name} p95 {p95} 5xx {err} ({sli.errors:.0f}/{sli.requests:.0f})"


def live_line(
    k: int, n: int, probe: ProbeInput, result: ProbeResult, state: WatchState, rules: Rules
) -> str:
    head = f"[{k}/{n}] "
    if result.state is State.BLIND:
        stale = result.at - state.last_fresh_at
        return (
            f"{head}BLIND ({stale:.1f}s without fresh data, max {rules.max_staleness:g}s): "
            f"{result.reasons[0].removeprefix('blind: ')}"
        )
    body = f"{_side('canary', probe.canary)} | {_side('control', probe.control)}"
    tag = result.state.value.upper().replace("_", "-")
    if result.state is State.RED:
        streaks = []
        if "errors" in result.red_kinds:
            streaks.append(f"errors {state.errors_streak}/{rules.errors_consecutive}")
        if "latency" in result.red_kinds:
            streaks.append(f"latency {state.latency_streak}/{rules.latency_consecutive}")
        tag = f"RED ({', '.join(streaks)})"
    line = f"{head}{body} | {tag}"
    if result.state is not State.GREEN:
        line += f": {result.reasons[0].removeprefix(result.state.value + ': ')}"  # the tag says it
    return line


def summary(record: dict[str, Any]) -> str:
    """The final summary printed at exit, from the verdict record."""
    lines = [
        f"verdict: {record['verdict']} (exit {record['exit_code']}): {record['reason']}",
        (
            f"probes: {record['probes']}/{record['planned_probes']} "
            f"(green {record['green']}, red {record['red']}, "
            f"inconclusive {record['inconclusive']}, fleet-wide {record['fleet_breach']}, "
            f"blind {record['blind']}); blind time {record['blind_seconds']:.1f}s"
        ),
    ]
    revert = record.get("revert")
    if revert:
        lines.append(f"revert ({revert['action']}): {revert['detail']}")
    return "\n".join(lines)
