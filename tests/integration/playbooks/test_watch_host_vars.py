"""edge_canary_watch_host, which every role reads to place the watcher, the lock and the records: the first
host of the inventory group edge_canary_watch, else localhost (the control host, as before the group).
Rendered by Ansible itself (an ad-hoc debug), for the root inventories with and without the group."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.lab import REPO, lab_env

ANSIBLE = str(Path(sys.executable).parent / "ansible")


def watch_host(*inventories: str) -> str:
    argv = [ANSIBLE, "localhost", "-m", "ansible.builtin.debug", "-a", "msg=<{{ edge_canary_watch_host }}>"]
    for inventory in inventories:
        argv += ["-i", inventory]
    done = subprocess.run(argv, cwd=REPO, env=lab_env(REPO / ".lab-inventory-test"), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.split("<", 1)[1].split(">", 1)[0]


@pytest.mark.parametrize("inventory", ["production.hosts.yml", "lab.hosts.py"])
def test_without_the_group_the_control_host_is_the_watch_host(inventory: str) -> None:
    assert watch_host(inventory) == "localhost"


def test_the_first_host_of_edge_canary_watch_is_the_watch_host(tmp_path: Path) -> None:
    extra = tmp_path / "watch.yml"
    extra.write_text("edge_canary_watch:\n  hosts:\n    watch-01.prod.example.internal:\n"
                     "    watch-02.prod.example.internal:\n")
    assert watch_host("production.hosts.yml", str(extra)) == "watch-01.prod.example.internal"
