"""The game-day disturbances (edge_canary/gameday/disturbances.py): begin and end with the commands faked,
when they begin and end beside a deploy, their own checks, and what the cleanup does with one left in force."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, cast

import pytest

from edge_canary.gameday import disturbances as dist
from edge_canary.gameday import scenarios as sc
from edge_canary.gameday import switches
from edge_canary.gameday.checks import Traffic
from edge_canary.gameday.errors import NotReady, RunError
from edge_canary.gameday.fleet import LoadBalancer, ServerState
from edge_canary.gameday.plays import Play
from edge_canary.lab.loadgen_records import Request

T0 = 1_800_000_000.0


class Recorder:
    """The drill's side of a Scene: its timeline, its output and its cleanup notes; and the commands run."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.said: list[str] = []
        self.notes: list[str] = []
        self.commands: list[list[str]] = []
        self.clock = T0

    def mark(self, label: str, kind: str) -> float:
        self.events.append((label, kind))
        self.clock += 1
        return self.clock

    def scene(self, prom_switch: switches.PrometheusSwitch | None = None) -> dist.Scene:
        return dist.Scene(canary="edge-1", peers=["edge-2", "edge-3"],
                          lbs_of=lambda _: (LoadBalancer("lb-1", "/s1", "edge"), LoadBalancer("lb-2", "/s2", "edge")),
                          lab_dir="/lab", prom_switch=prom_switch, mark=self.mark, say=self.said.append,
                          note=self.notes.append)


@pytest.fixture
def rec(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    """Every command a lever runs is recorded instead of run; Prometheus answers at once; every LB sees every
    node up."""
    r = Recorder()

    def run_command(argv: list[str], what: str, timeout: float = 120, env: dict[str, str] | None = None) -> None:
        r.commands.append(argv[argv.index("lab-netns") + 1:] if "lab-netns" in argv else argv)
        if env is not None and "lab-netns" in argv:
            assert env["LAB_DIR"] == "/lab"

    monkeypatch.setattr(switches, "run_command", run_command)
    monkeypatch.setattr(switches, "prometheus_ready", lambda url: True)
    monkeypatch.setattr(dist, "lb_states", lambda lb: {n: ServerState("READY", True) for n in ("edge-1", "edge-2")})
    return r


def prom_switch() -> switches.PrometheusSwitch:
    return switches.PrometheusSwitch(["prom-stop"], ["prom-start"], "http://127.0.0.1:9")


def outcome(detected: float | None, code: int = 0, output: str = "") -> dist.Outcome:
    return dist.Outcome(code, output, T0, detected)


# --- one class per kind, chosen from the scenario's data --------------------------------------


def test_every_kind_a_scenario_can_name_has_its_class_and_no_other() -> None:
    assert set(dist.KINDS) == {None, *sc.DISTURBANCES}
    for kind, cls in dist.KINDS.items():
        assert cls.kind == kind


@pytest.mark.parametrize("name, cls", [
    ("green", dist.Undisturbed), ("errors", dist.Undisturbed), ("bad-rollout", dist.Undisturbed),
    ("prometheus-outage", dist.PrometheusStop), ("watcher-killed", dist.WatcherKill),
    ("partition-node", dist.NodePartition), ("partition-peer", dist.PeerPartition),
    ("partition-prometheus", dist.PrometheusPartition),
])
def test_the_scenario_picks_its_disturbance(rec: Recorder, name: str, cls: type[dist.Disturbance]) -> None:
    assert type(dist.for_scenario(sc.SCENARIOS[name], rec.scene())) is cls


# --- begin and end ----------------------------------------------------------------------------


def test_prometheus_stop_stops_then_starts_it_and_marks_both(rec: Recorder) -> None:
    d = dist.PrometheusStop(rec.scene(prom_switch()))
    d.ready()
    d.begin(Path("/run"))
    assert (rec.commands, d.active, d.began_at) == ([["prom-stop"]], True, T0 + 1)
    d.end()
    assert (rec.commands[-1], d.active, d.ended_at) == (["prom-start"], False, T0 + 2)
    assert rec.events == [("Prometheus stopped", "fault"), ("Prometheus started again", "step")]
    assert rec.said == ["Prometheus stopped in the middle of the watch window", "Prometheus started again"]


def test_prometheus_stop_needs_a_way_to_stop_prometheus(rec: Recorder) -> None:
    with pytest.raises(NotReady, match="PROM_STOP_CMD and PROM_START_CMD"):
        dist.PrometheusStop(rec.scene(None)).ready()


def test_node_partition_cuts_the_canary_and_heals_it(rec: Recorder) -> None:
    d = dist.NodePartition(rec.scene())
    d.begin(Path("/run"))
    assert d.active and rec.events == [("edge-1 cut off the network", "fault")]
    d.end()
    assert rec.commands == [["cut", "edge-1"], ["heal", "edge-1"]]
    assert not d.active and rec.events[-1] == ("edge-1 back on the network", "step")


def test_peer_partition_cuts_the_first_peer(rec: Recorder) -> None:
    d = dist.PeerPartition(rec.scene())
    d.begin(Path("/run"))
    d.end()
    assert rec.commands == [["cut", "edge-2"], ["heal", "edge-2"]]
    assert not d.over(Path("/run"))  # it lasts until the deploy ends, whatever the watcher decided


def test_prometheus_partition_cuts_and_heals_the_path_to_prometheus(rec: Recorder) -> None:
    d = dist.PrometheusPartition(rec.scene())
    d.begin(Path("/run"))
    d.end()
    assert rec.commands == [["cut-prometheus"], ["heal-prometheus"]]
    assert rec.events == [("watcher cut off from Prometheus", "fault"), ("Prometheus reachable again", "step")]


def watcher_like(run_dir: Path) -> subprocess.Popen[bytes]:
    """A process whose command line names run_dir/watcher.json, logged as the watcher's start."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", str(run_dir / "watcher.json")])
    # Until the child has exec'd, /proc shows the parent's command line: wait for the watcher's own.
    deadline = time.monotonic() + 10
    while str(run_dir / "watcher.json").encode() not in Path(f"/proc/{proc.pid}/cmdline").read_bytes():
        assert time.monotonic() < deadline, "the stand-in watcher never showed its command line"
        time.sleep(0.01)
    (run_dir / "decisions.jsonl").write_text(json.dumps({"event": "start", "pid": proc.pid}) + "\n")
    return proc


def test_watcher_kill_kills_the_watcher_of_this_deploy(rec: Recorder, tmp_path: Path) -> None:
    proc = watcher_like(tmp_path)
    try:
        d = dist.WatcherKill(rec.scene())
        d.begin(tmp_path)
        assert proc.wait(10) == -signal.SIGKILL
    finally:
        proc.kill()
    assert rec.events == [(f"watcher (pid {proc.pid}) killed", "fault")] and d.began_at == T0 + 1
    assert d.over(tmp_path) and not d.active  # nothing to put back


def test_watcher_kill_without_a_running_watcher_fails_loudly(rec: Recorder, tmp_path: Path) -> None:
    (tmp_path / "decisions.jsonl").write_text(json.dumps({"event": "start", "pid": 1}) + "\n")  # not a watcher
    with pytest.raises(RunError, match="no running watcher"):
        dist.WatcherKill(rec.scene()).begin(tmp_path)


# --- beside the deploy --------------------------------------------------------------------------


class FakePlay:
    def __init__(self) -> None:
        self.done = threading.Event()

    def running(self) -> bool:
        return not self.done.is_set()


def log(run_dir: Path, *records: dict[str, Any]) -> None:
    with (run_dir / "decisions.jsonl").open("a") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")


def wait_until(predicate: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def run_beside(d: dist.Disturbance, announce: Path, play: FakePlay) -> tuple[threading.Thread, threading.Event]:
    stop = threading.Event()
    thread = threading.Thread(target=d.during, args=(announce, cast(Play, play), stop), daemon=True)
    thread.start()
    return thread, stop


def test_it_begins_after_the_first_probe_and_ends_once_the_watcher_decided(rec: Recorder, tmp_path: Path) -> None:
    run_dir, announce, play = tmp_path / "run", tmp_path / "deploy.run-dir", FakePlay()
    run_dir.mkdir()
    d = dist.PrometheusPartition(rec.scene())
    thread, _ = run_beside(d, announce, play)
    time.sleep(0.6)
    assert rec.commands == []  # no record folder announced yet
    announce.write_text(f"{run_dir}\n")
    log(run_dir, {"event": "start"})
    time.sleep(0.6)
    assert rec.commands == []  # the watcher has not probed yet
    log(run_dir, {"event": "probe"})
    wait_until(lambda: d.active)
    log(run_dir, {"event": "probe", "decision": "revert"})
    thread.join(10)
    assert not thread.is_alive() and not d.active and play.running()
    assert rec.commands == [["cut-prometheus"], ["heal-prometheus"]]


def test_a_peer_cut_ends_when_the_deploy_ends(rec: Recorder, tmp_path: Path) -> None:
    run_dir, announce, play = tmp_path / "run", tmp_path / "deploy.run-dir", FakePlay()
    run_dir.mkdir()
    announce.write_text(f"{run_dir}\n")
    log(run_dir, {"event": "probe"}, {"event": "verdict"})
    d = dist.PeerPartition(rec.scene())
    thread, _ = run_beside(d, announce, play)
    wait_until(lambda: d.active)
    time.sleep(0.6)
    assert d.active  # the watcher's verdict does not end it
    play.done.set()
    thread.join(10)
    assert not d.active and rec.commands == [["cut", "edge-2"], ["heal", "edge-2"]]


def test_nothing_begins_when_the_deploy_ends_before_the_watcher_probes(rec: Recorder, tmp_path: Path) -> None:
    play = FakePlay()
    play.done.set()
    d = dist.NodePartition(rec.scene())
    d.during(tmp_path / "never.run-dir", cast(Play, play), threading.Event())
    assert rec.commands == [] and d.began_at is None


def test_a_failed_lever_is_noted_not_raised(rec: Recorder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(argv: list[str], what: str, timeout: float = 120, env: dict[str, str] | None = None) -> None:
        raise RunError(f"{what}: exited 1")

    monkeypatch.setattr(switches, "run_command", fail)
    run_dir, announce = tmp_path / "run", tmp_path / "deploy.run-dir"
    run_dir.mkdir()
    announce.write_text(f"{run_dir}\n")
    log(run_dir, {"event": "probe"})
    dist.NodePartition(rec.scene()).during(announce, cast(Play, FakePlay()), threading.Event())
    assert rec.notes == ["the disturbance failed: cut edge-1: exited 1"]


def test_undisturbed_runs_nothing_beside_the_deploy(rec: Recorder, tmp_path: Path) -> None:
    d = dist.Undisturbed(rec.scene())
    d.during(tmp_path / "x", cast(Play, FakePlay()), threading.Event())  # returns at once
    assert (rec.commands, rec.events, d.checks(outcome(T0 + 5))) == ([], [], [])


# --- its own checks -----------------------------------------------------------------------------


@pytest.mark.parametrize("detected, ok", [(T0 + 1.5, True), (T0 + 0.5, False), (T0 + 3, False), (None, False)])
def test_a_blinding_disturbance_must_be_caught_while_it_lasts(rec: Recorder, detected: float | None,
                                                              ok: bool) -> None:
    d = dist.PrometheusStop(rec.scene(prom_switch()))
    d.begin(Path("/run"))  # at T0 + 1
    d.end()  # at T0 + 2
    (check,) = d.checks(outcome(detected))
    assert (check.name, check.ok) == ("caught while Prometheus was down", ok)
    assert check.detail.startswith("Prometheus down 1.0 s to 2.0 s into the drill")


def test_a_disturbance_still_in_force_counts_any_later_detection(rec: Recorder) -> None:
    d = dist.NodePartition(rec.scene())
    d.begin(Path("/run"))
    (check,) = d.checks(outcome(T0 + 50))
    assert (check.name, check.ok) == ("caught while the canary was cut off", True)


def test_the_kill_must_come_before_the_detection(rec: Recorder, tmp_path: Path) -> None:
    proc = watcher_like(tmp_path)
    try:
        d = dist.WatcherKill(rec.scene())
        d.begin(tmp_path)
    finally:
        proc.kill()
    assert [c.ok for c in d.checks(outcome(T0 + 4))] == [True]
    assert [c.ok for c in d.checks(outcome(T0 + 0.5))] == [False]
    assert d.checks(outcome(T0 + 4))[0].name == "caught after the watcher was killed"


@pytest.mark.parametrize("code, output, ok", [
    (2, "fatal: [edge-2]: UNREACHABLE! => {}", True),
    (0, "fatal: [edge-2]: UNREACHABLE! => {}", False),
    (2, "fatal: [edge-3]: UNREACHABLE! => {}", False),
])
def test_the_peer_cut_must_stop_the_roll_and_be_named(rec: Recorder, code: int, output: str, ok: bool) -> None:
    d = dist.PeerPartition(rec.scene())
    d.begin(Path("/run"))
    stopped, cut = d.checks(outcome(None, code, output))
    assert (stopped.name, stopped.ok) == ("the deploy stopped at the cut peer and said so", ok)
    assert (cut.name, cut.ok) == ("the peer was cut off during the deploy", True)


def test_a_cut_node_is_judged_by_how_fast_haproxy_routed_around_it(rec: Recorder) -> None:
    t = Traffic(10, 2, 0, 2, 0, 0, 0, None, ())
    requests = [Request(T0 + 2, None, 503, None, None), Request(T0 + 30, None, 503, None, None)]
    d = dist.NodePartition(rec.scene())
    d.begin(Path("/run"))  # at T0 + 1
    check = d.collateral(requests, "v2", t, 0, [])
    assert (check.name, check.ok) == ("HAProxy routed around the cut node", False)  # the one at +29 s
    assert d.collateral(requests, "v2", t, 1, []).ok
    assert dist.PrometheusPartition(rec.scene()).collateral(requests, "v2", t, 2, []).name == "no collateral failures"


# --- the cleanup ----------------------------------------------------------------------------------


def test_the_cleanup_ends_a_disturbance_still_in_force_and_says_so(rec: Recorder) -> None:
    d = dist.NodePartition(rec.scene())
    d.begin(Path("/run"))
    d.restore()
    assert rec.commands[-1] == ["heal", "edge-1"] and not d.active
    assert rec.notes == ["healed the partition of edge-1"]
    d.restore()  # nothing left to do
    assert rec.notes == ["healed the partition of edge-1"]


def test_the_cleanup_says_how_to_end_what_it_could_not(rec: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    d = dist.PrometheusPartition(rec.scene())
    d.begin(Path("/run"))

    def fail(argv: list[str], what: str, timeout: float = 120, env: dict[str, str] | None = None) -> None:
        raise RunError("nft: exited 1")

    monkeypatch.setattr(switches, "run_command", fail)
    d.restore()
    assert rec.notes == ["the cut between the watcher and Prometheus could NOT be healed: nft: exited 1; run "
                         "edge-canary lab-netns heal-prometheus"]


def test_the_cleanup_starts_prometheus_again(rec: Recorder) -> None:
    d = dist.PrometheusStop(rec.scene(prom_switch()))
    d.begin(Path("/run"))
    d.restore()
    assert rec.notes == ["started Prometheus again"] and rec.commands[-1] == ["prom-start"]
