"""docs/BENCHMARKS.md rendering (edge_canary.bench.report) and the bench's argument checks
(`edge-canary bench`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edge_canary.bench.report import (
    FleetRollbackResult,
    OpResult,
    Pct0Result,
    Results,
    RevertResult,
    RollResult,
    contention_line,
    fit_line,
    markdown,
    naive_ratio_line,
    revert_rows,
    roll_rows,
    short,
)
from edge_canary.bench.stats import Fit
from tests.helpers.paths import REPO


def op(name: str, run: int, dropped: int, before: float | None = 0.01, during: float | None = 0.02) -> OpResult:
    return OpResult(name, run, 0, 30.0, 1500, dropped, 0, 0, before, during)


def results() -> Results:
    res = Results("full", "Linux, 2 CPUs", "2026-01-01 00:00 UTC", "make bench", {"runs": 3})
    res.ops = [op("green", 1, 0), op("green", 2, 0), op("green", 3, 1), op("naive", 1, 9), op("naive", 2, 12),
               op("naive", 3, 10, during=0.5)]
    res.reverts = [RevertResult("v2-errors", 1, "reverted", 100.0, 112.0, last_bad_at=104.0),
                   RevertResult("v2-errors", 2, "reverted", 200.0, 210.0, last_bad_at=202.0),
                   RevertResult("v2-slow", 1, "reverted", 300.0, None)]
    res.rolls = [RollResult(3, 1, 3, 0, 90.0, 60.0, {"drain": 1.0, "push": 3.0}, 30.0, 11, 55, 12.0, 32),
                 RollResult(10, 5, 3, 0, 120.0, 75.0, {"drain": 1.5, "push": 4.0}, 58.0, 10, 50, 26.0, 32)]
    res.pct0 = [Pct0Result(1, 0, 2.5, 4.0, 3.0), Pct0Result(2, 0, 3.5, 5.0, 3.2), Pct0Result(3, 0, 2.0, 3.5, 2.9)]
    res.watcher = {"elapsed_s": 300.0, "cpu_s": 1.5, "cpu_per_hour": 17.0, "peak_rss_mib": 33.0, "probes": 100,
                   "queries": 600, "queries_per_probe": 6.0}
    return res


def test_report_has_every_section_with_medians_and_per_run_values() -> None:
    text = markdown(results(), "METHOD TEXT", interval=3.0, floor=8.0)
    for heading in ("## Method", "## 1. Time to revert", "## 2–3. Requests dropped", "## 4. Roll time",
                    "## 5. Watcher cost", "## 6. `make rollout PCT=0`", "## 7. Controller cost per node"):
        assert heading in text
    assert "METHOD TEXT" in text and "- Reproduce: `make bench`" in text
    # v2-errors: 12 s and 10 s -> median 11 s, 3.67x the 3 s interval, 1.38x the 8 s floor
    # exposure 4 s and 2 s -> median 3 s
    assert ("| loopback | v2-errors | 2 | reverted, reverted | 3.0 s | 4.0, 2.0 | – | –, – | 11.0 s | 12.0, 10.0 "
            "| 3.67× | 1.38× |") in text
    assert "| loopback | v2-slow | 1 | reverted | – | – | – | – | – | – |" in text
    # the off switch: medians of the in-force times, wall times and CPU seconds
    assert "| 3 | 2.50 s | 2.50, 3.50, 2.00 | 4.00 s | 3.00 | 0, 0, 0 |" in text
    # controller cost: 30 CPU-s at 3 nodes, 58 at 10 -> 4 CPU-s per extra node; of it module runs 12 and 26
    # (2 per extra node), so Ansible's own 18 and 32 (2 per extra node)
    assert "| 3 | 1 | 32 | 30.0 | 10.00 | 4.00 | 6.00 | 11 | 55 |" in text
    assert "| 10 | 5 | 32 | 58.0 | 5.80 | 2.60 | 3.20 | 10 | 50 |" in text
    assert "| 3 | 1 | 32 | 3 | 1 | 90.0 s | 60.0 s | 20.0 s | 1.0 s | 3.0 s |" in text
    assert "CPU seconds per extra node (least-squares slope over the fleet sizes): 4.00 s" in text
    assert "Of it, Ansible's controller (ansible-playbook and its workers" in text and "load balancers): 2.00 s" in text
    # naive: 9, 12, 10 -> median 10; green 0, 0, 1 -> median 0
    assert "| 3 | 10 | 9, 12, 10 |" in text
    assert "| 300.0 s | 1.50 | 17.0 | 33.0 MiB | 100 | 600 | 6.00 |" in text


def test_rolls_with_other_forks_are_rows_of_their_own_and_an_unrecorded_forks_is_a_dash() -> None:
    def roll(forks: int | None, roll_s: float) -> RollResult:
        return RollResult(30, 10, 3, 0, 100.0, roll_s, {"push": 2.0}, 120.0, 4, 38, 60.0, forks)

    rows = roll_rows([roll(5, 80.0), roll(32, 60.0), roll(5, 90.0), roll(None, 70.0)])
    assert rows[0].startswith("| nodes | batch | forks | batches | runs |")
    assert rows[2:] == ["| 30 | 10 | – | 3 | 1 | 100.0 s | 70.0 s | 23.3 s | 2.0 s |",
                        "| 30 | 10 | 5 | 3 | 2 | 100.0 s | 85.0 s | 28.3 s | 2.0 s |",
                        "| 30 | 10 | 32 | 3 | 1 | 100.0 s | 60.0 s | 20.0 s | 2.0 s |"]


def test_naive_ratio_when_draining_dropped_nothing() -> None:
    line = naive_ratio_line([op("green", 1, 0), op("naive", 1, 7)])
    assert "7 requests" in line and "unbounded" in line


def test_naive_ratio_as_a_multiple() -> None:
    assert "a ratio of 4.0×" in naive_ratio_line([op("green", 1, 2), op("naive", 1, 8)])


def test_naive_ratio_when_not_measured() -> None:
    assert "not measured" in naive_ratio_line([op("naive", 1, 8)])
    # 0 and 0 is no ratio, neither unbounded nor 1x
    both_zero = naive_ratio_line([op("green", 1, 0), op("naive", 1, 0)])
    assert "neither dropped a request" in both_zero and "unbounded" not in both_zero


@pytest.mark.parametrize(("args", "message"), [
    (["--phases", "green,bogus"], "unknown phase(s) bogus"),
    (["--fleets", "10:1,x"], "is not NODES:BATCH"),
    (["--fleets", "3:3"], "batch sizes from 1 to nodes-1"),
    (["--runs", "0"], "--runs 0 is out of range"),
    (["--forks", "5 x"], "--forks '5 x' is not whole numbers of at least 1"),
    (["--forks", "0"], "--forks '0' is not whole numbers of at least 1"),
    (["--forks", "\u00b2"], "--forks '\u00b2' is not whole numbers of at least 1"),
    (["--fleets", "10:2,5", "--forks", "10 4"], "--forks 4 is less than the batch of 5 in --fleets"),
    (["--lab-mode", "hosts", "--phases", "revert,pct0"], "--lab-mode hosts measures only revert; drop pct0"),
])
def test_bad_arguments_say_what_is_wrong_and_exit_2(args: list[str], message: str, tmp_path: Path) -> None:
    out = tmp_path / "BENCHMARKS.md"
    done = subprocess.run([sys.executable, "-m", "edge_canary", "bench", *args, "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert message in done.stderr
    assert not out.exists()


def test_task_names_fit_in_a_table_cell() -> None:
    assert short("Drain | the node\non every LB") == "Drain / the node on every LB"
    cut = short("x" * 300)
    assert len(cut) == 110 and cut.endswith("…")


def test_time_to_revert_is_broken_down_against_the_floor() -> None:
    # first bad answer at 100, watcher starts at 104, first red probe at 110, rollback play 30 s, v1 at 145
    result = RevertResult("v2-errors", 1, "reverted", 100.0, 145.0, 104.0, 110.0, 30.0)
    assert (result.seconds, result.until_watching, result.detection) == (45.0, 4.0, 6.0)
    row = revert_rows([result], interval=3.0, floor=8.0)[2]
    assert row == ("| loopback | v2-errors | 1 | reverted | – | – | – | – | 45.0 s | 45.0 | 15.00× | 5.62× | 4.0 s "
                   "| 6.0 s | 0.75× | 30.0 s |")
    # a watcher already watching when the first bad answer comes: detection counts from the bad answer
    early = RevertResult("v2-slow", 1, "reverted", 100.0, 140.0, 90.0, 107.0, 30.0)
    assert early.detection == 7.0


def test_reverts_over_ssh_are_rows_of_their_own_after_the_loopback_ones() -> None:
    loopback = RevertResult("v2-errors", 1, "reverted", 100.0, 110.0, last_bad_at=103.0)
    over_ssh = [RevertResult("v2-errors", run, "reverted", 100.0, 120.0, last_bad_at=100.0 + run, lab="hosts")
                for run in (1, 2, 3)]
    rows = revert_rows([*over_ssh, loopback], interval=3.0, floor=8.0)[2:]
    assert [row.split(" | ")[:3] for row in rows] == [["| loopback", "v2-errors", "1"],
                                                      ["| hosts (SSH)", "v2-errors", "3"]]
    assert rows[1].split(" | ")[4:6] == ["2.0 s", "1.0, 2.0, 3.0"]  # the exposure of the hosts runs alone


def test_the_time_in_rotation_after_the_red_verdict_is_its_own_column() -> None:
    # first bad answer at 100, red verdict at 104, last bad answer at 104.6 / 103.9 (none after the verdict)
    runs = [RevertResult("v2-slow", 1, "reverted", 100.0, 112.0, last_bad_at=104.6, verdict_at=104.0),
            RevertResult("v2-slow", 2, "reverted", 100.0, 112.0, last_bad_at=103.9, verdict_at=104.0),
            RevertResult("v2-slow", 3, "reverted", 100.0, 112.0, last_bad_at=105.0, verdict_at=104.0)]
    header, _, row = revert_rows(runs, interval=3.0, floor=8.0)
    assert header.split(" | ")[6] == "red verdict → last bad answer served"
    assert row.split(" | ")[6:8] == ["0.6 s", "0.6, -0.1, 1.0"]
    assert header.count("|") == row.count("|")


def test_the_deploys_own_share_of_its_p99_rise_is_its_ratio_over_its_check_mode_twins() -> None:
    ops = [op("green", 1, 0, 0.002, 0.006), op("green", 2, 0, 0.002, 0.005), op("green", 3, 0, 0.002, 0.004),
           op("green-check", 1, 0, 0.002, 0.004), op("green-check", 2, 0, 0.002, 0.005)]
    line = contention_line(ops)
    # medians: green 2.50x, check-mode (2.00x, 2.50x) 2.25x -> the deploy's own 1.11x
    assert "2.50× for the green deploy and 2.25× for the same plays in check mode" in line
    assert "1.11× is the deploy's own share" in line
    # a twin that rose more than the deploy leaves no share to the deploy (no 0.8× "share")
    line = contention_line([op("green", 1, 0, 0.002, 0.004), op("green-check", 1, 0, 0.002, 0.005)])
    assert "none of the rise is measurably the deploy's own" in line and "own share" not in line
    # no rise at all is said so, not blamed on the plays
    line = contention_line([op("green", 1, 0, 0.002, 0.0018), op("green-check", 1, 0, 0.002, 0.002)], isolated=True)
    assert "0.90× for the green deploy" in line and line.endswith("p99 did not rise during the deploy.")


def test_the_rest_of_the_rise_is_named_by_where_the_controller_ran() -> None:
    ops = [op("green", 1, 0, 0.002, 0.006), op("green-check", 1, 0, 0.002, 0.004)]
    shared = contention_line(ops)
    assert "the controller's process start-ups on the CPUs the nodes and HAProxy share" in shared
    isolated = contention_line(ops, isolated=True)
    assert "which ran on CPUs of its own (--isolate-controller)" in isolated and "start-ups" not in isolated
    res = results()
    res.ops += [op("green-check", 1, 0)]
    assert "start-ups" in markdown(res, "M", interval=3.0, floor=8.0)
    res.settings["controller"] = "on CPUs of its own"
    assert "which ran on CPUs of its own" in markdown(res, "M", interval=3.0, floor=8.0)


def test_no_check_mode_twin_is_said_so() -> None:
    assert "not measured" in contention_line([op("green", 1, 0)])
    assert "no p99" in contention_line([op("green", 1, 0, None, 0.01), op("green-check", 1, 0)])


def test_fleet_rollbacks_as_multiples_of_the_smallest_fleet() -> None:
    res = results()
    res.fleet_rollbacks = [FleetRollbackResult(3, 1, 1, 0, 20.0), FleetRollbackResult(3, 1, 2, 0, 24.0),
                           FleetRollbackResult(30, 10, 1, 0, 70.0), FleetRollbackResult(30, 10, 2, 0, 90.0),
                           FleetRollbackResult(30, 10, 3, 2, 80.0)]
    text = markdown(res, "METHOD", interval=3.0, floor=8.0)
    assert "## 8. Rollback of the whole fleet as it grows" in text
    assert "| 3 | 1 | 2 | 22.0 s | 20.0, 24.0 | 0, 0 | 1.00× |" in text
    assert "| 30 | 10 | 3 | 80.0 s | 70.0, 90.0, 80.0 | 0, 0, 2 | 3.64× |" in text
    assert "Not measured in this run." in markdown(results(), "METHOD", interval=3.0, floor=8.0).split("## 8.")[1]


def test_fit_line_signs_each_term_and_shows_a_free_fit_it_corrected() -> None:
    assert fit_line(Fit(5.0, 18.0, 1.5)).startswith(
        "Least-squares fit over every roll: roll time ≈ 5.0 s + 18.0 s × batches + 1.5 s × nodes.")
    assert "held ≥ 0" not in fit_line(Fit(5.0, 18.0, 1.5))
    corrected = fit_line(Fit(0.0, 0.0, 3.5, free=(190.2, -66.0, 4.9)))
    assert "roll time ≈ 0.0 s + 0.0 s × batches + 3.5 s × nodes." in corrected
    assert "the unconstrained fit is 190.2 s − 66.0 s × batches + 4.9 s × nodes" in corrected


def test_the_fit_comes_from_the_rolls_in_the_report_merged_ones_too() -> None:
    res = results()
    assert "Not enough distinct (batches, nodes) points" in markdown(res, "M", interval=3.0, floor=8.0)
    # a 30-node roll merged from another run's JSON joins the fit: 5 + 18·batches + 1.5·nodes exactly
    res.rolls = [RollResult(n, 1, b, 0, 0.0, 5.0 + 18.0 * b + 1.5 * n, {}) for b, n in [(3, 3), (3, 10), (4, 30)]]
    assert "roll time ≈ 5.0 s + 18.0 s × batches + 1.5 s × nodes." in markdown(res, "M", interval=3.0, floor=8.0)
