"""edge-canary artifact-version (issue 15 item 8): the version is read from the build's embedded
metadata, never by running the artifact (preflight runs as root before anything vouches for it)."""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from edge_canary.ops.artifact_version import NoVersion, declared_version
from tests.helpers.edge import build_artifact


def test_the_built_artifacts_version_is_read_from_its_metadata(tmp_path: Path) -> None:
    artifact = build_artifact(tmp_path / "edge-1.4.2", "1.4.2", None)
    assert declared_version(artifact) == "1.4.2"


def test_an_executable_that_is_no_zipapp_is_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    script = tmp_path / "edge-evil"
    script.write_text(f"#!/bin/sh\ntouch {marker}\necho 9.9.9\n")
    script.chmod(0o755)
    result = subprocess.run([sys.executable, "-m", "edge_canary", "artifact-version", str(script)],
                            capture_output=True, text=True)
    assert result.returncode == 1 and "not an edge zipapp" in result.stderr
    assert result.stdout == "" and not marker.exists()


def zipapp(tmp_path: Path, member: str, data: bytes) -> Path:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(member, data)
    out = tmp_path / "edge"
    out.write_bytes(b"#!/usr/bin/env python3\n" + buffer.getvalue())
    return out


@pytest.mark.parametrize(("member", "data", "words"), [
    ("other.json", b"{}", "has no edge_app/build.json"),
    ("edge_app/build.json", b"not json", "has no version"),
    ("edge_app/build.json", b'{"version": "1.0 $(id)"}', "unusable version"),
    ("edge_app/build.json", b'{"version": 3}', "unusable version"),
])
def test_missing_or_hostile_metadata_declares_nothing(tmp_path: Path, member: str, data: bytes, words: str) -> None:
    with pytest.raises(NoVersion, match=words.replace("$", r"\$").replace("(", r"\(")):
        declared_version(zipapp(tmp_path, member, data))
