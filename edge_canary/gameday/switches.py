"""The levers a disturbance pulls: stopping and starting Prometheus, cutting a lab node (or this machine's
path to Prometheus) off the network and healing it. Each is a command; a failure is a RunError."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from edge_canary.gameday.errors import RunError


def run_command(argv: list[str], what: str, timeout: float = 120, env: dict[str, str] | None = None) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RunError(f"{what}: {' '.join(argv)} failed: {exc}") from None
    if done.returncode != 0 or "ERROR" in done.stdout:
        raise RunError(f"{what}: {' '.join(argv)} exited {done.returncode}: {(done.stdout + done.stderr).strip()}")


def prometheus_ready(prom_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{prom_url.rstrip('/')}/api/v1/query?query=vector(1)", timeout=3) as resp:
            return resp.status == 200
    except OSError:
        return False


@dataclass(frozen=True)
class PrometheusSwitch:
    """How to stop and start the Prometheus the watcher reads (the lab's supervisor program by default)."""

    stop_argv: list[str]
    start_argv: list[str]
    prom_url: str

    @classmethod
    def for_lab(cls, lab_dir: str, prom_url: str) -> PrometheusSwitch:
        conf = str(Path(lab_dir) / "supervisord.conf")
        return cls(["supervisorctl", "-c", conf, "stop", "lab-prometheus"],
                   ["supervisorctl", "-c", conf, "start", "lab-prometheus"], prom_url)

    def stop(self) -> None:
        run_command(self.stop_argv, "stopping Prometheus")

    def start(self, timeout: float = 120) -> None:
        run_command(self.start_argv, "starting Prometheus again")
        deadline = time.monotonic() + timeout
        while not prometheus_ready(self.prom_url):
            if time.monotonic() > deadline:
                raise RunError(f"Prometheus at {self.prom_url} does not answer {timeout:g} s after its start")
            time.sleep(1)


@dataclass(frozen=True)
class NetworkCut:
    """Cuts a hosts-mode lab node off the network and heals it (edge-canary lab-netns: its link goes down, then up),
    or this machine off from the lab's Prometheus (an nftables rule drops what is sent to it)."""

    lab_dir: str

    def _netns(self, *args: str) -> None:
        run_command([sys.executable, "-m", "edge_canary", "lab-netns", *args], " ".join(args),
                    env={**os.environ, "LAB_DIR": self.lab_dir})

    def cut(self, node: str) -> None:
        self._netns("cut", node)

    def heal(self, node: str) -> None:
        self._netns("heal", node)

    def cut_prometheus(self) -> None:
        self._netns("cut-prometheus")

    def heal_prometheus(self) -> None:
        self._netns("heal-prometheus")
