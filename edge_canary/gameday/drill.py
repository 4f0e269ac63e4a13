"""One drill, start to end: check the fleet is on one known-good release, start the load, run the
real playbooks, disturb them when the scenario says so, read the fleet again, judge, clean up.

The judgement never takes the tool's word for the fleet's state: files are read on the nodes,
versions from each node's /version, rotation from every HAProxy admin socket, and failures from
the load generator's own lines. The tool's verdict is read too, but only to compare it with the
expected one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from edge_canary.gameday import checks as chk
from edge_canary.gameday.fleet import (
    Fleet,
    NodeFiles,
    Sample,
    Sampler,
    lb_states,
    read_fleet,
    reread_local,
    take_sample,
    write_samples,
)
from edge_canary.gameday.report import DrillResult, queries_for
from edge_canary.gameday.run import (
    Loadgen,
    NetworkCut,
    Play,
    PrometheusSwitch,
    RunError,
    decision_records,
    edge_lock,
    playbook,
    probes_logged,
    watcher_decided,
    watcher_pid,
)
from edge_canary.gameday.scenarios import (
    ACCEPTANCE,
    CANARY,
    CUT_CANARY,
    CUT_PEER,
    CUT_PROMETHEUS,
    DIED,
    KILL_WATCHER,
    PARTITION_GRACE_S,
    PARTITIONS,
    PROMOTE,
    ROLL_FAILED,
    ROLLOUT,
    STOP_PROMETHEUS,
    Release,
    Scenario,
    watch_window,
)

from watcher.promql import RenderedQueries

WARM_UP_S = 5.0  # load through the LB before the drill changes anything, which must all succeed


class DrillError(RuntimeError):
    """The drill cannot go on; the message says why and what to do."""


class NotReady(DrillError):
    """The drill cannot start: nothing was changed."""


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


def parse_ts(value: object) -> float | None:
    try:
        return datetime.fromisoformat(str(value)).timestamp()
    except ValueError:
        return None


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# --- preconditions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Baseline:
    """The fleet's last-known-good state when the drill starts."""

    files: dict[str, NodeFiles]
    sample: Sample
    version: str
    sha: str


def baseline(ctx: Context, release_sha: str | None) -> Baseline:
    """The fleet as the drill finds it, which must be one release, serving, in rotation, with a .previous."""
    fleet = ctx.read()
    sample = take_sample(fleet)
    shas = {n: f.binary.sha256 for n, f in fleet.files.items()}
    if len(set(shas.values())) != 1 or None in shas.values():
        listed = ", ".join(f"{n} {(s or 'missing')[:12]}" for n, s in shas.items())
        raise NotReady(f"the fleet is not on one release (sha256 {listed}): put it back on its last-known-good "
                         "first (make rollback NODES=...)")
    versions = set(sample.versions.values())
    if len(versions) != 1 or None in versions:
        raise NotReady(f"the nodes do not all answer the same /version ({sample.versions}): fix the fleet first")
    ready = chk.check_ready(sample.lbs, fleet.nodes)
    if not ready.ok:
        raise NotReady(f"not every node is in rotation ({ready.detail}): make rollback NODES=<node> puts one back")
    no_previous = [n for n, f in fleet.files.items() if not f.previous.exists]
    if no_previous:
        raise NotReady(f"{', '.join(no_previous)} has no .previous: a drill needs a last-known-good to revert to "
                         "(one normal deploy creates it)")
    sha = next(iter(shas.values()))
    assert sha is not None
    if release_sha is not None and sha == release_sha:
        raise NotReady("the fleet already runs this drill's release: roll it back first (make rollback NODES=all)")
    return Baseline(fleet.files, sample, versions.pop() or "", sha)


# --- the drill ----------------------------------------------------------------------------------


@dataclass
class Drill:
    ctx: Context
    scenario: Scenario
    result: DrillResult = field(init=False)
    folder: Path = field(init=False)
    base: Baseline | None = None
    release_path: Path | None = None
    loadgen: Loadgen | None = None
    sampler: Sampler | None = None
    plays: list[Play] = field(default_factory=list)
    reading: tuple[Fleet, Sample] | None = None  # the fleet as last read, None once a play may have changed it
    run_dirs: list[Path] = field(default_factory=list)
    prometheus_down: bool = False
    cut_node: str | None = None  # the node a partition drill cuts off
    cut_at: float | None = None
    partitioned: bool = False  # the cut is in force (healed by the drill, or by its cleanup)
    prometheus_cut: bool = False  # the same for the cut between this machine and Prometheus
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.folder = self.ctx.folder / self.scenario.name
        self.folder.mkdir(parents=True, exist_ok=True)
        self.result = DrillResult(self.scenario, f"{self.ctx.run_id}-{self.scenario.name}",
                                  self.ctx.options.inventory or "ansible.cfg's (the lab)", time.time())
        c = self.ctx.fleet.control
        self.result.thresholds = (c.p95_threshold, c.err_threshold)

    def read(self) -> tuple[Fleet, Sample]:
        fleet = self.ctx.read()
        self.reading = (fleet, take_sample(fleet))
        return self.reading

    def say(self, line: str) -> None:
        self.ctx.log(f"gameday {self.scenario.name}: {line}")

    # --- running the tools ------------------------------------------------------------------

    def deploy(self, label: str, artifact_path: Path, canary: str, window: float,
               watch_settings: dict[str, Any] | None = None,
               disturb: Any = None) -> tuple[int, Path | None, Play]:
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
        play = playbook(label, "deploy-canary.yml", self.ctx.options.inventory, extra, self.ctx.env,
                        self.folder / f"{label}.log")
        self.plays.append(play)
        self.reading = None
        self.result.event(f"{label} started")
        self.say(f"{label}: {artifact_path.name} with {canary} as the canary, {window:g} s window "
                 f"(log {play.log_path})")
        play.start()
        helper = None
        if disturb is not None:
            helper = threading.Thread(target=self._guard(disturb), args=(announce, play), daemon=True)
            helper.start()
        try:
            code = play.wait(window + self.ctx.options.play_timeout)
        finally:
            # As make deploy-canary does: a play that stopped early does not release its deploy lock itself.
            edge_lock(self.ctx.fleet.control.state_dir, "release", "deploy", "--id", deploy_id)
        if helper is not None:
            helper.join(120)
        run_dir = Path(announce.read_text().strip()) if announce.exists() else None
        if run_dir is not None:
            self.run_dirs.append(run_dir)
            self.result.tool_records.append(str(run_dir))
        self.result.event(f"{label} ended (exit {code})", at=play.ended_at)
        return code, run_dir, play

    def rollback(self, label: str, nodes: str, rollback_binary: Path | None = None) -> int:
        lock_id = f"{self.result.drill_id}-{label}"
        extra: dict[str, object] = {"rollback_nodes": nodes, "force_lock": True, "edge_canary_lock_id": lock_id}
        if rollback_binary is not None:
            extra["rollback_binary"] = str(rollback_binary)
        play = playbook(label, "rollback.yml", self.ctx.options.inventory, extra, self.ctx.env,
                        self.folder / f"{label}.log")
        self.plays.append(play)
        self.reading = None
        self.result.event(f"{label} started (NODES={nodes})")
        self.say(f"{label}: rollback of {nodes} (log {play.log_path})")
        try:
            code = play.start().wait(self.ctx.options.play_timeout)
        finally:
            edge_lock(self.ctx.fleet.control.state_dir, "release", "deploy", "--id", lock_id)
        self.result.event(f"{label} ended (exit {code})", at=play.ended_at)
        return code

    def _guard(self, action: Any) -> Any:
        def run(announce: Path, play: Play) -> None:
            try:
                action(announce, play)
            except (RunError, OSError) as exc:
                self.result.cleanup.append(f"the disturbance failed: {exc}")
                self.say(f"the disturbance failed: {exc}")
        return run

    def _when_watching(self, announce: Path, play: Play) -> Path | None:
        """Wait until the watcher has logged its first probe; None if the play ended before."""
        while play.running() and not self._stop.is_set():
            if announce.exists():
                run_dir = Path(announce.read_text().strip())
                if probes_logged(run_dir) >= 1:
                    return run_dir
            time.sleep(0.25)
        return None

    def _until_decided(self, announce: Path, play: Play, begin: Callable[[], None], end: Callable[[], None]) -> None:
        """begin() once the watcher has probed once, end() once it decided (or the play ended)."""
        run_dir = self._when_watching(announce, play)
        if run_dir is None:
            return
        begin()
        while play.running() and not self._stop.is_set():
            if watcher_decided(run_dir):
                break
            time.sleep(0.25)
        end()

    def stop_prometheus(self, announce: Path, play: Play) -> None:
        self._until_decided(announce, play, self._prometheus_stop, self._prometheus_start)

    def _prometheus_stop(self) -> None:
        assert self.ctx.options.prom_switch is not None
        self.ctx.options.prom_switch.stop()
        self.prometheus_down = True
        self.result.event("Prometheus stopped", "fault")
        self.say("Prometheus stopped in the middle of the watch window")

    def _prometheus_start(self) -> None:
        assert self.ctx.options.prom_switch is not None
        self.ctx.options.prom_switch.start()
        self.prometheus_down = False
        self.result.event("Prometheus started again", "step")
        self.say("Prometheus started again")

    def cut_prometheus(self, announce: Path, play: Play) -> None:
        self._until_decided(announce, play, self._prometheus_cut, self.heal_prometheus)

    def _prometheus_cut(self) -> None:
        NetworkCut(self.ctx.fleet.control.lab_dir).cut_prometheus()
        self.prometheus_cut, self.cut_at = True, time.time()
        self.result.event("watcher cut off from Prometheus", "fault", self.cut_at)
        self.say("the watcher is cut off from Prometheus (what is sent to it is dropped; it goes on scraping)")

    def heal_prometheus(self) -> None:
        NetworkCut(self.ctx.fleet.control.lab_dir).heal_prometheus()
        self.prometheus_cut = False
        self.result.event("Prometheus reachable again", "step")
        self.say("Prometheus reachable again")

    def partition(self, announce: Path, play: Play) -> None:
        """Cut a node off the network once the watcher watches; heal it once the watcher decided (the canary)
        or the deploy ended (a peer)."""
        node = self.cut_node
        assert node is not None
        if self._when_watching(announce, play) is None:
            return
        run_dir = Path(announce.read_text().strip())
        NetworkCut(self.ctx.fleet.control.lab_dir).cut(node)
        self.partitioned, self.cut_at = True, time.time()
        self.result.event(f"{node} cut off the network", "fault", self.cut_at)
        self.say(f"{node} cut off the network (its link is down)")
        while play.running() and not self._stop.is_set():
            if self.scenario.disturbance == CUT_CANARY and watcher_decided(run_dir):
                break
            time.sleep(0.25)
        self.heal()

    def heal(self) -> None:
        """The node back on the network, and seen up again by every load balancer's checks."""
        node = self.cut_node
        assert node is not None
        NetworkCut(self.ctx.fleet.control.lab_dir).heal(node)
        self.partitioned = False
        self.result.event(f"{node} back on the network", "step")
        self.say(f"{node} back on the network")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, RuntimeError):
                if all(lb_states(lb).get(node) is not None and lb_states(lb)[node].up for lb in self.ctx.fleet.lbs):
                    return
            time.sleep(0.5)

    def kill_watcher(self, announce: Path, play: Play) -> None:
        run_dir = self._when_watching(announce, play)
        if run_dir is None:
            return
        pid = watcher_pid(run_dir)
        if pid is None:
            raise RunError(f"no running watcher found for {run_dir}")
        os.kill(pid, signal.SIGKILL)
        self.result.event(f"watcher (pid {pid}) killed", "fault")
        self.say(f"killed the watcher (pid {pid}) in the middle of the watch window")

    # --- reading what the tool said -----------------------------------------------------------

    def tool_said(self, code: int, run_dir: Path | None, play: Play, canary: str) -> tuple[str, str]:
        node = read_json(run_dir / "nodes" / f"{canary}.json") if run_dir else {}
        if node.get("result") == "failed":
            return ROLL_FAILED, str(node.get("error", ""))
        verdict = read_json(run_dir / "verdict.json") if run_dir else {}
        if verdict.get("verdict"):
            return str(verdict["verdict"]), str(verdict.get("reason", ""))
        gate = re.search(r"SLI gate: ([A-Z]+) — (.*)", play.output())
        if gate:
            return gate.group(1).lower(), gate.group(2).strip().strip("'")
        fatal = next((line.strip() for _, line in reversed(play.lines) if "msg:" in line or "fatal:" in line), "")
        return (PROMOTE if code == 0 else f"failed (exit {code})"), fatal

    def detection_time(self, verdict: str, run_dir: Path | None, play: Play) -> float | None:
        if verdict == ROLL_FAILED:
            return play.first_line("TASK [Note what failed]")
        if verdict == DIED:
            return play.first_line("TASK [Revert the canary ourselves]") or play.first_line("SLI gate: DIED")
        for record in decision_records(run_dir) if run_dir else []:
            if record.get("event") == "probe" and record.get("decision"):
                return parse_ts(record.get("ts"))
        return None

    def record_events(self, run_dir: Path | None, nodes: list[str]) -> None:
        """Mark the deploy's steps (its node records) and the watcher's start and revert on the timeline."""
        if run_dir is None:
            return
        for node in nodes:
            for step in read_json(run_dir / "nodes" / f"{node}.json").get("steps", []):
                if step.get("step") != "start":
                    self.result.event(f"{node} {step.get('step')}", at=float(step["at"]))
        for record in decision_records(run_dir):
            at = parse_ts(record.get("ts"))
            if at is None:
                continue
            if record.get("event") == "start":
                self.result.event("watcher started", at=at)
                if isinstance(record.get("queries"), dict):
                    self.result.queries = {side: RenderedQueries(**q) for side, q in record["queries"].items()
                                           if side in ("canary", "control")}
            elif record.get("event") == "revert":
                self.result.event(f"watcher's revert {'done' if record.get('ok') else 'FAILED'}", "restore", at)

    # --- the flows ----------------------------------------------------------------------------

    def run(self) -> DrillResult:
        try:
            flows = {CANARY: self.canary_flow, ROLLOUT: self.rollout_flow, ACCEPTANCE: self.acceptance_flow}
            flows[self.scenario.flow]()
        except NotReady as exc:
            self.result.error = str(exc)
            self.result.refused = True  # raised only before anything changes
            self.say(f"not started: {exc}")
        except (DrillError, RunError, OSError) as exc:
            self.result.error = str(exc)
            self.say(f"BROKE: {exc}")
        except KeyboardInterrupt:
            self.result.error = "interrupted: the drill stopped where it was and cleaned up"
            self.result.interrupted = True
            self.say("interrupted: cleaning up")
        except Exception as exc:  # a bug in the drill: still clean up, and keep the traceback
            (self.folder / "error.txt").write_text(traceback.format_exc())
            self.result.error = f"internal error: {type(exc).__name__}: {exc} (traceback in {self.folder}/error.txt)"
            self.say(f"BROKE: {self.result.error}")
        self.finish()
        return self.result

    def start_load(self) -> None:
        """Start the load and the sampler; refuse (nothing changed yet) when the fleet already fails requests
        before the drill touches it: collateral failures would then prove nothing."""
        requests = self.folder / "requests.jsonl"
        self.loadgen = Loadgen(self.ctx.loadgen_url, self.ctx.options.rps, requests,
                               self.folder / "loadgen.log").start()
        self.sampler = Sampler(self.ctx.fleet).start()
        self.result.event(f"load generator started ({self.ctx.options.rps:g} req/s through the LB)")
        time.sleep(WARM_UP_S)
        try:
            early = chk.parse_requests(requests.read_text().splitlines())
        except OSError:
            early = []
        failed = [r for r in early if r.sent and r.failed]
        if not early or failed:
            what = f"{len(failed)} of {len(early)} requests failed" if early else "no request was answered"
            raise NotReady(f"the fleet is not serving cleanly before the drill ({what} in {WARM_UP_S:g} s through "
                           f"{self.ctx.loadgen_url}, e.g. {failed[0].status or failed[0].error if failed else '-'}); "
                           "a drill on a fleet that already fails proves nothing: look at make status first")

    def prepare(self) -> tuple[Path, str, str]:
        path = self.release_path = artifact(self.ctx, self.scenario.release, self.folder)
        sha, version = sha256(path), artifact_version(path)
        self.result.release_version, self.result.release_sha = version, sha
        self.base = baseline(self.ctx, sha)
        self.result.lkg_version, self.result.lkg_sha = self.base.version, self.base.sha
        self.say(f"fleet on {self.base.version} (sha256 {self.base.sha[:12]}) everywhere, serving, with a .previous; "
                 f"release {version} (sha256 {sha[:12]})")
        return path, sha, version

    def canary_flow(self) -> None:
        s, ctx = self.scenario, self.ctx
        canary = self.result.canary = ctx.canary()
        peers = [n for n in ctx.fleet.nodes if n != canary]
        window = watch_window(s, ctx.window, ctx.interval, ctx.max_staleness)
        settings = None
        disturb = None
        if s.disturbance == STOP_PROMETHEUS:
            if ctx.options.prom_switch is None:
                raise NotReady("prometheus-outage needs to stop and start Prometheus: on a non-lab inventory set "
                               "PROM_STOP_CMD and PROM_START_CMD")
            settings = {"max_staleness": ctx.max_staleness}
            disturb = self.stop_prometheus
        elif s.disturbance == KILL_WATCHER:
            disturb = self.kill_watcher
        elif s.disturbance == CUT_PROMETHEUS:
            settings = {"max_staleness": ctx.max_staleness}
            disturb = self.cut_prometheus
        elif s.disturbance in PARTITIONS:
            self.cut_node = canary if s.disturbance == CUT_CANARY else peers[0]
            if s.disturbance == CUT_CANARY:
                settings = {"max_staleness": ctx.max_staleness}
            disturb = self.partition
        path, sha, version = self.prepare()
        assert self.base is not None
        self.set_selectors(f'job="edge",node="{canary}"', f'job="edge",node!="{canary}"')
        self.start_load()
        code, run_dir, play = self.deploy("deploy", path, canary, window, settings, disturb)
        verdict, reason = self.tool_said(code, run_dir, play, canary)
        self.result.tool_verdict, self.result.tool_reason = verdict, reason
        self.record_events(run_dir, [canary, *peers])
        self.result.detected_at = self.detection_time(verdict, run_dir, play)
        if self.result.detected_at is not None:
            self.result.event(f"detected: {verdict}", "detect", self.result.detected_at)
        node_record = read_json(run_dir / "nodes" / f"{canary}.json") if run_dir else {}
        pushed = [float(st["at"]) for st in node_record.get("steps", []) if st.get("step") == "push"]
        after, now = self.read()
        checks = [chk.check_tool_verdict(s.expect.tool_verdict, verdict)]
        if s.expect.promoted:
            checks += [
                chk.check_versions(now.versions, after.files, version, sha, f"every node promoted to {version}"),
                phase("promoted", chk.check_ready(now.lbs, ctx.fleet.nodes)),
                chk.check_reverted(set(), chk.reverted_nodes(self.base.files, after.files, sha)),
            ]
            code = self.rollback("restore", "all")
            after, now = self.read()
            checks.append(chk.Check("deliberate rollback", code == 0, f"rollback of every node exited {code}"))
        elif s.disturbance == CUT_PEER:
            checks += self.peer_cut_checks(code, play, canary, peers, after.files, now, version, sha)
            code = self.rollback("restore", canary)
            after, now = self.read()
            checks.append(chk.Check("deliberate rollback", code == 0, f"rollback of {canary} exited {code}"))
        else:
            checks += [
                chk.check_reverted({canary}, chk.reverted_nodes(self.base.files, after.files, sha)),
                chk.check_untouched(peers, self.base.files, after.files, self.sampler_samples(), version),
            ]
        checks += [
            chk.check_versions(now.versions, after.files, self.base.version, self.base.sha,
                               f"every node back on {self.base.version}"),
            chk.check_ready(now.lbs, ctx.fleet.nodes),
            chk.check_previous(self.base.files, after.files, self.base.sha, sha),
            chk.check_config(self.base.files, after.files),
        ]
        checks += self.disturbance_checks()
        self.result.checks = checks
        self.finish_traffic(version, canary, pushed[0] if pushed else None)

    def peer_cut_checks(self, code: int, play: Play, canary: str, peers: list[str], files: dict[str, NodeFiles],
                        now: Sample, version: str, sha: str) -> list[chk.Check]:
        """A peer cut off mid-deploy: the canary promoted, the roll stopped at that peer and said so, no peer
        changed, none left out of rotation."""
        assert self.base is not None
        cut = self.cut_node
        said = re.search(rf"\[{re.escape(str(cut))}\]: UNREACHABLE!", play.output()) is not None
        binary = files[canary].binary.sha256
        on_release = now.versions.get(canary) == version and binary == sha
        return [
            chk.Check("the deploy stopped at the cut peer and said so", code != 0 and said,
                      f"the deploy exited {code}; {'it named' if said else 'it did NOT name'} {cut} as unreachable"),
            chk.Check(f"{canary} promoted to {version}", on_release,
                      f"{canary} serves {now.versions.get(canary)}, sha256 {(binary or '-')[:12]}"),
            chk.check_untouched(peers, self.base.files, files, self.sampler_samples(), version),
            phase("after the deploy", chk.check_ready(now.lbs, self.ctx.fleet.nodes)),
        ]

    def disturbance_checks(self) -> list[chk.Check]:
        """The revert must come from the disturbance: after the kill, or while Prometheus was down."""
        at = {e.label.split(" (")[0]: e.at for e in self.result.events}
        detected = self.result.detected_at
        if self.scenario.disturbance == STOP_PROMETHEUS:
            return [self.caught_between("caught while Prometheus was down", "Prometheus down",
                                        at.get("Prometheus stopped"), at.get("Prometheus started again"))]
        if self.scenario.disturbance == CUT_CANARY:
            return [self.caught_between("caught while the canary was cut off", "cut off", self.cut_at,
                                        at.get(f"{self.cut_node} back on the network"))]
        if self.scenario.disturbance == CUT_PROMETHEUS:
            return [self.caught_between("caught while Prometheus was cut off", "cut off", self.cut_at,
                                        at.get("Prometheus reachable again"))]
        if self.scenario.disturbance == CUT_PEER:
            return [chk.Check("the peer was cut off during the deploy", self.cut_at is not None,
                              f"{self.cut_node} cut off {chk.seconds_between(self.result.started_at, self.cut_at)} s "
                              "into the drill")]
        if self.scenario.disturbance == KILL_WATCHER:
            killed = next((e.at for e in self.result.events if e.label.startswith("watcher (pid")), None)
            ok = killed is not None and detected is not None and killed <= detected
            return [chk.Check("caught after the watcher was killed", ok,
                              f"killed at {chk.seconds_between(self.result.started_at, killed)} s, detection at "
                              f"{chk.seconds_between(self.result.started_at, detected)} s into the drill")]
        return []

    def caught_between(self, name: str, what: str, start: float | None, end: float | None) -> chk.Check:
        """The detection fell while the disturbance lasted (from start to end; no end yet: any time after start)."""
        detected, t0 = self.result.detected_at, self.result.started_at
        ok = start is not None and detected is not None and start <= detected <= (end or detected)
        return chk.Check(name, ok, f"{what} {chk.seconds_between(t0, start)} s to {chk.seconds_between(t0, end)} s "
                                   f"into the drill, detection at {chk.seconds_between(t0, detected)} s")

    def set_selectors(self, canary: str, control: str) -> None:
        """Canary and control for the timeline; the watcher's own queries replace these once it has run."""
        self.result.selectors = (canary, control)
        range_s = max(4 * self.ctx.fleet.control.scrape_interval, 2.0)
        self.result.queries = queries_for(self.result.selectors, range_s)

    def sampler_samples(self) -> list[Sample]:
        return list(self.sampler.samples) if self.sampler else []

    def finish_traffic(self, version: str, node: str, pushed_at: float | None, variant: str | None = None) -> None:
        """Stop the load, count the requests, and work out the drill's figures."""
        if self.loadgen is not None:
            self.loadgen.stop()
        samples = self.sampler.stop() if self.sampler else []
        write_samples(samples, self.folder / "samples.jsonl")
        try:
            lines = (self.folder / "requests.jsonl").read_text().splitlines()
        except OSError:
            lines = []
        requests = chk.parse_requests(lines)
        t = chk.traffic(requests, version, self.result.thresholds[0], variant)
        self.result.traffic = t
        self.result.checks += [
            chk.check_traffic_flowed(t),
            chk.check_release_traffic(self.scenario.expect.release_traffic, t, version),
            # A cut node fails requests until HAProxy notices: measured and bounded, not forbidden.
            chk.check_routed_around(requests, version, self.cut_at, PARTITION_GRACE_S,
                                    self.ctx.options.max_collateral)
            if self.scenario.disturbance in PARTITIONS else chk.check_collateral(t, self.ctx.options.max_collateral),
        ]
        self.result.first_bad_at = t.first_bad_at
        if t.first_bad_at is not None:
            self.result.event("first bad response", "fault", t.first_bad_at)
        self.result.pushed_at = pushed_at
        served = chk.first_seen(samples, node, version)
        if served is not None:
            self.result.event(f"{node} serving {version}", "step", served)
        if variant is not None:
            last = chk.last_answer(requests, version, variant) if self.result.detected_at else None
            self.result.restored_at = last
            if last is not None:
                self.result.event(f"last answer from the {variant} code path", "restore", last)
        elif self.scenario.expect.reverted:
            since = self.result.detected_at or served
            self.result.restored_at = chk.restored_at(samples, node, self.result.lkg_version, since)
            if self.result.restored_at is not None:
                self.result.event(f"{node} serving {self.result.lkg_version} again, READY", "restore",
                                  self.result.restored_at)

    def rollout(self, label: str, stages: str, hold: float) -> tuple[int, Path | None, Play]:
        rollout_id = f"{self.result.drill_id}-{label}"
        announce = self.folder / f"{label}.run-dir"
        extra: dict[str, object] = {"rollout_id": rollout_id, "rollout_announce_file": str(announce),
                                    "rollout_stages": stages, "rollout_hold": str(int(hold)),
                                    "force_lock": True}  # past the drill's own game-day lock, logged
        play = playbook(label, "rollout.yml", self.ctx.options.inventory, extra, self.ctx.env,
                        self.folder / f"{label}.log")
        self.plays.append(play)
        self.reading = None
        self.result.event(f"{label} started (STAGES={stages}, {hold:g} s each)")
        self.say(f"{label}: STAGES=\"{stages}\" held {hold:g} s each (log {play.log_path})")
        try:
            code = play.start().wait(hold * len(stages.split()) + self.ctx.options.play_timeout)
        finally:
            edge_lock(self.ctx.fleet.control.state_dir, "release", "deploy", "--id", rollout_id)
        run_dir = Path(announce.read_text().strip()) if announce.exists() else None
        if run_dir is not None:
            self.run_dirs.append(run_dir)
            self.result.tool_records.append(str(run_dir))
        self.result.event(f"{label} ended (exit {code})", at=play.ended_at)
        return code, run_dir, play

    def rollout_said(self, code: int, run_dir: Path | None) -> tuple[str, str, Path | None]:
        """The stopped stage's watcher verdict (or promote), its reason, and that stage's record folder."""
        result = read_json(run_dir / "result.json") if run_dir else {}
        stopped = result.get("stopped")
        if isinstance(stopped, dict):
            stage = next((Path(str(s["record"])) for s in result.get("stages", [])
                          if s.get("stage") == stopped.get("stage") and s.get("record")), None)
            return str(stopped.get("verdict")), str(stopped.get("reason", "")), stage
        if result.get("ok"):
            return PROMOTE, "every stage promoted", None
        # No result.json (the play stopped early): the last watched stage's own verdict.
        stages = sorted(run_dir.glob("stage-*"), key=lambda p: int(p.name.split("-")[1])) if run_dir else []
        for stage in reversed(stages):
            verdict = read_json(stage / "verdict.json")
            if verdict.get("verdict"):
                return str(verdict["verdict"]), str(verdict.get("reason", "")), stage
        return f"failed (exit {code})", "the rollout stopped before any stage's verdict", None

    def rollout_flow(self) -> None:
        ctx = self.ctx
        path, sha, version = self.prepare()
        assert self.base is not None
        canary = ctx.canary()
        self.result.restore_label = "the last answer from the new code path"
        self.set_selectors('job="edge",variant="new"', 'job="edge",variant="legacy"')
        self.start_load()
        # Ship the release dark first (rollout_pct=0: its broken code path gets no traffic), as a normal deploy.
        code, run_dir, play = self.deploy("dark-deploy", path, canary, ctx.window)
        said, _ = self.tool_said(code, run_dir, play, canary)
        self.record_events(run_dir, ctx.fleet.nodes)
        dark, now = self.read()
        checks = [chk.Check("dark deploy promoted", said == PROMOTE and code == 0,
                            f"the tool said {said}, exit {code}"),
                  chk.check_versions(now.versions, dark.files, version, sha, f"every node on {version} (dark)")]
        if not all(c.ok for c in checks):
            self.result.tool_verdict = f"dark deploy: {said}"
            self.result.checks = checks
            self.finish_traffic(version, canary, None, variant="new")
            return
        hold = ctx.window
        code, run_dir, play = self.rollout("rollout", ctx.options.rollout_stages, hold)
        verdict, reason, stage_dir = self.rollout_said(code, run_dir)
        self.result.tool_verdict, self.result.tool_reason = verdict, reason
        self.result.queries = {}
        if stage_dir is not None:
            self.record_events(stage_dir, [])
            for record in decision_records(stage_dir):
                if record.get("event") == "probe" and record.get("decision"):
                    self.result.detected_at = parse_ts(record.get("ts"))
                    break
        if not self.result.queries:
            self.set_selectors('job="edge",variant="new"', 'job="edge",variant="legacy"')
        if self.result.detected_at is not None:
            self.result.event(f"detected: {verdict}", "detect", self.result.detected_at)
        after, now = self.read()
        checks += [
            chk.check_tool_verdict(self.scenario.expect.tool_verdict, verdict),
            chk.check_rollout_off(after.files),
            chk.check_versions(now.versions, after.files, version, sha, f"the rollout changed no binary ({version})"),
            phase("after the rollout", chk.check_ready(now.lbs, ctx.fleet.nodes)),
        ]
        code = self.rollback("restore", "all")
        after, now = self.read()
        checks += [
            chk.Check("deliberate rollback", code == 0, f"rollback of every node exited {code}"),
            chk.check_versions(now.versions, after.files, self.base.version, self.base.sha,
                               f"every node back on {self.base.version}"),
            chk.check_ready(now.lbs, ctx.fleet.nodes),
            chk.check_previous(self.base.files, after.files, self.base.sha, sha),
            chk.check_config(self.base.files, after.files),
        ]
        self.result.checks = checks
        self.finish_traffic(version, canary, None, variant="new")

    def acceptance_flow(self) -> None:
        ctx = self.ctx
        path, sha, version = self.prepare()
        assert self.base is not None
        canary = self.result.canary = ctx.canary()
        self.set_selectors(f'job="edge",node="{canary}"', f'job="edge",node!="{canary}"')
        self.start_load()
        checks: list[chk.Check] = []
        for label in ("deploy-1", "rollback", "deploy-2", "restore"):
            if label.startswith("deploy"):
                code, run_dir, play = self.deploy(label, path, canary, ctx.window)
                verdict, _ = self.tool_said(code, run_dir, play, canary)
                self.record_events(run_dir, ctx.fleet.nodes)
                want_version, want_sha = version, sha
                checks.append(chk.Check(f"{label}: promoted", verdict == PROMOTE and code == 0,
                                        f"the tool said {verdict}, exit {code}"))
            else:
                code = self.rollback(label, "all")
                want_version, want_sha = self.base.version, self.base.sha
                checks.append(chk.Check(f"{label}: rollback succeeded", code == 0, f"exit {code}"))
            fleet, now = self.read()
            files = fleet.files
            for check in (chk.check_versions(now.versions, files, want_version, want_sha, "every node on "
                                             f"{want_version}"),
                          chk.check_ready(now.lbs, ctx.fleet.nodes),
                          chk.check_previous(self.base.files, files, self.base.sha, sha)):
                checks.append(phase(label, check))
        checks.append(chk.check_config(self.base.files, files))
        self.result.tool_verdict = PROMOTE if all(c.ok for c in checks if "promoted" in c.name) else "failed"
        self.result.checks = checks
        self.finish_traffic(version, canary, None)

    # --- cleaning up --------------------------------------------------------------------------

    def finish(self) -> None:
        """Whatever happened, leave the fleet on the last-known-good release, and say what it took."""
        self._stop.set()
        for play in self.plays:
            if play.running():
                play.stop()
                self.reading = None
                self.result.cleanup.append(f"stopped the unfinished {play.name} play")
        for run_dir in [d for run in self.run_dirs for d in (run, *sorted(run.glob("stage-*")))]:
            pid = watcher_pid(run_dir)  # a deploy's watcher, or a rollout stage's
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
                self.reading = None
                # It holds the signal while a revert runs: let that revert finish before reading the fleet.
                deadline = time.monotonic() + 600
                while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                    time.sleep(0.5)
                self.result.cleanup.append(f"stopped the watcher still running for {run_dir.name} (pid {pid})")
        if self.partitioned:
            try:
                self.heal()
                self.result.cleanup.append(f"healed the partition of {self.cut_node}")
            except RunError as exc:
                self.result.cleanup.append(f"the partition of {self.cut_node} could NOT be healed: {exc}; "
                                           f"run edge-canary lab-netns heal {self.cut_node}")
        if self.prometheus_cut:
            try:
                self.heal_prometheus()
                self.result.cleanup.append("healed the cut between the watcher and Prometheus")
            except RunError as exc:
                self.result.cleanup.append(f"the cut between the watcher and Prometheus could NOT be healed: {exc}; "
                                           "run edge-canary lab-netns heal-prometheus")
        switch = self.ctx.options.prom_switch
        if self.prometheus_down and switch is not None:
            try:
                switch.start()
                self.prometheus_down = False
                self.result.cleanup.append("started Prometheus again")
            except RunError as exc:
                self.result.cleanup.append(f"Prometheus could NOT be started again: {exc}")
        if self.loadgen is not None:
            self.loadgen.stop()
        if self.sampler is not None:
            self.sampler.stop()
        if self.base is not None:
            try:
                self.restore_fleet()
            except Exception as exc:
                self.result.cleanup.append(f"CLEANUP FAILED: {type(exc).__name__}: {exc}; check the fleet with "
                                           "make status and put it back with make rollback")
                self.result.error = self.result.error or "the cleanup failed"
        self.result.ended_at = time.time()

    def restore_fleet(self) -> None:
        assert self.base is not None
        try:
            fleet, sample = self.reading or self.read()
        except RuntimeError as exc:
            self.result.cleanup.append(f"could not read the fleet to check it: {exc}")
            return
        off = off_baseline(self.base, fleet.files, sample)
        if not off:
            return
        self.say(f"cleaning up: {'; '.join(f'{n}: {why}' for n, why in off.items())}")
        nodes = ",".join(off)
        lkg_copy = find_binary(self.ctx.options.artifacts_dir, self.base.sha)
        need_binary = any(fleet.files[n].previous.sha256 != self.base.sha for n in off)
        code = self.rollback("cleanup", nodes, lkg_copy if need_binary else None)
        fleet, sample = self.read()
        still = off_baseline(self.base, fleet.files, sample)
        why = "; ".join(f"{n}: {reason}" for n, reason in off.items())
        if code == 0 and not still:
            self.result.cleanup.append(f"the drill put the fleet back on {self.base.version} itself ({why}): "
                                       f"rollback of {nodes} succeeded")
        else:
            left = "; ".join(f"{n}: {reason}" for n, reason in still.items())
            self.result.cleanup.append(f"CLEANUP FAILED (rollback exit {code}): {left or why}; run make rollback "
                                       f"NODES={nodes}" + ("" if lkg_copy else " ROLLBACK_BINARY=<a copy of "
                                                                               f"{self.base.version}>"))
            self.result.error = self.result.error or "the fleet could not be put back on its last-known-good release"


def phase(name: str, check: chk.Check) -> chk.Check:
    """The same expectation checked at two moments of one drill gets the moment in its name."""
    return chk.Check(f"{name}: {check.name}", check.ok, check.detail)


def off_baseline(base: Baseline, files: dict[str, NodeFiles], sample: Sample) -> dict[str, str]:
    """Nodes not on the last-known-good release, not serving it, not in rotation, or with other config keys."""
    off = {}
    for node, f in files.items():
        reasons = []
        if f.binary.sha256 != base.sha:
            reasons.append(f"binary sha256 {(f.binary.sha256 or 'missing')[:12]}")
        if sample.versions.get(node) != base.version:
            reasons.append(f"serves {sample.versions.get(node) or 'nothing'}")
        for lb, states in sample.lbs.items():
            state = states.get(node)
            if state is None or not state.serving:
                reasons.append(f"not serving on {lb}")
        if f.config_keys() != base.files[node].config_keys():
            reasons.append(f"config {f.config_keys()}")
        if reasons:
            off[node] = ", ".join(reasons)
    return off


def find_binary(folder: Path, wanted: str) -> Path | None:
    for path in sorted(folder.glob("edge-*")) if folder.is_dir() else []:
        with contextlib.suppress(OSError):
            if path.is_file() and sha256(path) == wanted:
                return path
    return None

