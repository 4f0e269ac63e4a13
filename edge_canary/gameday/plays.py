"""Running the real tools for a drill: playbooks (output time-stamped line by line, each run's lock released
and record folder noted), the load generator, and the game-day lock."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_canary.gameday.context import Context
from edge_canary.gameday.errors import RunError
from edge_canary.gameday.report import DrillResult
from edge_canary.ops.inputs import write_extra_vars
from edge_canary.procgroup import stop_group

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# A request with no answer after this long counts as failed. Generous: a slow answer is the SLO's business
# (the watcher's p95), a missing one is a failure.
ANSWER_TIMEOUT_S = 10.0


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
    # The tools' extra-vars file, every string !unsafe: ansible-core trusts a JSON one and templates it, and
    # paths here come from REPORT_DIR and ARTIFACTS_DIR as the operator typed them.
    vars_file = log_path.with_name(f"{log_path.stem}.vars.yml")
    write_extra_vars(vars_file, extra)
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




# --- the drill's plays --------------------------------------------------------------------------


@dataclass
class PlayRunner:
    """The plays of one drill: each on the timeline, its lock released however it ended, its record folder
    (announced by the play) kept for the report and the cleanup."""

    ctx: Context
    result: DrillResult
    folder: Path
    say: Callable[[str], None]
    changed: Callable[[], None]  # a play starts: the fleet as last read may no longer be
    plays: list[Play] = field(default_factory=list)
    run_dirs: list[Path] = field(default_factory=list)

    def _play(self, label: str, playbook_file: str, extra: dict[str, object]) -> Play:
        play = playbook(label, playbook_file, self.ctx.options.inventory, extra, self.ctx.env,
                        self.folder / f"{label}.log")
        self.plays.append(play)
        self.changed()
        return play

    def _wait(self, play: Play, timeout: float, lock_id: str) -> int:
        try:
            return play.wait(timeout)
        finally:
            # As make deploy-canary does: a play that stopped early does not release its deploy lock itself.
            edge_lock(self.ctx.fleet.control.state_dir, "release", "deploy", "--id", lock_id)

    def _announced(self, announce: Path) -> Path | None:
        run_dir = Path(announce.read_text().strip()) if announce.exists() else None
        if run_dir is not None:
            self.run_dirs.append(run_dir)
            self.result.tool_records.append(str(run_dir))
        return run_dir

    def deploy(self, label: str, artifact_path: Path, canary: str, window: float,
               watch_settings: dict[str, Any] | None = None,
               during: Callable[[Path, Play], None] | None = None) -> tuple[int, Path | None, Play]:
        """deploy-canary.yml; `during(announce file, play)` runs beside it in a thread (the disturbance)."""
        deploy_id = f"{self.result.drill_id}-{label}"
        announce = self.folder / f"{label}.run-dir"
        extra: dict[str, object] = {
            "deploy_id": deploy_id, "deploy_announce_file": str(announce), "deploy_artifact": str(artifact_path),
            "deploy_canary_node": canary, "sli_window": f"{window:g}", "sli_probe_interval": f"{self.ctx.interval:g}",
            "force_lock": True,  # the drill's own deploy, under the game-day lock it holds (logged in locks.log)
            "force_migrate": False, "edge_service_health_timeout": int(self.ctx.options.health_timeout),
        }
        if watch_settings:  # on top of the inventory's own watcher settings, not instead of them
            extra["sli_watch_settings"] = {**self.ctx.fleet.control.watch_settings, **watch_settings}
        play = self._play(label, "deploy-canary.yml", extra)
        self.result.event(f"{label} started")
        self.say(f"{label}: {artifact_path.name} with {canary} as the canary, {window:g} s window "
                 f"(log {play.log_path})")
        play.start()
        helper = None
        if during is not None:
            helper = threading.Thread(target=during, args=(announce, play), daemon=True)
            helper.start()
        code = self._wait(play, window + self.ctx.options.play_timeout, deploy_id)
        if helper is not None:
            helper.join(120)
        run_dir = self._announced(announce)
        self.result.event(f"{label} ended (exit {code})", at=play.ended_at)
        return code, run_dir, play

    def rollback(self, label: str, nodes: str, rollback_binary: Path | None = None) -> int:
        lock_id = f"{self.result.drill_id}-{label}"
        extra: dict[str, object] = {"rollback_nodes": nodes, "force_lock": True, "edge_canary_lock_id": lock_id}
        if rollback_binary is not None:
            extra["rollback_binary"] = str(rollback_binary)
        play = self._play(label, "rollback.yml", extra)
        self.result.event(f"{label} started (NODES={nodes})")
        self.say(f"{label}: rollback of {nodes} (log {play.log_path})")
        play.start()
        code = self._wait(play, self.ctx.options.play_timeout, lock_id)
        self.result.event(f"{label} ended (exit {code})", at=play.ended_at)
        return code

    def rollout(self, label: str, stages: str, hold: float) -> tuple[int, Path | None, Play]:
        rollout_id = f"{self.result.drill_id}-{label}"
        announce = self.folder / f"{label}.run-dir"
        extra: dict[str, object] = {"rollout_id": rollout_id, "rollout_announce_file": str(announce),
                                    "rollout_stages": stages, "rollout_hold": str(int(hold)),
                                    "force_lock": True}  # past the drill's own game-day lock, logged
        play = self._play(label, "rollout.yml", extra)
        self.result.event(f"{label} started (STAGES={stages}, {hold:g} s each)")
        self.say(f"{label}: STAGES=\"{stages}\" held {hold:g} s each (log {play.log_path})")
        play.start()
        code = self._wait(play, hold * len(stages.split()) + self.ctx.options.play_timeout, rollout_id)
        run_dir = self._announced(announce)
        self.result.event(f"{label} ended (exit {code})", at=play.ended_at)
        return code, run_dir, play
