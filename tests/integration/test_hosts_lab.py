"""The hosts-mode lab (issue 9): each edge node its own network namespace, address and sshd, reached over
real SSH with the lab's key and known_hosts only. The deploy, revert, rollback and status cases run in
this mode through @BOTH_MODES in their own modules; lab-down leaving nothing is checked when the
session's hosts lab is taken down (conftest.hosts_lab)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers.lab import REPO, Lab
from tests.integration.test_lab_lifecycle import recap_changes


def ssh(lab: Lab, address: str, *options: str) -> subprocess.CompletedProcess[str]:
    keys = lab.lab_dir / "ssh"
    return subprocess.run(["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "IdentitiesOnly=yes",
                           "-i", str(keys / "id_ed25519"), *options, f"root@{address}", "ip -4 -o route"],
                          capture_output=True, text=True, timeout=30)


def test_second_lab_up_changes_nothing(hosts_lab: Lab) -> None:
    again = hosts_lab.up()
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr
    changes = recap_changes(again.stdout)
    assert set(changes) == {"localhost", "edge-1", "edge-2", "edge-3"} and set(changes.values()) == {0}, changes


def test_nodes_are_reached_over_ssh_with_the_lab_key_and_known_hosts_only(hosts_lab: Lab, tmp_path: Path) -> None:
    s = hosts_lab.settings
    known_hosts = hosts_lab.lab_dir / "ssh" / "known_hosts"
    assert sorted(line.split()[0] for line in known_hosts.read_text().splitlines()) == sorted(s.node_addresses())
    for address in s.node_addresses():
        ok = ssh(hosts_lab, address, "-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes")
        assert ok.returncode == 0, ok.stderr
        # Inside the node's namespace: one route, to the lab's subnet only (nothing can leave the machine).
        routes = ok.stdout.splitlines()
        assert len(routes) == 1 and routes[0].startswith(f"{s.subnet} dev ") and f"src {address}" in routes[0], routes
    # An unknown host key is refused, never accepted.
    unknown = ssh(hosts_lab, s.node_addresses()[0], "-o", f"UserKnownHostsFile={tmp_path / 'empty'}",
                  "-o", "StrictHostKeyChecking=yes")
    assert unknown.returncode != 0 and "Host key verification failed" in unknown.stderr


def test_a_mode_switch_of_an_existing_lab_is_refused_with_nothing_changed(hosts_lab: Lab) -> None:
    before = hosts_lab.settings
    switched = Lab(hosts_lab.lab_dir, {**hosts_lab.overrides, "LAB_MODE": "loopback"}).up()
    assert switched.returncode != 0
    assert switched.stderr.strip().splitlines() == [
        f"lab-up: the lab in {hosts_lab.lab_dir} was brought up in hosts mode, not loopback; make lab-clean "
        "first (it removes that lab's state) or use another LAB_DIR"]
    assert hosts_lab.settings == before
    assert hosts_lab.make("lab-status").returncode == 0


def test_partition_drills_are_refused_on_the_loopback_lab(lab: Lab, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(REPO / "scripts/gameday"), "--scenario", "partition-node",
                           "--report-dir", str(tmp_path)], env=lab.env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "gameday: partition-node cuts a node's network link, which only the hosts-mode lab allows: run it there "
        "(make lab-up LAB_MODE=hosts); nothing was changed"]
    assert not list(tmp_path.iterdir())
