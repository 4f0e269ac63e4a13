"""Lab life cycle (issue 2): bad input refused with nothing started, 30 nodes on this machine, a second
lab-up changes nothing, recovery after a crash, and lab-down leaves no process behind.

Runs its own lab (own folder, ports moved up by 20000) so the shared test lab is not disturbed."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.lab import REPO, Lab, lab_processes
from tests.integration.conftest import TEST_LAB_PORTS, TEST_SLOT

LIFECYCLE_DIR = REPO / (f".lab-lifecycle-{TEST_SLOT}" if TEST_SLOT else ".lab-lifecycle")
PORTS = {name: str(port + 10000 + 100 * TEST_SLOT) for name, port in TEST_LAB_PORTS.items()}


@pytest.fixture
def fresh() -> Iterator[Lab]:
    lab = Lab(LIFECYCLE_DIR, {**PORTS, "LAB_TRAFFIC_RPS": "10"})
    lab.down()
    shutil.rmtree(LIFECYCLE_DIR, ignore_errors=True)
    try:
        yield lab
    finally:
        lab.down()
        shutil.rmtree(LIFECYCLE_DIR, ignore_errors=True)


def recap_changes(output: str) -> dict[str, int]:
    return {host: int(n) for host, n in re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", output, re.M)}


def assert_refused(lab: Lab, expected: str) -> None:
    result = lab.up()
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    assert lab_processes(LIFECYCLE_DIR) == []


@pytest.mark.parametrize(("nodes", "expected"), [("0", "LAB_NODES=0 is out of range"),
                                                 ("abc", "LAB_NODES='abc' is not a whole number"),
                                                 ("-2", "out of range")])
def test_bad_node_count_is_refused_before_anything_starts(fresh: Lab, nodes: str, expected: str) -> None:
    fresh.overrides["LAB_NODES"] = nodes
    assert_refused(fresh, expected)


def test_a_port_in_use_is_refused_before_anything_starts(fresh: Lab) -> None:
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", int(PORTS["LAB_PROM_PORT"])))
        squatter.listen()
        assert_refused(fresh, f"port 127.0.0.1:{PORTS['LAB_PROM_PORT']} (LAB_PROM_PORT) is already in use")


def test_a_lab_folder_too_deep_for_its_sockets_is_refused_before_anything_starts(tmp_path: Path) -> None:
    lab_dir = tmp_path / ("d" * 100) / ".lab"  # HAProxy's admin socket there would pass its 97 bytes
    result = Lab(lab_dir, PORTS).up()
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        f"lab-up: the lab folder {lab_dir} is too deep: its socket {lab_dir / 'supervisor.sock'} would be "
        f"{len(str(lab_dir / 'supervisor.sock'))} bytes, over the 107 a Unix socket path may have here; "
        "clone nearer the root, or set LAB_DIR to a shorter folder"]
    assert not lab_dir.exists() and lab_processes(lab_dir) == []


def test_thirty_nodes_come_up_and_serve(fresh: Lab) -> None:
    fresh.overrides["LAB_NODES"] = "30"
    first = fresh.up()
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr
    status = fresh.make("lab-status")
    assert status.returncode == 0, status.stdout
    assert status.stdout.count("RUNNING   v1") == 30
    assert len(fresh.server_stats()) == 30


def test_idempotent_crash_recovery_and_clean_down(fresh: Lab) -> None:
    fresh.overrides["LAB_NODES"] = "3"
    first = fresh.up()
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr
    # A fresh lab starts each process once, on the configuration this run wrote: no restart right after.
    assert "RUNNING HANDLER" not in first.stdout, first.stdout[-3000:]

    # A fourth node changes HAProxy's and Prometheus' configuration: both are restarted on it.
    fresh.overrides["LAB_NODES"] = "4"
    grown = fresh.up()
    assert grown.returncode == 0, grown.stdout[-3000:] + grown.stderr
    restarts = re.findall(r"^RUNNING HANDLER \[edge\.canary\.(\w+) : ", grown.stdout, re.M)
    assert restarts == ["lab_haproxy", "lab_prometheus"], grown.stdout[-3000:]
    assert len(fresh.server_stats()) == 4

    # A second run changes nothing, and later commands find the 4 nodes without LAB_NODES.
    del fresh.overrides["LAB_NODES"]
    second = fresh.up()
    assert second.returncode == 0, second.stdout[-3000:]
    changes = recap_changes(second.stdout)
    assert len(changes) == 5 and set(changes.values()) == {0}, changes

    # Crash: supervisord killed outright, its children orphaned, pid file and socket left behind.
    pid = int((LIFECYCLE_DIR / "supervisord.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    fresh.wait_until(lambda: not Path(f"/proc/{pid}").exists(), 10, "supervisord gone")
    assert lab_processes(LIFECYCLE_DIR), "the orphans this test relies on are missing"
    # And a program file supervisord refuses, as an older lab-up (or a failed one) may leave: rewritten, not read.
    (LIFECYCLE_DIR / "supervisor.d" / "edge-1.conf").write_text("[program:edge-1]\ncommand=sleep 1\n"
                                                                 "stdout_logfile=/tmp/100%/edge-1.log\n")
    recovered = fresh.up()
    assert recovered.returncode == 0, recovered.stdout[-3000:] + recovered.stderr
    assert "leftover lab process" in recovered.stdout
    assert fresh.make("lab-status").returncode == 0

    down = fresh.down()
    assert down.returncode == 0, down.stderr
    assert lab_processes(LIFECYCLE_DIR) == []
    for port in (int(p) for p in PORTS.values()):
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", port))  # free again
