"""The bench's off-switch measurement: `make rollout PCT=0` as the on-call runs it (edge-canary rollout,
PCT=0 in the environment), timed until every node's running process shows rollout_pct=0."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from edge_canary.bench.lab import BenchError, LabHandle, children_cpu
from edge_canary.bench.report import Pct0Result
from edge_canary.lab.settings import REPO

_GAUGE = re.compile(r"(?m)^edge_config_rollout_pct (\d+)")


def in_force(url: str) -> int | None:
    try:
        with urllib.request.urlopen(f"{url}/metrics", timeout=1) as answer:
            found = _GAUGE.search(answer.read().decode())
    except OSError:
        return None
    return int(found.group(1)) if found else None


def set_by_hand(lab: LabHandle, pct: int, timeout: float = 30) -> None:
    """Every node's config file to rollout_pct=pct (atomic rename), then wait until each serves with it."""
    for node in lab.node_urls():
        conf = lab.lab_dir / "nodes" / node / "edge.conf"
        staging = conf.with_name(".edge.conf.bench")
        staging.write_text(f"rollout_pct={pct}\n")
        os.replace(staging, conf)
    deadline = time.time() + timeout
    while any(in_force(url) != pct for url in lab.node_urls().values()):
        if time.time() > deadline:
            raise BenchError(f"the nodes did not show rollout_pct={pct} within {timeout:g} s of a hand edit")
        time.sleep(0.1)


def off_switch(lab: LabHandle, run: int) -> Pct0Result:
    """From rollout_pct=40 everywhere: run the off switch, poll every node's gauge every 50 ms."""
    set_by_hand(lab, 40)
    urls = list(lab.node_urls().values())
    env = {**lab.env, "PCT": "0", "STAGES": "", "ROLLOUT_HOLD": "", "FORCE": ""}
    log = lab.log(f"pct0-{run}.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    cpu = children_cpu()
    started = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "edge_canary", "rollout"], cwd=REPO, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
        seen: float | None = None
        while proc.poll() is None or seen is None:
            if seen is None and all(in_force(url) == 0 for url in urls):
                seen = time.monotonic() - started
            if proc.poll() is not None and seen is None and time.monotonic() - started > 60:
                break
            time.sleep(0.05)
        wall = time.monotonic() - started
        code = proc.wait()
    return Pct0Result(run, code, seen, wall, children_cpu() - cpu)


def log_path(lab: LabHandle, run: int) -> Path:
    return lab.log(f"pct0-{run}.log")
