"""Put the test lab's fleet back in its starting state between tests, by hand (no tool under test):
every node on the given artifact with .previous the same, no release record, rollout_pct=0, every
node READY and UP on the load balancer, no lock held."""

from __future__ import annotations

import hashlib
import os
import shutil
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
        lab.haproxy(f"set server edge/{node} state ready")
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
