"""Running the real tools for a drill: playbooks (output time-stamped line by line), the load
generator, the game-day lock, and the two disturbances (Prometheus stopped, watcher killed)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edge_canary.procgroup import stop_group

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# A request with no answer after this long counts as failed. Generous: a slow answer is the SLO's business
# (the watcher's p95), a missing one is a failure.
ANSWER_TIMEOUT_S = 10.0


class RunError(RuntimeError):
    """A tool could not be run as the drill needs; the message says what to do."""


@dataclass
class Play:
    """An ansible-playbook run in its own process group, its output kept with the time of each line."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    lines: list[tuple[float, str]] = field(default_factory=list)
    proc: subprocess.Popen[str] | None = None
    started_at: float = 0.0
    ended_at: float | None = None
    _reader: threading.Thread | None = None

    def start(self) -> Play:
        self.started_at = time.time()
        self.proc = subprocess.Popen(self.argv, env=self.env, cwd=REPO, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self._reader = threading.Thread(target=self._read, name=f"play-{self.name}", daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        with self.log_path.open("a") as log:
            log.write(f"$ {' '.join(self.argv)}\n")
            for line in self.proc.stdout:
                now = time.time()
                self.lines.append((now, line.rstrip("\n")))
                log.write(f"{time.strftime('%H:%M:%S', time.localtime(now))} {line}")
                log.flush()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise RunError(f"{self.name} took more than {timeout:g} s; stopped it (see {self.log_path})") from None
        if self._reader is not None:
            self._reader.join(10)
        self.ended_at = time.time()
        return code

    def stop(self) -> None:
        """SIGTERM the play's group (ansible stops cleanly), SIGKILL it if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        stop_group(self.proc)
        self.ended_at = time.time()

    def output(self) -> str:
        return "\n".join(line for _, line in self.lines)

    def first_line(self, needle: str, since: float = 0.0) -> float | None:
        return next((t for t, line in self.lines if t >= since and needle in line), None)


def playbook(name: str, playbook_file: str, inventory: str | None, extra: dict[str, object], env: dict[str, str],
             log_path: Path) -> Play:
    vars_file = log_path.with_name(f"{log_path.stem}.vars.json")
    vars_file.write_text(json.dumps(extra, indent=2) + "\n")
    argv = [str(BIN / "ansible-playbook"), str(REPO / "playbooks" / playbook_file), "-e", f"@{vars_file}"]
    if inventory:
        argv += ["-i", inventory]
    return Play(name, argv, {**env, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}, log_path)


@dataclass
class Loadgen:
    """edge-canary loadgen through the load balancer, one JSON line per request, until stopped."""

    url: str
    rps: float
    out: Path
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Loadgen:
        argv = [sys.executable, "-m", "edge_canary", "loadgen", "--url", self.url, "--rps", f"{self.rps:g}",
                "--duration", "86400", "--out", str(self.out), "--timeout", f"{ANSWER_TIMEOUT_S:g}"]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        time.sleep(1.0)
        if self.proc.poll() is not None:
            raise RunError(f"the load generator stopped at once: {self.log_path.read_text().strip()[-300:]}")
        return self

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        stop_group(self.proc)


# --- the locks --------------------------------------------------------------------------------


def edge_lock(state_dir: str, *args: str) -> subprocess.CompletedProcess[str]:
    """edge-canary lock; run as our child, so a lock it takes lives exactly as long as this drill."""
    return subprocess.run([sys.executable, "-m", "edge_canary", "lock", "--dir", state_dir, *args],
                          capture_output=True, text=True, timeout=60)


def take_gameday_lock(state_dir: str, drill_id: str) -> None:
    """The game-day lock, and no deploy running: from here on, new deploys are refused (unless forced)."""
    taken = edge_lock(state_dir, "acquire", "gameday", "--id", drill_id)
    if taken.returncode != 0:
        raise RunError(f"the game-day lock is held ({taken.stderr.strip().removeprefix('edge-lock: ')}); "
                       "one drill at a time")
    shown = edge_lock(state_dir, "show").stdout.splitlines()
    deploy = next((line.removeprefix("deploy: ") for line in shown if line.startswith("deploy: ")), "free")
    if deploy != "free" and not deploy.endswith("[stale]"):
        release_gameday_lock(state_dir, drill_id)
        raise RunError(f"a deploy, rollback or rollout is running ({deploy}); run the drill when it has finished")


def release_gameday_lock(state_dir: str, drill_id: str) -> None:
    edge_lock(state_dir, "release", "gameday", "--id", drill_id)


# --- the disturbances -------------------------------------------------------------------------


def wait_for(predicate: Callable[[], bool], timeout: float, stop: threading.Event, every: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        if stop.wait(every):
            return False
    return predicate()


def decision_records(run_dir: Path) -> list[dict[str, object]]:
    try:
        text = (run_dir / "decisions.jsonl").read_text()
    except OSError:
        return []
    records = []
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            records.append(json.loads(line))
    return records


def probes_logged(run_dir: Path) -> int:
    return sum(1 for r in decision_records(run_dir) if r.get("event") == "probe")


def watcher_decided(run_dir: Path) -> bool:
    """The watcher has logged its decision (a verdict, or the revert it starts on red)."""
    return any(r.get("event") in ("revert", "verdict") or r.get("decision") for r in decision_records(run_dir))


def watcher_pid(run_dir: Path) -> int | None:
    """The watcher's pid from its decision log, checked against its command line (pids get reused)."""
    start = next((r for r in decision_records(run_dir) if r.get("event") == "start"), None)
    if start is None or not isinstance(start.get("pid"), int):
        return None
    pid = int(start["pid"])  # type: ignore[call-overload]
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return pid if str(run_dir / "watcher.json").encode() in cmdline else None


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
