"""The drill's report (edge_canary/gameday/report.py): Prometheus series, figures, markdown, the summary
table and the PNG timeline, from hand-made results."""

from __future__ import annotations

import math
from pathlib import Path

from edge_canary.gameday import checks as chk
from edge_canary.gameday import report as rep
from edge_canary.gameday.scenarios import SCENARIOS

T0 = 1_800_000_000.0


def result(name: str = "errors", ok: bool = True) -> rep.DrillResult:
    r = rep.DrillResult(SCENARIOS[name], "gameday-x-errors", "lab", T0, ended_at=T0 + 100, canary="edge-1",
                        release_version="v2-errors", release_sha="b" * 64, lkg_version="v1", lkg_sha="a" * 64,
                        tool_verdict="reverted", thresholds=(0.3, 0.01),
                        selectors=('job="edge",node="edge-1"', 'job="edge",node!="edge-1"'))
    r.checks = [chk.Check("tool verdict", True, "expected reverted, the tool said reverted"),
                chk.Check("no collateral failures", ok, "2 failed | 1 of them ...")]
    r.traffic = chk.traffic(chk.parse_requests([]), "v2-errors", 0.3)
    r.first_bad_at, r.detected_at, r.restored_at = T0 + 40, T0 + 45.5, T0 + 70
    r.event("deploy started", at=T0 + 1)
    r.event("detected: reverted", "detect", T0 + 45.5)
    return r


def test_series_turn_per_code_counts_into_a_5xx_ratio_and_keep_gaps() -> None:
    p95: list[dict[str, object]] = [{"metric": {}, "values": [[10, "0.1"], [11, "0.2"]]}]
    requests: list[dict[str, object]] = [{"metric": {"code": "200"}, "values": [[10, "90"], [11, "0"], [12, "50"]]},
                {"metric": {"code": "502"}, "values": [[10, "10"], [11, "0"], [12, "NaN"]]}]
    s = rep.series_from(p95, requests)
    assert s.times == [10.0, 11.0, 12.0]
    assert s.p95[:2] == [0.1, 0.2] and math.isnan(s.p95[2])
    assert s.err[0] == 0.1 and math.isnan(s.err[1]) and s.err[2] == 0.0


def test_queries_come_from_the_watcher_templates_with_both_selectors() -> None:
    q = rep.queries_for(('node="a"', 'node!="a"'), 4)
    assert 'node="a"' in q["canary"].p95 and 'node!="a"' in q["control"].requests and "[4s]" in q["canary"].p95


def test_markdown_names_every_expectation_and_figure() -> None:
    md = rep.markdown(result(ok=False))
    assert md.startswith("# Game day `errors`: FAIL")
    assert "| **FAIL** | no collateral failures | 2 failed / 1 of them ... |" in md
    assert "| PASS | tool verdict |" in md
    assert "| first bad response → detection | 5.5 s |" in md
    assert "| detection → edge-1 serving v1 again | 24.5 s |" in md
    assert "| 1.0 | deploy started |" in md
    assert "nothing to clean up" in md


def test_a_release_no_client_saw_is_timed_from_its_install() -> None:
    r = result()
    r.first_bad_at, r.pushed_at = None, T0 + 30
    assert rep.timings(r) == ("15.5 s*", "24.5 s")
    assert "| first bad response | none reached clients |" in rep.markdown(r)


def test_summary_table_has_a_row_per_drill_with_what_failed() -> None:
    table = rep.summary_table([result(), result(ok=False)])
    lines = table.splitlines()
    assert len(lines) == 4
    assert "| errors | PASS | reverted | 5.5 s | 24.5 s |" in lines[2]
    assert lines[3].endswith("| no collateral failures |")
    text = rep.text_table([result()])
    assert text.splitlines()[1].split()[:3] == ["errors", "PASS", "reverted"]


def test_the_timeline_is_a_png_with_or_without_prometheus_data(tmp_path: Path) -> None:
    series = {"canary": rep.Series([T0 + 1, T0 + 2], [0.1, 0.5], [0.0, 0.2]), "control": rep.Series()}
    for name, data in (("with.png", series), ("without.png", {})):
        rep.plot_timeline(result(), data, tmp_path / name)
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_write_report_and_summary_link_the_files(tmp_path: Path) -> None:
    r = result()
    r.queries = {}  # nothing to ask Prometheus
    rep.write_report(r, tmp_path / "errors", "http://127.0.0.1:9")
    assert r.report_md == tmp_path / "errors" / "errors.md" and r.report_md.exists()
    assert r.report_png is not None and r.report_png.exists()
    summary = rep.write_summary([r], tmp_path).read_text()
    assert "# Game day: 1/1 drills passed" in summary and "- [errors](errors/errors.md)" in summary
