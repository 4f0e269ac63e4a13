"""A drill's report: the markdown page, the PNG timeline, and the summary table of `all`.

The timeline plots canary and control p95 and 5xx ratio from Prometheus (range queries over the
drill, rendered from the watcher's own query templates) with the SLO thresholds drawn, and marks
the deploy steps, the disturbance, the detection and the revert.
"""

from __future__ import annotations

import json
import math
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from edge_canary.gameday.checks import Check, Traffic, seconds_between
from edge_canary.gameday.scenarios import Scenario
from watcher.promql import Queries, RenderedQueries, render


@dataclass(frozen=True)
class Event:
    at: float  # epoch seconds
    label: str
    kind: str = "step"  # step, fault, detect, restore


@dataclass
class Series:
    times: list[float] = field(default_factory=list)
    p95: list[float] = field(default_factory=list)  # nan where there is no data
    err: list[float] = field(default_factory=list)


@dataclass
class DrillResult:
    scenario: Scenario
    drill_id: str
    inventory: str
    started_at: float
    ended_at: float = 0.0
    canary: str = ""
    release_version: str = ""
    release_sha: str = ""
    lkg_version: str = ""
    lkg_sha: str = ""
    tool_verdict: str = "not run"
    tool_reason: str = ""
    tool_records: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    traffic: Traffic | None = None
    events: list[Event] = field(default_factory=list)
    first_bad_at: float | None = None
    detected_at: float | None = None
    restored_at: float | None = None
    pushed_at: float | None = None  # the release was installed on the canary (its deploy record)
    cleanup: list[str] = field(default_factory=list)
    error: str | None = None
    interrupted: bool = False
    restore_label: str = ""  # what "restored" means when it is not the canary serving the old release again
    refused: bool = False  # stopped before changing anything (the fleet was not ready for a drill)
    thresholds: tuple[float, float] = (0.0, 0.0)  # p95 seconds, 5xx ratio
    selectors: tuple[str, str] = ("", "")  # canary, control
    queries: dict[str, RenderedQueries] = field(default_factory=dict)
    report_md: Path | None = None
    report_png: Path | None = None

    @property
    def passed(self) -> bool:
        return self.error is None and bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def failed_checks(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def event(self, label: str, kind: str = "step", at: float | None = None) -> None:
        self.events.append(Event(time.time() if at is None else at, label, kind))


# --- Prometheus series --------------------------------------------------------------------------


def queries_for(selectors: tuple[str, str], range_s: float,
                templates: Queries | None = None) -> dict[str, RenderedQueries]:
    canary, control = selectors
    return {"canary": render(templates or Queries(), canary, range_s),
            "control": render(templates or Queries(), control, range_s)}


def _range_query(prom_url: str, query: str, start: float, end: float, step: float) -> list[dict[str, object]]:
    params = urllib.parse.urlencode({"query": query, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"})
    with urllib.request.urlopen(f"{prom_url.rstrip('/')}/api/v1/query_range?{params}", timeout=30) as resp:
        data = json.loads(resp.read())
    return list(data.get("data", {}).get("result", []))


def series_from(p95_result: list[dict[str, object]], requests_result: list[dict[str, object]]) -> Series:
    """p95 per time, and the 5xx share of the per-code request counts per time (pure)."""
    p95: dict[float, float] = {}
    for item in p95_result[:1]:
        for t, v in item.get("values", []):  # type: ignore[attr-defined]
            p95[float(t)] = float(v)
    totals: dict[float, list[float]] = {}
    for item in requests_result:
        code = str(item.get("metric", {}).get("code", ""))  # type: ignore[attr-defined]
        for t, v in item.get("values", []):  # type: ignore[attr-defined]
            both = totals.setdefault(float(t), [0.0, 0.0])
            value = float(v)
            if math.isfinite(value):
                both[1] += value
                if code.startswith("5"):
                    both[0] += value
    times = sorted(set(p95) | set(totals))
    series = Series()
    for t in times:
        series.times.append(t)
        series.p95.append(p95.get(t, math.nan))
        errors, total = totals.get(t, [0.0, 0.0])
        series.err.append(errors / total if total > 0 else math.nan)
    return series


def fetch_series(prom_url: str, queries: dict[str, RenderedQueries], start: float, end: float,
                 step: float) -> dict[str, Series]:
    out = {}
    for side, q in queries.items():
        try:
            out[side] = series_from(_range_query(prom_url, q.p95, start, end, step),
                                    _range_query(prom_url, q.requests, start, end, step))
        except (OSError, ValueError):
            out[side] = Series()
    return out


# --- the PNG ------------------------------------------------------------------------------------

COLOURS = {"step": "#777777", "fault": "#d62728", "detect": "#ff7f0e", "restore": "#2ca02c"}


def plot_timeline(result: DrillResult, series: dict[str, Series], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = result.started_at
    fig, (ax_p95, ax_err) = plt.subplots(2, 1, figsize=(14, 8), sharex=True)
    names = {"canary": "canary", "control": "control"}
    for side, colour in (("canary", "#d62728"), ("control", "#1f77b4")):
        s = series.get(side, Series())
        xs = [t - t0 for t in s.times]
        ax_p95.plot(xs, s.p95, color=colour, label=f"{names[side]} {{{_sel(result, side)}}}")
        ax_err.plot(xs, [v * 100 for v in s.err], color=colour, label=names[side])
    p95_limit, err_limit = result.thresholds
    ax_p95.axhline(p95_limit, color="black", linestyle="--", linewidth=1, label=f"p95 limit {p95_limit:g} s")
    ax_err.axhline(err_limit * 100, color="black", linestyle="--", linewidth=1,
                   label=f"5xx limit {err_limit * 100:g} %")
    ax_p95.set_ylabel("p95 latency (s)")
    ax_err.set_ylabel("5xx ratio (%)")
    ax_err.set_xlabel(f"seconds since the drill started ({time.strftime('%H:%M:%S', time.localtime(t0))})")
    for ax in (ax_p95, ax_err):
        for e in result.events:
            ax.axvline(e.at - t0, color=COLOURS.get(e.kind, "#777777"), linewidth=1, alpha=0.8,
                       linestyle="-" if e.kind != "step" else ":")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7)
    for e in result.events:
        ax_p95.text(e.at - t0, 0.98, f"{e.label} ", rotation=90, fontsize=6.5, ha="right", va="top",
                    color=COLOURS.get(e.kind, "#777777"), transform=ax_p95.get_xaxis_transform())
    if not any(series.get(side, Series()).times for side in ("canary", "control")):
        ax_p95.text(0.5, 0.5, "no Prometheus data for this drill", transform=ax_p95.transAxes, ha="center")
    verdict = "PASS" if result.passed else "FAIL"
    fig.suptitle(f"game day {result.scenario.name}: {verdict} — {result.release_version} on "
                 f"{result.canary or 'the fleet'}, tool said {result.tool_verdict}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _sel(result: DrillResult, side: str) -> str:
    return result.selectors[0] if side == "canary" else result.selectors[1]


# --- the markdown -------------------------------------------------------------------------------


def _secs(value: float | None, suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:.1f} s{suffix}"


def figures(result: DrillResult) -> list[tuple[str, str]]:
    t = result.traffic
    start = result.first_bad_at
    restored = result.restore_label or f"{result.canary or 'the fleet'} serving {result.lkg_version} again"
    rows = [
        ("first bad response", "none reached clients" if start is None else
         time.strftime("%H:%M:%S", time.localtime(start)) + f" (+{start - result.started_at:.1f} s)"),
        ("first bad response → detection", _secs(seconds_between(start, result.detected_at))),
        (f"first bad response → {restored}", _secs(seconds_between(start, result.restored_at))),
        ("release installed on the canary → detection",
         _secs(seconds_between(result.pushed_at, result.detected_at))),
        (f"detection → {restored}",
         _secs(seconds_between(result.detected_at, result.restored_at))),
    ]
    if t is not None:
        rows += [
            ("requests sent", str(t.sent)),
            ("requests failed", f"{t.failed} ({t.failed_by_release} by the release itself, "
                                f"{f'{t.background} background, ' if t.background else ''}{t.collateral} collateral)"),
            ("answered by the release", f"{t.served_by_release} ({t.slow_by_release} above the p95 limit)"),
            ("not sent (load generator's own limit)", str(t.not_sent)),
        ]
    return rows


def markdown(result: DrillResult) -> str:
    s = result.scenario
    verdict = "PASS" if result.passed else "FAIL"
    lines = [
        f"# Game day `{s.name}`: {verdict}",
        "",
        f"{s.summary}.",
        "",
        f"- drill: `{result.drill_id}`, {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(result.started_at))}, "
        f"{result.ended_at - result.started_at:.0f} s",
        f"- inventory: `{result.inventory}`",
        f"- release: `{result.release_version}` (sha256 {result.release_sha[:12]}), canary `{result.canary or '-'}`",
        f"- last-known-good: `{result.lkg_version}` (sha256 {result.lkg_sha[:12]})",
        f"- expected of the tool: **{s.expect.tool_verdict}**; it said: **{result.tool_verdict}**"
        + (f" — {result.tool_reason}" if result.tool_reason else ""),
    ]
    lines += [f"- tool record: `{r}`" for r in result.tool_records]
    if result.refused:
        lines += ["", f"**The drill did not start (nothing was changed):** {result.error}"]
    elif result.error:
        lines += ["", f"**The drill broke in the middle:** {result.error}"]
    lines += ["", "## Expectations (checked by the drill itself)", "", "| result | expectation | detail |",
              "|---|---|---|"]
    lines += [f"| {'PASS' if c.ok else '**FAIL**'} | {c.name} | {c.detail.replace('|', '/')} |" for c in result.checks]
    lines += ["", "## Figures", "", "| figure | value |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in figures(result)]
    lines += ["", "## Timeline", ""]
    if result.report_png is not None:
        lines += [f"![timeline]({result.report_png.name})", ""]
    lines += ["| time | +s | event |", "|---|---|---|"]
    for e in sorted(result.events, key=lambda e: e.at):
        clock = time.strftime("%H:%M:%S", time.localtime(e.at))
        lines.append(f"| {clock} | {e.at - result.started_at:.1f} | {e.label} |")
    lines += ["", "## Cleanup", ""]
    lines += [f"- {note}" for note in result.cleanup] or ["- nothing to clean up: the fleet was left on the "
                                                          "last-known-good version by the tool"]
    return "\n".join(lines) + "\n"


def write_report(result: DrillResult, folder: Path, prom_url: str, step: float = 1.0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    result.report_png = folder / f"{result.scenario.name}.png"
    try:
        end = max(result.ended_at, result.started_at + step)
        series = fetch_series(prom_url, result.queries, result.started_at, end, step) if result.queries else {}
        plot_timeline(result, series, result.report_png)
    except Exception as exc:  # a report without its picture is still a report
        result.cleanup.append(f"the timeline could not be drawn: {type(exc).__name__}: {exc}")
        result.report_png = None
    result.report_md = folder / f"{result.scenario.name}.md"
    result.report_md.write_text(markdown(result))


def timings(r: DrillResult) -> tuple[str, str]:
    """Time to detection, from the first bad response (or, when no client got one, the release's install,
    marked *), and from detection to the canary serving the last-known-good again."""
    start, mark = (r.first_bad_at, "") if r.first_bad_at is not None else (r.pushed_at, "*")
    detect = seconds_between(start, r.detected_at)
    return (_secs(detect) + (mark if detect is not None else ""),
            _secs(seconds_between(r.detected_at, r.restored_at)))


def summary_table(results: list[DrillResult]) -> str:
    header = ["scenario", "result", "tool said", "bad → detected", "detected → restored", "sent", "failed",
              "collateral", "failed expectations"]
    rows = []
    for r in results:
        t = r.traffic
        rows.append([
            r.scenario.name, "PASS" if r.passed else "FAIL", r.tool_verdict, *timings(r),
            str(t.sent) if t else "-", str(t.failed) if t else "-", str(t.collateral) if t else "-",
            "; ".join(c.name for c in r.failed_checks) or (r.error or "")[:80] or "-",
        ])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def write_summary(results: list[DrillResult], folder: Path) -> Path:
    path = folder / "summary.md"
    passed = sum(r.passed for r in results)
    body = [f"# Game day: {passed}/{len(results)} drills passed", "", summary_table(results), "",
            "bad → detected: from the first bad response a client got, or (*) from the release's install on the "
            "canary when no client got one; detected → restored: until the canary served the last-known-good "
            "release again, READY on every LB (a rollout: the last answer from its new code path).", ""]
    body += [f"- [{r.scenario.name}]({r.report_md.relative_to(folder)})" for r in results if r.report_md is not None]
    path.write_text("\n".join(body) + "\n")
    return path


def text_table(results: list[DrillResult]) -> str:
    """The summary for the terminal: aligned columns, no markdown."""
    rows = [["scenario", "result", "tool said", "bad→detected", "detected→restored", "sent", "failed", "collateral"]]
    for r in results:
        t = r.traffic
        rows.append([r.scenario.name, "PASS" if r.passed else "FAIL", r.tool_verdict, *timings(r),
                     str(t.sent) if t else "-", str(t.failed) if t else "-", str(t.collateral) if t else "-"])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows)
