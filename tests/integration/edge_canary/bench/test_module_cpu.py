"""The bench's module_cpu.sh as Ansible's Python for real module runs: each run works as usual and logs its CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from edge_canary.bench.lab import MODULE_CPU
from edge_canary.bench.stats import times_children_seconds
from tests.helpers.paths import REPO

ANSIBLE = Path(sys.executable).with_name("ansible")


def test_each_module_run_logs_its_cpu_and_keeps_its_result(tmp_path: Path) -> None:
    log = tmp_path / "module_cpu.txt"
    # The project's ansible.cfg, as under `make` and in the bench: it parses only script and YAML inventories.
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  hosts:\n    localhost:\n      ansible_connection: local\n")
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
           "EDGE_CANARY_MODULE_CPU": str(log), "EDGE_CANARY_MODULE_PYTHON": sys.executable}
    for args in (["-m", "ansible.builtin.ping"], ["-m", "ansible.builtin.command", "-a", "false"]):
        proc = subprocess.run([str(ANSIBLE), "localhost", "-i", str(inventory), *args,
                               "-e", json.dumps({"ansible_python_interpreter": str(MODULE_CPU)})],
                              capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
        assert ("SUCCESS" in proc.stdout) == (args[1] == "ansible.builtin.ping"), proc.stdout + proc.stderr
    lines = log.read_text().splitlines()
    assert len(lines) == 4, lines  # two runs, the failed one too: two lines of `times` each
    assert 0.05 < times_children_seconds(log.read_text()) < 30  # at least a Python start each
