"""edge_canary.ops.play: following the watcher logs of the run folder a play announces (as a fact)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from edge_canary.ops.play import follow


def test_follow_prints_each_logs_new_lines_once_under_its_label(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "runs" / "r1"
    (run_dir / "stage-1").mkdir(parents=True)
    (run_dir / "stage-1" / "watcher.log").write_text("probe 1 green\n")
    stop = threading.Event()
    rounds: list[Path] = []

    def logs(found: Path) -> list[tuple[str, Path]]:
        rounds.append(found)
        if len(rounds) == 2:  # between the rounds the watcher writes on, and a second stage starts
            with (run_dir / "stage-1" / "watcher.log").open("a") as log:
                log.write("probe 2 green\n")
        if len(rounds) == 3:
            stop.set()
        return [("watcher stage-1", run_dir / "stage-1" / "watcher.log"),
                ("watcher stage-2", run_dir / "stage-2" / "watcher.log")]  # not there yet: skipped

    follow(lambda: run_dir, logs, stop, interval=0)
    assert rounds == [run_dir] * 3
    assert capsys.readouterr().out.splitlines() == ["    watcher stage-1 | probe 1 green",
                                                    "    watcher stage-1 | probe 2 green"]


def test_follow_waits_for_the_announcement(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stop = threading.Event()
    called: list[Path] = []
    timer = threading.Timer(0.3, stop.set)
    timer.start()

    def logs(run_dir: Path) -> list[tuple[str, Path]]:
        called.append(run_dir)
        return []

    follow(lambda: None, logs, stop, interval=0.05)
    timer.join()
    assert called == []
    assert capsys.readouterr().out == ""
