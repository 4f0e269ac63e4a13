"""The config file: parsing, the fail-safe rollout_pct, and live reloading."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from edge_app.config import ConfigWatcher, EdgeConfig, load_config, parse_config, rollout_pct


def test_parse_ignores_blank_comment_and_malformed_lines() -> None:
    text = "# a comment\n\n  rollout_pct = 25  \nnot a pair\n=novalue\nother=x=y\n"
    assert parse_config(text) == {"rollout_pct": "25", "other": "x=y"}


def test_last_duplicate_key_wins() -> None:
    assert parse_config("rollout_pct=10\nrollout_pct=20\n") == {"rollout_pct": "20"}


@pytest.mark.parametrize(("value", "expected"), [("0", 0), ("7", 7), ("50", 50), ("100", 100)])
def test_valid_rollout_pct(value: str, expected: int) -> None:
    assert rollout_pct({"rollout_pct": value}) == expected


@pytest.mark.parametrize(
    "value", ["", "101", "1000", "-1", "+5", "50.0", "5e1", "abc", "1_0", "0x10", "٥"]
)
def test_invalid_rollout_pct_is_zero(value: str) -> None:
    assert rollout_pct({"rollout_pct": value}) == 0


def test_missing_rollout_pct_is_zero() -> None:
    assert rollout_pct({"other": "1"}) == 0


def test_load_absent_file_is_safe_default(tmp_path: Path) -> None:
    assert load_config(str(tmp_path / "missing.conf")) == EdgeConfig(rollout_pct=0)


def test_load_unreadable_path_is_safe_default(tmp_path: Path) -> None:
    # A directory cannot be read as a file, even by root (who ignores permission bits).
    assert load_config(str(tmp_path)) == EdgeConfig(rollout_pct=0)


def test_load_undecodable_file_is_safe_default(tmp_path: Path) -> None:
    path = tmp_path / "edge.conf"
    path.write_bytes(b"rollout_pct=50\n\xff\xfe\n")
    assert load_config(str(path)) == EdgeConfig(rollout_pct=0)


def test_load_reads_rollout_pct(tmp_path: Path) -> None:
    path = tmp_path / "edge.conf"
    path.write_text("# managed by ansible\nrollout_pct=42\n")
    assert load_config(str(path)) == EdgeConfig(rollout_pct=42)


def _replace(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def test_watcher_follows_atomic_replace_and_removal(tmp_path: Path) -> None:
    path = tmp_path / "edge.conf"
    watcher = ConfigWatcher(str(path))
    assert watcher.current().rollout_pct == 0
    _replace(path, "rollout_pct=10\n")
    assert watcher.current().rollout_pct == 10
    _replace(path, "rollout_pct=90\n")
    assert watcher.current().rollout_pct == 90
    path.unlink()
    assert watcher.current().rollout_pct == 0


def test_watcher_sees_in_place_rewrite_with_same_size_and_mtime(tmp_path: Path) -> None:
    path = tmp_path / "edge.conf"
    path.write_text("rollout_pct=10\n")
    watcher = ConfigWatcher(str(path), refresh_s=0.0)
    assert watcher.current().rollout_pct == 10
    st = path.stat()
    path.write_text("rollout_pct=20\n")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # same inode, size and mtime
    assert watcher.current().rollout_pct == 20


def test_watcher_does_not_reread_an_unchanged_file(tmp_path: Path) -> None:
    path = tmp_path / "edge.conf"
    path.write_text("rollout_pct=10\n")
    watcher = ConfigWatcher(str(path), refresh_s=3600.0)
    assert watcher.current().rollout_pct == 10
    st = path.stat()
    path.write_text("rollout_pct=20\n")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    # Signature unchanged and refresh not due: the cached value stands (proves the stat cache).
    assert watcher.current().rollout_pct == 10


def test_noise_knobs_are_read_and_bounded(tmp_path: Path) -> None:
    path = tmp_path / "edge.conf"
    path.write_text("rollout_pct=10\nnoise_errors=0.002\nnoise_latency=0.05\n")
    config = load_config(str(path))
    assert (config.rollout_pct, config.noise_errors, config.noise_latency) == (10, 0.002, 0.05)
    path.write_text("noise_errors=0.9\nnoise_latency=lots\n")  # out of range, not a number
    config = load_config(str(path))
    assert (config.noise_errors, config.noise_latency) == (0.0, 0.0)
