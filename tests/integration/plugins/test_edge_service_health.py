"""The edge_service_health module run by real Ansible against a stand-in node (real HTTP)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.health_node import HealthNode, health_node
from tests.helpers.paths import REPO

COLLECTIONS = REPO / "collections"  # edge.canary from this checkout: the link points back at the repository
ANSIBLE = Path(sys.executable).with_name("ansible")


@pytest.fixture
def node() -> Iterator[HealthNode]:
    with health_node() as server:
        yield server


def run(tmp_path: Path, *flags: str, **args: Any) -> tuple[int, dict[str, Any]]:
    proc = subprocess.run(
        [str(ANSIBLE), "localhost", "-m", "edge.canary.edge_service_health", "-a", json.dumps(args),
         "-e", json.dumps({"ansible_python_interpreter": sys.executable}), *flags],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
        env={**os.environ, "ANSIBLE_STDOUT_CALLBACK": "default", "ANSIBLE_CALLBACK_RESULT_FORMAT": "json",
             "ANSIBLE_LOCALHOST_WARNING": "false", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
             "ANSIBLE_NOCOLOR": "1", "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS)},
    )
    start = proc.stdout.index(" => ") + 4
    return proc.returncode, json.JSONDecoder().raw_decode(proc.stdout, start)[0]


def test_waits_for_health_polling_fast_then_checks_the_version(node: HealthNode, tmp_path: Path) -> None:
    node.healthy_at = time.monotonic() + 3  # Ansible's own start-up eats part of it
    rc, result = run(tmp_path, health_url=node.url("/health"), version_url=node.url("/version"),
                     expected_version="v2", timeout=30, interval=0.2)
    assert rc == 0, result
    assert result["status"] == 200 and result["version"] == "v2" and result["changed"] is False
    assert result["attempts"] == node.health_requests and result["waited"] < 30


def test_fails_within_the_timeout_naming_the_url(node: HealthNode, tmp_path: Path) -> None:
    node.healthy_at = time.monotonic() + 3600
    rc, result = run(tmp_path, health_url=node.url("/health"), timeout=1.5, interval=0.2)
    assert rc != 0
    assert f"did not answer 200 at {node.url('/health')} within 1.5 s (HTTP 503" in result["msg"]
    assert result["attempts"] >= 3 and result["waited"] < 5


def test_fails_when_the_node_serves_another_version(node: HealthNode, tmp_path: Path) -> None:
    node.version = "v1"
    rc, result = run(tmp_path, health_url=node.url("/health"), version_url=node.url("/version"),
                     expected_version="v2", timeout=5)
    assert rc != 0 and "serves v1" in result["msg"] and "not v2" in result["msg"]


def test_records_the_served_binary_once_healthy_in_the_same_run(node: HealthNode, tmp_path: Path) -> None:
    binary, record = tmp_path / "opt" / "edge", tmp_path / "opt" / "release.json"
    binary.parent.mkdir()
    binary.write_bytes(b"v2 binary")
    record.write_text(json.dumps({"good_sha256": "a" * 64}))
    served = hashlib.sha256(b"v2 binary").hexdigest()
    rc, result = run(tmp_path, health_url=node.url("/health"), version_url=node.url("/version"), expected_version="v2",
                     timeout=10, record_serving={"binary": str(binary), "record": str(record), "good": False})
    assert rc == 0, result
    assert json.loads(record.read_text())["serving_sha256"] == served
    assert json.loads(record.read_text())["good_sha256"] == "a" * 64  # a canary: good only once promoted
    assert result["changed"] is True and result["serving"]["action"] == "serving"

    rc, result = run(tmp_path, health_url=node.url("/health"), timeout=10,
                     record_serving={"binary": str(binary), "record": str(record)})
    assert rc == 0 and json.loads(record.read_text())["good_sha256"] == served, result


def test_records_nothing_when_the_check_fails_or_in_check_mode(node: HealthNode, tmp_path: Path) -> None:
    binary, record = tmp_path / "edge", tmp_path / "release.json"
    binary.write_bytes(b"v2 binary")
    node.version = "v1"
    rc, result = run(tmp_path, health_url=node.url("/health"), version_url=node.url("/version"), expected_version="v2",
                     timeout=5, record_serving={"binary": str(binary), "record": str(record)})
    assert rc != 0 and "not v2" in result["msg"] and not record.exists()

    rc, result = run(tmp_path, "--check", health_url=node.url("/health"),
                     record_serving={"binary": str(binary), "record": str(record)})
    assert rc == 0 and result["changed"] is True and not record.exists(), result
