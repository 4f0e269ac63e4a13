"""Game-day disturbances: what a drill does to the fleet's tooling while the watcher watches.

Each kind a scenario names (scenarios.DISTURBANCES) is a class here with begin() and end(); the drill
takes the one for its scenario from KINDS and never asks which it has. A disturbance begins once the
watcher has logged its first probe and ends when it is over (most: once the watcher decided) or the deploy
ended; it says what it did on the drill's timeline, adds its own checks to the drill's judgement, and ends
itself in the drill's cleanup if it is still in force.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from edge_canary.gameday import checks as chk
from edge_canary.gameday.errors import NotReady, RunError
from edge_canary.gameday.fleet import LoadBalancer, Sample, lb_states
from edge_canary.gameday.plays import Play
from edge_canary.gameday.records import probes_logged, watcher_decided, watcher_pid
from edge_canary.gameday.scenarios import (
    CUT_CANARY,
    CUT_PEER,
    CUT_PROMETHEUS,
    KILL_WATCHER,
    PARTITION_GRACE_S,
    STOP_PROMETHEUS,
    Scenario,
)
from edge_canary.gameday.switches import NetworkCut, PrometheusSwitch
from edge_canary.lab.loadgen_records import Request

POLL_S = 0.25


@dataclass
class Scene:
    """What a disturbance acts on, and where it writes down what it did."""

    canary: str
    peers: list[str]
    lbs_of: Callable[[str], tuple[LoadBalancer, ...]]  # the load balancers that serve a node
    lab_dir: str
    prom_switch: PrometheusSwitch | None
    mark: Callable[[str, str], float]  # puts an event (label, kind) on the drill's timeline; returns its time
    say: Callable[[str], None]
    note: Callable[[str], None]  # a line of the drill's cleanup notes


@dataclass(frozen=True)
class Outcome:
    """What a disturbance's own checks look at once the deploy has ended."""

    code: int  # the deploy's exit
    output: str  # the deploy's output
    started_at: float  # the drill's start
    detected_at: float | None  # when the tool detected what it did


def when_watching(announce: Path, play: Play, stop: threading.Event) -> Path | None:
    """The deploy's record folder once the watcher has logged its first probe; None if the play ended before."""
    while play.running() and not stop.is_set():
        if announce.exists():
            run_dir = Path(announce.read_text().strip())
            if probes_logged(run_dir) >= 1:
                return run_dir
        time.sleep(POLL_S)
    return None


class Disturbance:
    """Nothing is disturbed: the base every kind refines."""

    kind: ClassVar[str | None] = None

    def __init__(self, scene: Scene) -> None:
        self.scene = scene
        self.active = False  # begun and not ended: the cleanup ends it
        self.began_at: float | None = None
        self.ended_at: float | None = None

    def ready(self) -> None:
        """NotReady when it cannot be done against this fleet (checked before anything changes)."""

    def begin(self, run_dir: Path) -> None:
        """Disturb, now; run_dir is the deploy's record folder."""

    def end(self) -> None:
        """Put back what begin() changed."""

    def over(self, run_dir: Path) -> bool:
        """Whether to end now (checked every POLL_S until the deploy ends): once the watcher decided."""
        return watcher_decided(run_dir)

    def during(self, announce: Path, play: Play, stop: threading.Event) -> None:
        """Beside the deploy, in a thread: begin once the watcher watches, end once over or the play ended."""
        try:
            run_dir = when_watching(announce, play, stop)
            if run_dir is None:
                return
            self.begin(run_dir)
            while play.running() and not stop.is_set() and not self.over(run_dir):
                time.sleep(POLL_S)
            self.end()
        except (RunError, OSError) as exc:
            self.scene.note(f"the disturbance failed: {exc}")
            self.scene.say(f"the disturbance failed: {exc}")

    def checks(self, outcome: Outcome) -> list[chk.Check]:
        """The disturbance's own expectations: the tool caught it, while it lasted."""
        return []

    def collateral(self, requests: list[Request], version: str, traffic: chk.Traffic, allowed: int,
                   samples: list[Sample]) -> chk.Check:
        """The failed requests the release did not fail itself: none beyond MAX_COLLATERAL."""
        return chk.check_collateral(traffic, allowed, samples)

    def restore(self) -> None:
        """The drill's cleanup: end it if it is still in force, and note what that took."""
        if not self.active:
            return
        try:
            self.end()
        except RunError as exc:
            self.scene.note(self.not_restored(exc))
        else:
            self.scene.note(self.restored())

    def restored(self) -> str:
        return "ended the disturbance"

    def not_restored(self, exc: RunError) -> str:
        return f"the disturbance could NOT be ended: {exc}"

    def _begun(self, label: str, line: str) -> None:
        self.active, self.began_at = True, self.scene.mark(label, "fault")
        self.scene.say(line)

    def _ended(self, label: str) -> None:
        self.active, self.ended_at = False, self.scene.mark(label, "step")
        self.scene.say(label)

    def _caught_while(self, name: str, what: str, outcome: Outcome) -> chk.Check:
        return chk.check_caught_between(name, what, self.began_at, self.ended_at, outcome.detected_at,
                                        outcome.started_at)


class Undisturbed(Disturbance):
    """No disturbance: nothing runs beside the deploy."""

    def during(self, announce: Path, play: Play, stop: threading.Event) -> None:
        return


class PrometheusStop(Disturbance):
    """prometheus-outage: the Prometheus the watcher reads is stopped, and started again once it decided."""

    kind = STOP_PROMETHEUS

    def ready(self) -> None:
        if self.scene.prom_switch is None:
            raise NotReady("prometheus-outage needs to stop and start Prometheus: on a non-lab inventory set "
                           "PROM_STOP_CMD and PROM_START_CMD")

    @property
    def switch(self) -> PrometheusSwitch:
        assert self.scene.prom_switch is not None
        return self.scene.prom_switch

    def begin(self, run_dir: Path) -> None:
        self.switch.stop()
        self._begun("Prometheus stopped", "Prometheus stopped in the middle of the watch window")

    def end(self) -> None:
        self.switch.start()
        self._ended("Prometheus started again")

    def checks(self, outcome: Outcome) -> list[chk.Check]:
        return [self._caught_while("caught while Prometheus was down", "Prometheus down", outcome)]

    def restored(self) -> str:
        return "started Prometheus again"

    def not_restored(self, exc: RunError) -> str:
        return f"Prometheus could NOT be started again: {exc}"


class WatcherKill(Disturbance):
    """watcher-killed: the watcher is SIGKILLed after its first probe; there is nothing to put back."""

    kind = KILL_WATCHER

    def begin(self, run_dir: Path) -> None:
        pid = watcher_pid(run_dir)
        if pid is None:
            raise RunError(f"no running watcher found for {run_dir}")
        os.kill(pid, signal.SIGKILL)
        self.began_at = self.scene.mark(f"watcher (pid {pid}) killed", "fault")
        self.scene.say(f"killed the watcher (pid {pid}) in the middle of the watch window")

    def over(self, run_dir: Path) -> bool:
        return True

    def checks(self, outcome: Outcome) -> list[chk.Check]:
        return [chk.check_caught_after("caught after the watcher was killed", "killed", self.began_at,
                                       outcome.detected_at, outcome.started_at)]


class PrometheusPartition(Disturbance):
    """partition-prometheus: this machine cut off from the lab's Prometheus (it goes on scraping), healed once
    the watcher decided."""

    kind = CUT_PROMETHEUS

    def begin(self, run_dir: Path) -> None:
        NetworkCut(self.scene.lab_dir).cut_prometheus()
        self._begun("watcher cut off from Prometheus", "the watcher is cut off from Prometheus (what is sent to "
                    "it is dropped; it goes on scraping)")

    def end(self) -> None:
        NetworkCut(self.scene.lab_dir).heal_prometheus()
        self._ended("Prometheus reachable again")

    def checks(self, outcome: Outcome) -> list[chk.Check]:
        return [self._caught_while("caught while Prometheus was cut off", "cut off", outcome)]

    def restored(self) -> str:
        return "healed the cut between the watcher and Prometheus"

    def not_restored(self, exc: RunError) -> str:
        return (f"the cut between the watcher and Prometheus could NOT be healed: {exc}; run edge-canary lab-netns "
                "heal-prometheus")


class NodePartition(Disturbance):
    """partition-node: the canary cut off the network (its link down), healed once the watcher decided."""

    kind = CUT_CANARY

    @property
    def node(self) -> str:
        return self.scene.canary

    def begin(self, run_dir: Path) -> None:
        NetworkCut(self.scene.lab_dir).cut(self.node)
        self._begun(f"{self.node} cut off the network", f"{self.node} cut off the network (its link is down)")

    def end(self) -> None:
        """The node back on the network, and seen up again by every load balancer's checks."""
        NetworkCut(self.scene.lab_dir).heal(self.node)
        self._ended(f"{self.node} back on the network")
        deadline, lbs = time.monotonic() + 60, self.scene.lbs_of(self.node)
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, RuntimeError):
                if all((state := lb_states(lb).get(self.node)) is not None and state.up for lb in lbs):
                    return
            time.sleep(0.5)

    def checks(self, outcome: Outcome) -> list[chk.Check]:
        return [self._caught_while("caught while the canary was cut off", "cut off", outcome)]

    def collateral(self, requests: list[Request], version: str, traffic: chk.Traffic, allowed: int,
                   samples: list[Sample]) -> chk.Check:
        # A cut node fails requests until HAProxy notices: measured and bounded, not forbidden.
        return chk.check_routed_around(requests, version, self.began_at, PARTITION_GRACE_S, allowed, samples,
                                       self.node)

    def restored(self) -> str:
        return f"healed the partition of {self.node}"

    def not_restored(self, exc: RunError) -> str:
        return (f"the partition of {self.node} could NOT be healed: {exc}; run edge-canary lab-netns heal "
                f"{self.node}")


class PeerPartition(NodePartition):
    """partition-peer: the first peer cut off the network after the watcher's first probe, until the deploy
    ended; the roll must stop at it and say so."""

    kind = CUT_PEER

    @property
    def node(self) -> str:
        return self.scene.peers[0]

    def over(self, run_dir: Path) -> bool:
        return False

    def checks(self, outcome: Outcome) -> list[chk.Check]:
        said = re.search(rf"\[{re.escape(self.node)}\]: UNREACHABLE!", outcome.output) is not None
        return [
            chk.Check("the deploy stopped at the cut peer and said so", outcome.code != 0 and said,
                      f"the deploy exited {outcome.code}; {'it named' if said else 'it did NOT name'} {self.node} "
                      "as unreachable"),
            chk.Check("the peer was cut off during the deploy", self.began_at is not None,
                      f"{self.node} cut off {chk.seconds_between(outcome.started_at, self.began_at)} s into the "
                      "drill"),
        ]


# The one class for each kind a scenario can name (None: no disturbance).
KINDS: dict[str | None, type[Disturbance]] = {
    cls.kind: cls for cls in (Undisturbed, PrometheusStop, WatcherKill, PrometheusPartition, NodePartition,
                              PeerPartition)
}


def for_scenario(scenario: Scenario, scene: Scene) -> Disturbance:
    return KINDS[scenario.disturbance](scene)
