"""`make demo`/`make test` set-up (issue 2): skip what is there, and without root say the exact apt-get."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.helpers.lab import REPO

BOOTSTRAP = REPO / "scripts" / "bootstrap.sh"


def test_second_run_skips_apt_and_pip(tmp_path: Path) -> None:
    spy = tmp_path / "bin"
    spy.mkdir()
    calls = tmp_path / "calls"
    for tool in ("apt-get", "pip"):
        (spy / tool).write_text(f"#!/bin/sh\necho {tool} \"$@\" >> {calls}\nexit 1\n")
        (spy / tool).chmod(0o755)
    env = {**os.environ, "PATH": f"{spy}:{os.environ['PATH']}"}
    result = subprocess.run(["bash", str(BOOTSTRAP)], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert not calls.exists(), calls.read_text()
    assert result.stdout == ""


def test_without_root_and_packages_it_prints_the_apt_get_command() -> None:
    env = {**os.environ, "EDGE_CANARY_DEB_PACKAGES": "haproxy edge-canary-no-such-package"}
    result = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                             "bash", str(BOOTSTRAP)], env=env, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "bootstrap: missing Debian packages; run: sudo apt-get update && sudo apt-get install -y "
        "--no-install-recommends edge-canary-no-such-package"]
