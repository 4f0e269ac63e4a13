"""docs/ARCHITECTURE.md stays the design the project points at: it names every `edge-canary`
subcommand and every watcher exit code, and nothing in the repository points outside it."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from edge_canary.cli import SUBCOMMANDS
from tests.helpers.paths import REPO
from watcher import EXIT_HOLD, EXIT_PROMOTE, EXIT_REVERT_FAILED, EXIT_REVERTED, EXIT_USAGE

ARCHITECTURE = REPO / "docs" / "ARCHITECTURE.md"


def test_names_every_subcommand() -> None:
    text = ARCHITECTURE.read_text()
    missing = [name for name in SUBCOMMANDS if f"`{name}`" not in text]
    assert not missing, f"docs/ARCHITECTURE.md does not name the subcommands {missing}"


def test_gives_the_watcher_exit_codes() -> None:
    lines = ARCHITECTURE.read_text().splitlines()
    row = next(line for line in lines if line.startswith("| watcher (`python -m watcher`"))
    for code, word in ((EXIT_PROMOTE, "promote"), (EXIT_REVERTED, "reverted"), (EXIT_HOLD, "hold"),
                       (EXIT_REVERT_FAILED, "revert"), (EXIT_USAGE, "usage")):
        assert re.search(rf"\b{code} {word}", row), f"watcher exit code {code} ({word}) is not in: {row}"


@pytest.mark.skipif(shutil.which("git") is None or not (REPO / ".git").exists(), reason="not a git checkout")
def test_nothing_points_outside_the_repository() -> None:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    # Spelled in pieces, so that this file is not a hit of its own search (nor of `git grep`).
    outside = re.compile("|".join(re.escape(text) for text in ("../" + "shared" + "/", "DESIGN" + ".md")))
    found = []
    for name in files.decode().split("\0"):
        path = REPO / name
        if not name or not path.is_file():
            continue
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue
        found += [f"{name}:{n}" for n, line in enumerate(text.splitlines(), 1) if outside.search(line)]
    assert not found, f"references outside the repository (use docs/ARCHITECTURE.md): {found}"
