"""Session fixtures for the integration tests: one real lab (HAProxy, Prometheus, supervisord, edge
nodes, background traffic) brought up once in .lab-test and taken down at the end, and the standard
edge artifacts built once."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.edge import build_artifact
from tests.helpers.lab import REPO, Lab

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
