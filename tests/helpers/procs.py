"""Start real processes in tests and always clean them up.

    port = free_port()
    with running([artifact, "--port", str(port), "--config", cfg], log_path=tmp_path / "edge.log"):
        wait_http(f"http://127.0.0.1:{port}/health", timeout=30)
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Container, Iterator, Sequence
from pathlib import Path
from typing import Any

from edge_canary.procgroup import stop_group

# Not port 0: the kernel hands those out from its ephemeral range (32768-60999), the range every outgoing
# connection on the machine (loadgen, scrapes, Ansible) also draws from, so one released after bind(0) can be
# taken by a connection before the test's server binds it ("Address already in use"). These ports lie below
# that range and below the test labs' (18000 and up, see tests/integration/conftest.py).
TEST_PORTS = range(10000, 18000)


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing is bound to, from TEST_PORTS: no outgoing connection can take it before it is used."""
    for port in random.sample(TEST_PORTS, 100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {TEST_PORTS.start}-{TEST_PORTS.stop - 1} on {host}")


def processes() -> dict[int, tuple[int, str]]:
    """Every live process: pid -> (parent pid, command line)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            args = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
        found[int(entry.name)] = (parent, args)
    return found


def http_status(url: str, timeout: float = 5.0) -> int:
    """The HTTP status of a GET (error statuses included); raises OSError if nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def wait_http(
    url: str,
    timeout: float = 30.0,
    statuses: Container[int] = range(200, 300),
    proc: subprocess.Popen[Any] | None = None,
) -> int:
    """Poll ``url`` until it answers with one of ``statuses``; returns that status.

    Raises TimeoutError (with the last answer or error) when the deadline passes, and
    RuntimeError at once if ``proc`` is given and exits first.
    """
    deadline = time.monotonic() + timeout
    last = "no attempt"
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            status = http_status(url, timeout=min(5.0, max(0.5, deadline - time.monotonic())))
            if status in statuses:
                return status
            last = f"HTTP {status}"
        except OSError as exc:
            last = str(exc)
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{url} not ready after {timeout:g}s (last: {last})")
        time.sleep(0.1)


def stop(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
    """Signal the process group, wait up to ``timeout``, then SIGKILL it; returns the exit code."""
    return stop_group(proc, sig, timeout)


@contextlib.contextmanager
def running(
    argv: Sequence[str | os.PathLike[str]],
    *,
    log_path: str | os.PathLike[str] | None = None,
    stop_timeout: float = 10.0,
    **popen_kwargs: Any,
) -> Iterator[subprocess.Popen[Any]]:
    """Run ``argv`` in its own process group; on exit SIGTERM then SIGKILL the whole group.

    With ``log_path``, stdout and stderr go to that file (read it for diagnostics); otherwise
    pass the usual Popen keyword arguments.
    """
    log = open(log_path, "ab") if log_path is not None else None  # noqa: SIM115
    if log is not None:
        popen_kwargs.setdefault("stdout", log)
        popen_kwargs.setdefault("stderr", subprocess.STDOUT)
    try:
        args = [os.fspath(a) for a in argv]
        proc = subprocess.Popen(args, start_new_session=True, **popen_kwargs)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                stop(proc, signal.SIGTERM, stop_timeout)
            # Children the process left behind in its group go too.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if log is not None:
            log.close()


def read_text(path: str | os.PathLike[str]) -> str:
    """A log file's text, or "" if it does not exist (handy in assertion messages)."""
    p = Path(path)
    return p.read_text(errors="replace") if p.exists() else ""
