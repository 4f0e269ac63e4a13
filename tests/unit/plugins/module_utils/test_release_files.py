"""release_files: atomic replacement, temp clean-up and the release record's reading, on a tmp dir."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest
from ansible_collections.edge.canary.plugins.module_utils.release_files import (
    TMP_MARK,
    atomic_copy,
    atomic_write_text,
    file_state,
    read_record,
    remove_stale_temps,
    write_record,
)
from ansible_collections.edge.canary.plugins.module_utils.release_plan import FileState, ReleaseError


def test_atomic_write_replaces_the_inode_and_keeps_the_mode_of_the_file_it_replaces(tmp_path: Path) -> None:
    dest = tmp_path / "edge.conf"
    dest.write_text("a=1\n")
    dest.chmod(0o640)
    inode = dest.stat().st_ino
    atomic_write_text(str(dest), "a=2\n", file_state(str(dest)), 0o644)
    assert dest.read_text() == "a=2\n" and dest.stat().st_ino != inode
    assert stat.S_IMODE(dest.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["edge.conf"]


def test_a_new_file_gets_the_default_mode(tmp_path: Path) -> None:
    src, dest = tmp_path / "staged", tmp_path / "edge"
    src.write_bytes(b"#!/bin/sh\n")
    digest = atomic_copy(str(src), str(dest), FileState(), 0o755)
    assert digest == hashlib.sha256(b"#!/bin/sh\n").hexdigest() == file_state(str(dest)).sha256
    assert stat.S_IMODE(dest.stat().st_mode) == 0o755


def test_stale_temps_are_removed_and_nothing_else(tmp_path: Path) -> None:
    (tmp_path / f".edge{TMP_MARK}abc").write_text("half")
    (tmp_path / "edge").write_text("keep")
    remove_stale_temps(str(tmp_path))
    remove_stale_temps(str(tmp_path / "missing"))
    assert os.listdir(tmp_path) == ["edge"]


def test_record_round_trip_and_a_missing_or_empty_record_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "release.json"
    assert read_record(str(path)) == {}
    path.write_text("  \n")
    assert read_record(str(path)) == {}
    write_record(str(path), {"current": {"sha256": "0" * 64}})
    assert read_record(str(path)) == {"current": {"sha256": "0" * 64}}


@pytest.mark.parametrize(("text", "words"), [("{", "not valid JSON"), ("[]", "not a JSON object")])
def test_a_broken_record_is_refused_naming_it(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "release.json"
    path.write_text(text)
    with pytest.raises(ReleaseError, match=words):
        read_record(str(path))


def test_a_directory_where_a_file_belongs_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ReleaseError, match="not a regular file"):
        file_state(str(tmp_path))
