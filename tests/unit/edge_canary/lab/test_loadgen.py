"""edge-canary loadgen refuses bad arguments and non-loopback targets: one line, exit 2, no files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.procs import free_port

LOADGEN = [sys.executable, "-m", "edge_canary", "loadgen"]


def loadgen(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LOADGEN, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://10.1.2.3:8080/",
        "http://192.168.1.10/",
        "http://example.com/",
        "http://localhost.example.com/",
        "http://[::2]:80/",
        "http://0.0.0.0:8080/",
        "http://[::ffff:10.0.0.1]/",
    ],
)
def test_non_loopback_targets_are_refused(url: str, tmp_path: Path) -> None:
    done = loadgen("--url", url, "--rps", "1", "--duration", "1", "--out", "o.jsonl", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("loadgen: refusing target") and done.stderr.count("\n") == 1
    assert done.stdout == ""
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--url", "https://127.0.0.1/"], "must be an http:// URL"),
        (["--url", "127.0.0.1:80"], "must be an http:// URL"),
        (["--url", "http://127.0.0.1:99999/"], "invalid port"),
        (["--rps", "0"], "--rps 0 is out of range"),
        (["--rps", "-5"], "--rps -5 is out of range"),
        (["--rps", "2001"], "--rps 2001 is out of range"),
        (["--rps", "nan"], "--rps nan is out of range"),
        (["--rps", "fast"], "invalid float value"),
        (["--duration", "0"], "--duration 0 is out of range"),
        (["--duration", "604801"], "--duration 604801 is out of range"),
        (["--clients", "0"], "--clients 0 is out of range"),
        (["--concurrency", "0"], "--concurrency 0 is out of range"),
        (["--timeout", "0"], "--timeout 0 is out of range"),
        (["--out", "missing/dir/o.jsonl"], "its directory does not exist"),
        (["--summary-json", "missing/s.json"], "its directory does not exist"),
        (["--bogus"], "unrecognized arguments"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(
    args: list[str], message: str, tmp_path: Path
) -> None:
    base = {"--url": "http://127.0.0.1:9/", "--rps": "1", "--duration": "1"}
    argv: list[str] = []
    for key, value in base.items():
        if key not in args:
            argv += [key, value]
    done = loadgen(*argv, *args, cwd=tmp_path)
    assert done.returncode == 2
    assert message in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert done.stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_missing_required_arguments(tmp_path: Path) -> None:
    done = loadgen("--rps", "1", cwd=tmp_path)
    assert done.returncode == 2
    assert "--url" in done.stderr and done.stderr.count("\n") == 1


@pytest.mark.parametrize("host", ["127.0.0.1", "127.3.4.5", "localhost", "[::1]"])
def test_loopback_targets_are_accepted(host: str, tmp_path: Path) -> None:
    # Nothing listens on a just-freed port: the run happens and every request fails to connect.
    url = f"http://{host}:{free_port()}/"
    done = loadgen("--url", url, "--rps", "20", "--duration", "0.2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("loadgen: sent=4 ok=0 failed=4 ")
