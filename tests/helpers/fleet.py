"""Put the test lab's fleet back in its starting state between tests, by hand (no tool under test):
every node on the given artifact with .previous the same, no release record, rollout_pct=0, every
node READY and UP on the load balancer, no lock held."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import urllib.request
from pathlib import Path

from tests.helpers.lab import Lab


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def reset_fleet(lab: Lab, artifact: Path) -> None:
    wanted = sha256(artifact)
    for node in lab.settings.node_names():
        home = lab.node_dir(node)
        for leftover in home.glob("edge.*"):
            if leftover.name not in ("edge.conf",):
                leftover.unlink()
        for name in ("release.json",):
            (home / name).unlink(missing_ok=True)
        shutil.rmtree(home / ".staging", ignore_errors=True)
        (home / "edge.conf").write_text("rollout_pct=0\n")
        shutil.copy2(artifact, home / "edge.previous")
        os.chmod(home / "edge.previous", 0o755)
        current = home / "edge"
        if not current.exists() or sha256(current) != wanted or not _serving(lab, node, wanted, artifact):
            lab.install(node, artifact)
        lab.haproxy(f"set server edge/{node} state ready", lab.lb_of(node))
    for lock in (lab.lab_dir / "control").glob("*.lock"):
        lock.unlink()
    lab.wait_until(lambda: all(row["status"] == "UP" for row in lab.server_stats().values()), 60,
                   "every node UP in HAProxy")


def _serving(lab: Lab, node: str, wanted: str, artifact: Path) -> bool:
    try:
        version = lab.node_version(node)["version"]
    except OSError:
        return False
    return bool(version) and artifact.name.endswith(version)


def fleet_versions(lab: Lab) -> dict[str, str]:
    return {node: lab.node_version(node)["version"] for node in lab.settings.node_names()}


def install_fleet(lab: Lab, artifact: Path, previous: Path | None = None,
                  config: str = "rollout_pct=0\n") -> None:
    """Every node on `artifact` (restarted, by hand), .previous = `previous` (None: no .previous),
    no release record, the given config and no config .previous; waits until each serves it."""
    version = artifact.name.removeprefix("edge-")
    for node in lab.settings.node_names():
        home = lab.node_dir(node)
        for leftover in home.glob("edge.*"):
            if leftover.name != "edge.conf":
                leftover.unlink()
        (home / "release.json").unlink(missing_ok=True)
        if previous is not None:
            shutil.copy2(previous, home / "edge.previous")
            os.chmod(home / "edge.previous", 0o755)
        lab.install(node, artifact, config=config)
    lab.wait_until(lambda: all(_serves(lab, node, version) for node in lab.settings.node_names()),
                   60, f"every node serving {version}")
    lab.wait_until(lambda: all(row["status"] == "UP" for row in lab.server_stats().values()), 60,
                   "every node UP in HAProxy")


def _serves(lab: Lab, node: str, version: str) -> bool:
    try:
        return bool(lab.node_version(node)["version"] == version)
    except OSError:
        return False


def node_files(lab: Lab) -> dict[str, dict[str, str]]:
    """Per node, the sha256 of every file in its folder (staging excluded): 'nothing changed' checks."""
    files = {}
    for node in lab.settings.node_names():
        home = lab.node_dir(node)
        files[node] = {p.name: sha256(p) for p in sorted(home.iterdir()) if p.is_file()}
    return files


def node_pids(lab: Lab) -> dict[str, int]:
    """The pid each node's edge process reports: unchanged means not restarted. A running node may take
    more than the usual 5 s to answer on a loaded test machine; that is not what these checks test."""
    return {node: int(lab.node_version(node, timeout=30)["pid"]) for node in lab.settings.node_names()}


def rollout_in_force(lab: Lab) -> dict[str, int | None]:
    """The rollout_pct each node's running process has in force (its edge_config_rollout_pct gauge)."""
    found: dict[str, int | None] = {}
    for node in lab.settings.node_names():
        url = lab.node_url(node, "/metrics")
        with urllib.request.urlopen(url, timeout=5) as resp:
            text = resp.read().decode()
        match = re.search(r"(?m)^edge_config_rollout_pct (\d+)$", text)
        found[node] = int(match.group(1)) if match else None
    return found


def config_keys(lab: Lab) -> dict[str, dict[str, str]]:
    """Each node's config file as keys."""
    keys = {}
    for node in lab.settings.node_names():
        text = (lab.node_dir(node) / "edge.conf").read_text()
        keys[node] = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    return keys
