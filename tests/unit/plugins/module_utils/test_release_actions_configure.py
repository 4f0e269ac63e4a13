"""edge_release state=configured: config keys only, for rollout_pct moves.

The module against real files in a tmp dir (in-process through AnsibleModule, or as its own process
where the test hook kills it between the config write and the record write); the decision itself
(plan_configure) is tested in test_release_plan.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.edge.canary.plugins.modules import edge_release

from tests.helpers.paths import REPO

MODULE = "ansible_collections.edge.canary.plugins.modules.edge_release"
# The module run as its own process imports edge.canary from this checkout.
COLLECTIONS = REPO / "collections"
# --- the module on real files ------------------------------------------------------------------


@dataclass
class Run:
    rc: int
    result: dict[str, Any]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Node:
    def __init__(self, root: Path) -> None:
        self.install = root / "opt" / "edge"
        self.etc = root / "etc" / "edge"
        self.work = root / "work"
        for d in (self.install, self.etc, self.work):
            d.mkdir(parents=True)
        self.binary = self.install / "edge"
        self.previous = self.install / "edge.previous"
        self.config = self.etc / "edge.conf"
        self.config_previous = self.etc / "edge.conf.previous"
        self.record = self.install / "release.json"
        self.binary.write_bytes(b"#!/bin/sh\necho v2\n")
        self.previous.write_bytes(b"#!/bin/sh\necho v1\n")
        os.chmod(self.binary, 0o755)
        os.chmod(self.previous, 0o755)
        self.config.write_text("# edge\nrollout_pct=0\nfeature=on\n")
        self.config_previous.write_text("rollout_pct=0\n")
        self.record.write_text(json.dumps({"current": {"sha256": sha(self.binary), "version": "v2"},
                                           "action": "deploy", "serving_sha256": sha(self.binary)}))

    def params(self, config: Any, **extra: Any) -> dict[str, Any]:
        return {"state": "configured", "install_dir": str(self.install),
                "config_path": str(self.config), "config": config, **extra}

    def run(self, config: Any, check: bool = False, **extra: Any) -> Run:
        out = io.StringIO()
        code: Any = 0
        with patch_module_args({**self.params(config, **extra), "_ansible_check_mode": check}), \
                contextlib.redirect_stdout(out):
            try:
                edge_release.main()
            except SystemExit as exc:
                code = exc.code
        return Run(int(code or 0), json.loads(out.getvalue()))

    def run_killed_after(self, step: str, config: Any) -> int:
        args = self.work / "args.json"
        args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": self.params(config)}))
        env = {**os.environ, "EDGE_RELEASE_TEST_KILL_AFTER": step, "PYTHONPATH": str(COLLECTIONS)}
        return subprocess.run([sys.executable, "-m", MODULE, str(args)], env=env,
                              capture_output=True, timeout=120).returncode

    def files(self) -> dict[str, bytes]:
        return {str(p.relative_to(self.install.parents[1])): p.read_bytes()
                for p in sorted(self.install.parents[1].rglob("*"))
                if p.is_file() and self.work not in p.parents}


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return Node(tmp_path)


def test_configured_writes_only_the_config_and_the_record(node: Node) -> None:
    before = node.files()
    inode = node.binary.stat().st_ino
    run = node.run({"rollout_pct": 10}, deploy_id="rollout-1")
    assert run.rc == 0 and run.result["changed"] and run.result["action"] == "configure"
    assert node.config.read_text() == "# edge\nrollout_pct=10\nfeature=on\n"
    after = node.files()
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {"etc/edge/edge.conf", "opt/edge/release.json"}
    assert node.binary.stat().st_ino == inode  # not even rewritten
    record = json.loads(node.record.read_text())
    assert record["config"] == {"rollout_pct": "10", "feature": "on"}
    assert record["config_change"]["set"] == {"rollout_pct": "10"}
    assert record["config_change"]["before"] == {"rollout_pct": "0"}
    assert record["config_change"]["deploy_id"] == "rollout-1"
    # The binary's release and what other tools wrote are kept.
    assert record["action"] == "deploy" and record["serving_sha256"] == sha(node.binary)
    assert run.result["config"] == {"before": {"rollout_pct": "0", "feature": "on"},
                                    "after": {"rollout_pct": "10", "feature": "on"}}


def test_configured_is_an_atomic_rename_not_an_in_place_write(node: Node) -> None:
    inode = node.config.stat().st_ino
    node.run({"rollout_pct": 50})
    assert node.config.stat().st_ino != inode
    assert not [p for p in node.etc.iterdir() if ".edge-release-tmp." in p.name]


def test_configured_twice_changes_nothing_the_second_time(node: Node) -> None:
    node.run("rollout_pct=20")
    files = node.files()
    run = node.run("rollout_pct=20")
    assert run.rc == 0 and not run.result["changed"] and run.result["action"] == "none"
    assert node.files() == files


def test_configured_in_check_mode_reports_the_change_and_writes_nothing(node: Node) -> None:
    files = node.files()
    run = node.run({"rollout_pct": 100}, check=True)
    assert run.rc == 0 and run.result["changed"]
    assert run.result["msg"].startswith("check mode, nothing changed")
    assert "rollout_pct=100" in run.result["diff"]["after"]
    assert node.files() == files


def test_configured_refused_on_a_half_pushed_node_changes_nothing(node: Node) -> None:
    record = json.loads(node.record.read_text())
    record["pending"] = {"target_sha256": "2" * 64, "from_sha256": "1" * 64}
    node.record.write_text(json.dumps(record))
    files = node.files()
    run = node.run({"rollout_pct": 10})
    assert run.rc == 1 and "interrupted push" in run.result["msg"]
    assert node.files() == files


def test_configured_killed_between_config_and_record_is_completed_by_a_rerun(node: Node) -> None:
    assert node.run_killed_after("config", {"rollout_pct": 30}) != 0
    assert "rollout_pct=30" in node.config.read_text()
    assert "config" not in json.loads(node.record.read_text())
    run = node.run({"rollout_pct": 30})
    assert run.rc == 0 and run.result["changed"]
    assert json.loads(node.record.read_text())["config"]["rollout_pct"] == "30"


def test_configured_with_a_bad_key_is_refused(node: Node) -> None:
    files = node.files()
    run = node.run({"rollout pct; rm": 1})
    assert run.rc == 1 and "not a plain key" in run.result["msg"]
    assert node.files() == files
