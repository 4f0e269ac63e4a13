"""What every drill of one game-day run shares: the options, the fleet as read at the start, the
settings that follow from both, and the releases a drill ships."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_canary.gameday.errors import NotReady
from edge_canary.gameday.fleet import Fleet, read_fleet, reread_local
from edge_canary.gameday.scenarios import Release
from edge_canary.gameday.switches import PrometheusSwitch


@dataclass(frozen=True)
class Options:
    inventory: str | None
    artifacts_dir: Path
    canary: str | None = None
    window: float | None = None  # default: the inventory's sli_window
    interval: float | None = None  # default: the inventory's sli_probe_interval
    max_staleness: float | None = None  # default: 2 x the probe interval (prometheus-outage)
    health_timeout: float = 20.0
    rps: float = 20.0
    loadgen_url: str | None = None
    max_collateral: int = 0
    background_errors: float = 0.0  # the staging fleet's own background 5xx share (BACKGROUND_ERRORS)
    rollout_stages: str = "10 50"
    prom_switch: PrometheusSwitch | None = None
    play_timeout: float = 1200.0


@dataclass
class Context:
    """What every drill of one game-day run shares."""

    options: Options
    env: dict[str, str]
    fleet: Fleet  # read once at the start, for the settings and addresses
    run_id: str
    folder: Path  # reports/<run id>/
    log: Any = print
    unused_reading: Fleet | None = None  # the reading taken at the start, still current for the first drill

    def read(self) -> Fleet:
        """The fleet's files now: from the nodes' own disks when they are all local (the lab), else through
        the inventory's connections."""
        fleet, self.unused_reading = self.unused_reading, None
        if fleet is not None:
            return fleet
        if self.fleet.local:
            return reread_local(self.fleet)
        return read_fleet(str(Path(sys.executable).parent / "ansible-playbook"), self.options.inventory, self.env)

    @property
    def window(self) -> float:
        return self.options.window or self.fleet.control.window

    @property
    def interval(self) -> float:
        return self.options.interval or self.fleet.control.interval

    @property
    def max_staleness(self) -> float:
        return self.options.max_staleness or 2 * self.interval

    @property
    def loadgen_url(self) -> str:
        if self.options.loadgen_url:
            return self.options.loadgen_url
        if self.fleet.control.lab_haproxy_port:
            return f"http://127.0.0.1:{self.fleet.control.lab_haproxy_port}/"
        raise NotReady("no URL to send the drill's load to: set LOADGEN_URL=http://127.0.0.1:PORT/ (a loopback "
                         "address in front of the load balancer)")

    def canary(self) -> str:
        name = self.options.canary or self.fleet.nodes[0]
        if name not in self.fleet.nodes:
            raise NotReady(f"CANARY_NODE={name} is not an edge node of this inventory; choose one of "
                             f"{', '.join(self.fleet.nodes)}")
        return name


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def artifact(ctx: Context, release: Release, folder: Path) -> Path:
    """The release's binary from ARTIFACTS_DIR, or built (reproducibly) when it is not there."""
    path = ctx.options.artifacts_dir / release.file_name
    if path.is_file():
        return path
    built = folder / release.file_name
    argv = [sys.executable, "-m", "edge_canary", "build-artifact", "--version", release.version,
            "--out", str(built)]
    if release.fault:
        argv += ["--fault", release.fault]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise NotReady(f"could not build {release.file_name}: {done.stderr.strip()} (or run make artifacts)")
    return built


def artifact_version(path: Path) -> str:
    done = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=30)
    if done.returncode != 0 or not done.stdout.strip():
        raise NotReady(f"{path} --version did not answer; is it an edge binary?")
    return done.stdout.strip()

