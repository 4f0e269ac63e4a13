"""edge_canary.ops.rollout (`edge-canary rollout`), the pure parts: the request check, the extra vars,
the closing summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_canary.ops import rollout as ro
from edge_canary.ops.summary import rollout_summary


@pytest.mark.parametrize(
    ("pct", "stages", "hold", "stages_out", "hold_out"),
    [
        ("10", "", "", (10,), None),
        ("0", "", "", (0,), None),
        ("100", "", "30", (100,), 30),
        ("", "1 10 50 100", "", (1, 10, 50, 100), None),
        ("", "1,10, 50", "0", (1, 10, 50), 0),
        (" 7 ", "", "", (7,), None),
    ],
)
def test_good_requests(pct: str, stages: str, hold: str, stages_out: tuple[int, ...],
                       hold_out: int | None) -> None:
    req = ro.parse_request(pct, stages, hold)
    assert req.stages == stages_out and req.hold == hold_out
    assert req.single == bool(pct.strip())


@pytest.mark.parametrize(
    ("pct", "stages", "hold", "words"),
    [
        ("", "", "", 'give PCT=N (0-100) or STAGES="1 10 50 100"'),
        ("10", "1 10", "", "not both"),
        ("abc", "", "", "PCT=abc: abc is not a whole number from 0 to 100"),
        ("101", "", "", "PCT=101: 101 is not a whole number from 0 to 100"),
        ("-1", "", "", "PCT=-1: -1 is not a whole number"),
        ("1.5", "", "", "PCT=1.5: 1.5 is not a whole number"),
        ("1e2", "", "", "is not a whole number"),
        ("", "1 10 x", "", 'STAGES="1 10 x": x is not a whole number'),
        ("", "50 10", "", "each stage must be above the one before"),
        ("", "10 10", "", "each stage must be above the one before"),
        ("10", "", "soon", "ROLLOUT_HOLD=soon is not a whole number of seconds"),
        ("10", "", "-5", "ROLLOUT_HOLD=-5 is not a whole number of seconds"),
    ],
)
def test_bad_requests_are_one_line_saying_what_to_give(pct: str, stages: str, hold: str,
                                                       words: str) -> None:
    with pytest.raises(ro.UsageError) as err:
        ro.parse_request(pct, stages, hold)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_extra_vars_pass_pct_or_stages_as_asked() -> None:
    single = ro.extra_vars(ro.parse_request("0", "", ""), "r1", force=False)
    assert single == {"rollout_id": "r1", "force_lock": False, "rollout_pct": "0"}
    staged = ro.extra_vars(ro.parse_request("", "1 10", "5"), "r2", force=True)
    assert staged["rollout_stages"] == "1 10" and staged["rollout_hold"] == "5"
    assert staged["force_lock"] is True and "rollout_pct" not in staged


def test_summary_says_how_each_stage_ended(tmp_path: Path) -> None:
    (tmp_path / "result.json").write_text(json.dumps({
        "rollout_id": "r1", "rollout_pct": 0,
        "stages": [{"stage": 1, "pct": 10, "hold": 5, "verdict": "promote", "reason": "3/3 green"},
                   {"stage": 2, "pct": 50, "hold": 5, "verdict": "reverted", "reason": "red"}],
        "stopped": {"pct": 50, "verdict": "reverted"}}))
    text = rollout_summary(tmp_path)
    assert "stage 1: 10 % held 5 s -> promote - 3/3 green" in text
    assert "stage 2: 50 % held 5 s -> reverted - red" in text
    assert "STOPPED at 50 % (reverted)" in text
    assert f"every node now at rollout_pct=0; records in {tmp_path}" in text


def test_summary_of_a_check_mode_run_says_nothing_changed(tmp_path: Path) -> None:
    (tmp_path / "result.json").write_text(json.dumps({
        "rollout_id": "r1", "rollout_pct": 30, "stopped": None, "check_mode": True,
        "stages": [{"stage": 1, "pct": 30, "hold": 20, "verdict": "would be watched", "reason": ""}]}))
    text = rollout_summary(tmp_path)
    assert "rollout r1 — CHECK MODE, nothing changed:" in text
    assert "  stage 1: 30 % would be held 20 s and watched\n" in text  # not "not watched": a real run watches
    assert f"every node would be at rollout_pct=30; records in {tmp_path}" in text and "now" not in text


def test_summary_without_a_result_points_at_the_play_output(tmp_path: Path) -> None:
    assert "no result" in rollout_summary(tmp_path)


def test_summary_of_an_unwatched_stage_says_no_hold(tmp_path: Path) -> None:
    (tmp_path / "result.json").write_text(json.dumps({
        "rollout_id": "r1", "rollout_pct": 0, "stopped": None,
        "stages": [{"stage": 1, "pct": 0, "hold": 45, "verdict": "not watched", "reason": ""}]}))
    assert "  stage 1: 0 % -> not watched\n" in rollout_summary(tmp_path)


def test_summary_names_the_nodes_whose_write_failed(tmp_path: Path) -> None:
    """A node whose service was down when PCT=0 was written: 'every node now at 0' would be a lie about it."""
    (tmp_path / "result.json").write_text(json.dumps({
        "rollout_id": "r1", "rollout_pct": 0, "failed_nodes": ["edge-3"],
        "stages": [{"stage": 1, "pct": 0, "hold": 45, "verdict": "not watched", "reason": ""}],
        "stopped": {"pct": 0, "verdict": "failed"}}))
    assert f"every node but edge-3 (failed: see above) now at rollout_pct=0; records in {tmp_path}" in (
        rollout_summary(tmp_path))
