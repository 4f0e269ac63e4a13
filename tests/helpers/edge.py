"""Build the sample edge binary and run it on a free port, for any test that needs a real node."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .procs import free_port, running, wait_http

BUILD_ARTIFACT = [sys.executable, "-m", "edge_canary", "build-artifact"]


def build_artifact(out: Path, version: str, fault: str | None = None) -> Path:
    """Run edge-canary build-artifact; raises CalledProcessError (with its output) on failure."""
    argv = [*BUILD_ARTIFACT, "--version", version, "--out", str(out)]
    if fault is not None:
        argv += ["--fault", fault]
    subprocess.run(argv, check=True, capture_output=True, text=True, timeout=60)
    return out


@dataclass(frozen=True)
class EdgeNode:
    proc: subprocess.Popen[Any]
    port: int
    log_path: Path

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@contextlib.contextmanager
def serving_edge(
    artifact: Path,
    config: Path,
    log_path: Path,
    extra_args: Sequence[str] = (),
    ready_timeout: float = 30.0,
) -> Iterator[EdgeNode]:
    """Start the artifact (its own shebang: the system python3) and wait until it answers."""
    port = free_port()
    argv = [str(artifact), "--port", str(port), "--config", str(config), *extra_args]
    with running(argv, log_path=log_path) as proc:
        # Any answer counts as up: a health=fail build answers 503 by design.
        wait_http(f"http://127.0.0.1:{port}/health", ready_timeout, range(200, 600), proc)
        yield EdgeNode(proc, port, log_path)
