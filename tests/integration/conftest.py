"""Session fixtures for the integration tests: one real lab (HAProxy, Prometheus, supervisord, edge
nodes, background traffic) brought up once in .lab-test and taken down at the end, and the standard
edge artifacts built once."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.helpers.edge import build_artifact
from tests.helpers.fleet import reset_fleet
from tests.helpers.lab import REPO, Lab, lab_processes, net_leftovers

# Several people (or CI and a developer) may run the suite on one machine: EDGE_CANARY_TEST_SLOT=N
# moves the test lab to its own folder and ports (N x 1000 above the defaults, staying below the
# kernel's ephemeral range). Each pytest-xdist worker (gw0, gw1, ...) takes the next slot up.
WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
TEST_SLOT = int(os.environ.get("EDGE_CANARY_TEST_SLOT", "0") or 0) + WORKER
TEST_LAB_DIR = REPO / (f".lab-test-{TEST_SLOT}" if TEST_SLOT else ".lab-test")
TEST_LAB_PORTS = {
    "LAB_HAPROXY_PORT": 18080, "LAB_ADMIN_TCP_PORT": 18099, "LAB_EXPORTER_PORT": 18404,
    "LAB_PROM_PORT": 19090, "LAB_EDGE_BASE_PORT": 18081,
}
# The hosts-mode lab (a network namespace and an sshd per node) runs beside the loopback one: its own folder,
# ports 500 above the slot's, and a subnet of the slot's own.
HOSTS_LAB_DIR = REPO / (f".lab-test-hosts-{TEST_SLOT}" if TEST_SLOT else ".lab-test-hosts")
HOSTS_LAB_SETTINGS = {**{name: str(port + 1000 * TEST_SLOT + 500) for name, port in TEST_LAB_PORTS.items()},
                      "LAB_MODE": "hosts", "LAB_SUBNET": f"10.213.{TEST_SLOT}.0/24"}

STANDARD_ARTIFACTS = {
    "v1": None,
    "v2": None,
    "v2-errors": "errors=0.2:502",
    "v2-slow": "latency=0.6",
    "v2-unhealthy": "health=fail",
    "v2-crash": "crash=start",
}


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("artifacts")
    return {version: build_artifact(out / f"edge-{version}", version, fault)
            for version, fault in STANDARD_ARTIFACTS.items()}


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    the_lab = Lab(TEST_LAB_DIR, {name: str(port + 1000 * TEST_SLOT) for name, port in TEST_LAB_PORTS.items()})
    the_lab.down()
    shutil.rmtree(TEST_LAB_DIR, ignore_errors=True)
    result = the_lab.up()
    if result.returncode != 0:
        raise RuntimeError(f"the test lab did not come up:\n{result.stdout[-4000:]}\n{result.stderr}")
    try:
        yield the_lab
    finally:
        the_lab.down()


def hosts_mode_unavailable() -> str | None:
    """Why this machine cannot run the hosts-mode lab, or None."""
    if os.geteuid() != 0:
        return "the hosts-mode lab makes network namespaces and runs sshd: it needs root"
    if not Path("/usr/sbin/sshd").exists():
        return "the hosts-mode lab needs Debian's openssh-server (make setup installs it)"
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"ip netns does not work here: {probe.stderr.strip()}"
    return None


@contextmanager
def hosts_lab_up(lab_dir: Path, settings: dict[str, str]) -> Iterator[Lab]:
    """A hosts-mode lab in lab_dir with these LAB_* settings, from scratch, taken down afterwards; skipped
    where hosts mode cannot run. Its down leaves nothing: no namespace, link or process of it."""
    reason = hosts_mode_unavailable()
    if reason:
        pytest.skip(reason)
    the_lab = Lab(lab_dir, dict(settings))
    the_lab.down()
    shutil.rmtree(lab_dir, ignore_errors=True)
    result = the_lab.up()
    if result.returncode != 0:
        the_lab.down()
        raise RuntimeError(f"the hosts-mode test lab did not come up:\n{result.stdout[-4000:]}\n{result.stderr}")
    prefix = the_lab.settings.link_prefix()
    try:
        yield the_lab
    finally:
        down = the_lab.down()
        # lab-down removes exactly what the lab made: no namespace, link or process of it is left.
        assert down.returncode == 0, down.stdout + down.stderr
        assert net_leftovers(prefix) == [] and lab_processes(lab_dir) == []


# Module scope: only test_hosts_lab.py uses it (one worker runs the whole file, --dist loadfile), and its
# nodes, HAProxy, Prometheus and traffic would otherwise load the machine for the rest of that worker's run.
@pytest.fixture(scope="module")
def hosts_lab() -> Iterator[Lab]:
    with hosts_lab_up(HOSTS_LAB_DIR, HOSTS_LAB_SETTINGS) as the_lab:
        yield the_lab


@pytest.fixture
def fleet(request: pytest.FixtureRequest, artifacts: dict[str, Path]) -> Iterator[Lab]:
    """The test lab's fleet on v1 (and put back there afterwards): the loopback lab, or the hosts-mode lab
    with @pytest.mark.parametrize("fleet", ["hosts_lab"], indirect=True)."""
    lab: Lab = request.getfixturevalue(getattr(request, "param", "lab"))
    reset_fleet(lab, artifacts["v1"])
    yield lab
    reset_fleet(lab, artifacts["v1"])


def lab_log_tails(lab: Lab, lines: int = 25) -> str:
    """The end of every log of the lab (HAProxy's says when it saw a node go down, and why)."""
    parts = []
    for log in sorted((lab.lab_dir / "logs").glob("*.log")):
        try:
            tail = log.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            continue
        parts.append(f"== {log.name}\n" + "\n".join(line[:300] for line in tail))
    return "\n".join(parts) or f"no logs in {lab.lab_dir / 'logs'}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed test that used a lab gets that lab's log tails in its report: a flaky failure on CI
    (a machine we cannot log into) then says what the lab saw."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when != "call" or not report.failed:
        return
    labs = {value.lab_dir: value for value in getattr(item, "funcargs", {}).values() if isinstance(value, Lab)}
    for lab in labs.values():
        report.sections.append((f"lab {lab.lab_dir.name}: log tails", lab_log_tails(lab)))
