"""`make bench` (edge-canary bench): measure time to revert, requests dropped under load (our deploy vs
the naive way), roll time and whole-fleet rollback time as the fleet grows and the watcher's cost on a
lab of its own, and write docs/BENCHMARKS.md.

    edge-canary bench [--runs 3] [--quick] [--fleets "3:1,2 10:1,5,9 30:10"] [--out docs/BENCHMARKS.md]

The bench brings its lab up and down at each fleet size: by default a lab of its own (.lab-bench, ports
24080-24140); LAB_DIR and LAB_*_PORT choose another. --use-running-lab uses the lab that is up as it is,
at its size, and leaves it up; with --phases only some measurements run (the smoke test in `make test`
does that). Exit 0 when every measurement ran, 1 when one failed (the report says which), 2 for bad
arguments.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import json
import os
import platform
import shlex
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any, TypeVar

from edge_canary.bench import lab as lab_io
from edge_canary.bench import pct0 as off
from edge_canary.bench import stats as st
from edge_canary.bench.report import (
    METHOD,
    FleetRollbackResult,
    OpResult,
    Pct0Result,
    Results,
    RevertResult,
    RollResult,
    markdown,
)
from edge_canary.lab.settings import REPO

T = TypeVar("T")
# The bench brings its lab up and down at each fleet size: unless told otherwise it uses a lab of its own,
# so that `make bench` never takes down the lab a developer has running (.lab, ports 18080…).
OWN_LAB = {"LAB_DIR": str(REPO / ".lab-bench"), "LAB_HAPROXY_PORT": "24080", "LAB_ADMIN_TCP_PORT": "24099",
           "LAB_EXPORTER_PORT": "24404", "LAB_PROM_PORT": "24090", "LAB_EDGE_BASE_PORT": "24101"}
# Hosts mode (a network namespace and sshd per node, every playbook over SSH): its own lab folder, subnet and
# ports, so it can stand beside the loopback one. It measures the auto-reverts (section 1's "hosts (SSH)"
# rows); sections 2-8 stay the loopback lab's.
OWN_HOSTS_LAB = {"LAB_DIR": str(REPO / ".lab-bench-hosts"), "LAB_MODE": "hosts", "LAB_SUBNET": "10.212.0.0/24",
                 "LAB_HAPROXY_PORT": "24580", "LAB_ADMIN_TCP_PORT": "24599", "LAB_EXPORTER_PORT": "24904",
                 "LAB_PROM_PORT": "24590", "LAB_EDGE_BASE_PORT": "24601"}
HOSTS_PHASES = ("revert",)
PHASES = ("pct0", "green", "rollback", "rollbackn", "naive", "revert", "roll", "fleetrollback", "watcher")
RELEASES = {"v1": "", "v2": "", "v2-errors": "errors=0.2:502", "v2-slow": "latency=0.6"}
CANARY = "edge-1"
LAB_SLOW_S = 0.3  # group_vars/lab.yml prom_p95_threshold_s: an answer slower than this is a bad answer
LAB_INTERVAL_S = 3.0  # group_vars/lab.yml sli_probe_interval
LAB_WINDOW_S = 30.0  # group_vars/lab.yml sli_window
SCRAPE_S = 1.0  # group_vars/lab.yml sli_watch_scrape_interval
GREEN_BASELINE_S = 30.0  # seconds of steady load before a green deploy: the p99 baseline
# Five probes: the first after the canary is back in rotation may see too few of its requests (its ramp), and a
# promotion survives one such probe only out of five (tests/helpers/watch_window.py).
MIN_GREEN_WINDOW_S = 5 * LAB_INTERVAL_S
RANGE_S = max(LAB_INTERVAL_S, 4 * SCRAPE_S)  # the watcher's default probe range for these settings


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="edge-canary bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="repetitions of each measurement (default 3)")
    parser.add_argument("--quick", action="store_true", help="one run, 3 nodes, shorter windows")
    parser.add_argument("--fleets", default="3:1,2 10:1,5,9 30:10",
                        help='fleet sizes and batch sizes for the roll and fleet-rollback times, e.g. "3:1,2 10:1,5"')
    parser.add_argument("--forks", default="",
                        help='Ansible forks for the rolls, several to compare them, e.g. "5 10 32" (default: '
                             "ansible.cfg's)")
    parser.add_argument("--roll-runs", type=int, default=0,
                        help="repetitions of each roll and fleet rollback (default: --runs)")
    parser.add_argument("--phases", default=",".join(PHASES), help=f"comma-separated subset of {PHASES}")
    parser.add_argument("--isolate-controller", action="store_true",
                        help="run the lab and the load on the first CPU and the deploys' and rollbacks' controller on "
                             "the others, as a controller on its own machine would be (the lab's p99 then shows the "
                             "deploy's own cost)")
    parser.add_argument("--rps", type=float, default=50.0, help="steady load through HAProxy (default 50)")
    parser.add_argument("--watcher-seconds", type=float, default=300.0, help="how long the watcher is measured")
    parser.add_argument("--green-window", type=float, default=LAB_WINDOW_S,
                        help=f"SLI window of the green deploys and rolls, at least {MIN_GREEN_WINDOW_S:g} s "
                             f"(default {LAB_WINDOW_S:g}, the lab's)")
    parser.add_argument("--lab-mode", choices=("loopback", "hosts"), default="loopback",
                        help="the bench lab's mode (hosts: every node over SSH; phases " + ",".join(HOSTS_PHASES) + ")")
    parser.add_argument("--use-running-lab", action="store_true", help="use the lab that is up; leave it up")
    parser.add_argument("--out", default=str(REPO / "docs/BENCHMARKS.md"), help="the report to write")
    parser.add_argument("--json", default="", help="also write the raw results as JSON to this file")
    parser.add_argument("--merge", default="",
                        help="a --json file of an earlier bench run: keep its results for the phases not run now")
    parser.add_argument("--work", default="", help="folder for logs and load lines (default: <lab>/bench)")
    args = parser.parse_args(argv)
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    unknown = sorted(set(phases) - set(PHASES))
    if unknown:
        parser.error(f"unknown phase(s) {', '.join(unknown)}; choose from {', '.join(PHASES)}")
    if args.lab_mode == "hosts" and set(phases) - set(HOSTS_PHASES):
        parser.error(f"--lab-mode hosts measures only {', '.join(HOSTS_PHASES)}; "
                     f"drop {', '.join(sorted(set(phases) - set(HOSTS_PHASES)))} from --phases")
    args.phases = phases
    args.roll_runs = args.roll_runs or args.runs
    if args.isolate_controller and args.use_running_lab:
        parser.error("--isolate-controller needs the bench's own lab, started on the lab's CPU; "
                     "drop --use-running-lab")
    if not MIN_GREEN_WINDOW_S <= args.green_window <= 3600:
        parser.error(f"--green-window {args.green_window:g} is out of range; use {MIN_GREEN_WINDOW_S:g} to 3600 "
                     "seconds (a promotion needs five probes)")
    if not 1 <= args.runs <= 20:
        parser.error(f"--runs {args.runs} is out of range; use 1 to 20")
    try:
        args.fleets = parse_fleets(args.fleets)
        args.forks = parse_forks(args.forks)
    except ValueError as err:
        parser.error(str(err))
    if args.quick:
        args.runs, args.fleets = 1, [(3, [1, 2])]
        args.watcher_seconds = min(args.watcher_seconds, 30.0)
    batch = max(b for _, batches in args.fleets for b in batches)
    few = [f for f in args.forks if f is not None and f < batch]
    if few:
        parser.error(f"--forks {few[0]} is less than the batch of {batch} in --fleets: a deploy refuses a batch "
                     "bigger than its forks")
    return args


# Which phase measures each operation of the report (an earlier run's are kept unless that phase runs again).
OP_PHASES = {"green": "green", "green-check": "green", "rollback": "rollback", "rollback-batch": "rollbackn",
             "naive": "naive", "revert-v2-errors": "revert", "revert-v2-slow": "revert"}


def kept_rolls(old: list[dict[str, Any]], phases: Collection[str],
               fleets: Sequence[tuple[int, Sequence[int]]]) -> list[dict[str, Any]]:
    """An earlier run's rolls this run does not redo: all of them without the roll phase, else those of
    other fleet sizes and batches (a 100-node roll then joins the earlier 3-, 10- and 30-node ones in the fit)."""
    redone = {(nodes, batch) for nodes, batches in fleets for batch in batches} if "roll" in phases else set()
    return [roll for roll in old if (roll["nodes"], roll["batch"]) not in redone]


def kept_reverts(old: list[dict[str, Any]], phases: Collection[str], mode: str) -> list[dict[str, Any]]:
    """An earlier run's auto-reverts this run does not redo: a revert measured on the other kind of lab
    (loopback, hosts) is a row of its own, kept even when this run measures reverts."""
    return [r for r in old if "revert" not in phases or r.get("lab", "loopback") != mode]


def parse_forks(text: str) -> list[int | None]:
    """--forks: whole numbers of at least 1; none given is ansible.cfg's setting (None)."""
    items = text.split()
    if not items:
        return [None]
    # ASCII digits only: str.isdigit() also takes "²", which int() then refuses with its own message.
    if not all(item.isascii() and item.isdigit() and int(item) >= 1 for item in items):
        raise ValueError(f'--forks {text!r} is not whole numbers of at least 1 (e.g. "5 10 32")')
    return [int(item) for item in items]


def parse_fleets(text: str) -> list[tuple[int, list[int]]]:
    fleets = []
    for item in text.split():
        nodes_text, _, batches_text = item.partition(":")
        try:
            nodes = int(nodes_text)
            batch_sizes = [int(b) for b in batches_text.split(",")] if batches_text else [1]
        except ValueError:
            raise ValueError(f'--fleets item {item!r} is not NODES:BATCH,BATCH (e.g. "10:1,5")') from None
        if nodes < 2 or any(not 1 <= b < nodes for b in batch_sizes):
            raise ValueError(f"--fleets item {item!r}: need at least 2 nodes and batch sizes from 1 to nodes-1")
        fleets.append((nodes, batch_sizes))
    if not fleets:
        raise ValueError('--fleets is empty; e.g. "3:1,2 10:1,5"')
    return fleets


def machine() -> str:
    cpus = os.cpu_count() or 0
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    try:
        meminfo = Path("/proc/meminfo").read_text().splitlines()
        mem = int(next(line for line in meminfo if line.startswith("MemTotal")).split()[1])
        mem_text = f", {mem / 1024 / 1024:.1f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        mem_text = ""
    return (f"{platform.system()} {platform.release()}, {cpus} CPUs{mem_text}, Python {platform.python_version()}; "
            f"load average at the start {load}")


def shared_note(start: float, end: float) -> str:
    cpus = os.cpu_count() or 1
    busy = max(start, end) >= 0.5 * cpus
    return (f"1-minute load average {start:.1f} at the start and {end:.1f} at the end on {cpus} CPUs"
            + (": the machine was shared with other labs and test runs, so absolute times are inflated; "
               "counts and ratios are the figures to compare." if busy else "."))


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        work = Path(args.work) if args.work else None
        self.lab = lab_io.lab_handle(work or Path("."), args.isolate_controller)
        if not args.use_running_lab and not self.lab.env.get("LAB_DIR"):
            self.lab.env.update(OWN_HOSTS_LAB if args.lab_mode == "hosts" else OWN_LAB)
        self.lab.work = work or self.lab.lab_dir / "bench"
        self.lab.work.mkdir(parents=True, exist_ok=True)
        self.window = 20.0 if args.quick else LAB_WINDOW_S
        self.green_window = args.green_window
        self.results = Results(mode="quick" if args.quick else "full", machine=machine(),
                               date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), command=self.command(),
                               settings={"runs": args.runs, "rps": args.rps,
                                         "probe interval": f"{LAB_INTERVAL_S:g} s",
                                         "scrape interval": f"{SCRAPE_S:g} s",
                                         "revert SLI window": f"{self.window:g} s",
                                         "green SLI window": f"{self.green_window:g} s",
                                         **({"controller": "on CPUs of its own"} if args.isolate_controller
                                            else {})})
        self.failures: list[str] = []
        self.load_at_start = os.getloadavg()[0]
        self.artifacts: dict[str, Path] = {}
        self.lab_started = False  # by this bench

    def command(self) -> str:
        a = self.args
        if a.quick:
            return "make bench BENCH_QUICK=1"
        fleets = " ".join(f"{n}:{','.join(map(str, b))}" for n, b in a.fleets)
        phases = "" if list(a.phases) == list(PHASES) else f"--phases {','.join(a.phases)} "
        merge = f" --merge {a.merge}" if a.merge else ""
        mode = "--lab-mode hosts " if a.lab_mode == "hosts" else ""
        forks = f" --forks \"{' '.join(map(str, a.forks))}\"" if a.forks != [None] else ""
        isolate = " --isolate-controller" if a.isolate_controller else ""
        window = f" --green-window {a.green_window:g}" if a.green_window != LAB_WINDOW_S else ""
        return (f"make bench BENCH_RUNS={a.runs} BENCH_ARGS='{mode}{phases}--roll-runs {a.roll_runs} "
                f"--fleets \"{fleets}\"{forks}{isolate}{window} --watcher-seconds {a.watcher_seconds:g}{merge}'")

    def say(self, line: str) -> None:
        print(f"bench | {time.strftime('%H:%M:%S')} {line}", flush=True)

    def fail(self, what: str) -> None:
        self.failures.append(what)
        self.results.notes.append(f"FAILED: {what}")
        self.say(f"FAILED: {what}")

    # --- set-up -----------------------------------------------------------------------------------
    def build_artifacts(self) -> None:
        folder = self.lab.work / "artifacts"
        folder.mkdir(parents=True, exist_ok=True)
        for version, fault in RELEASES.items():
            path = folder / f"edge-{version}"
            argv = [sys.executable, "-m", "edge_canary", "build-artifact", "--version", version, "--out", str(path)]
            if fault:
                argv += ["--fault", fault]
            if self.lab.run(argv, "artifacts.log", 120) != 0:
                raise lab_io.BenchError(f"could not build {version}; see {self.lab.log('artifacts.log')}")
            self.artifacts[version] = path

    def ensure_lab(self, nodes: int) -> None:
        if self.args.use_running_lab:
            return
        # A lab this bench did not start runs on every CPU: with --isolate-controller it is started again.
        if ((self.lab.lab_dir / "settings.json").exists() and self.lab.settings.nodes == nodes and self.lab_is_up()
                and (self.lab_started or not self.args.isolate_controller)):
            return
        self.say(f"lab: bringing up {nodes} nodes in {self.lab.lab_dir}"
                 + (f" on CPU {lab_io.split_cpus(os.sched_getaffinity(0))[0]}, the controller on the others"
                    if self.args.isolate_controller else ""))
        self.lab.down()
        self.lab.up(nodes)
        self.lab_started = True

    def lab_is_up(self) -> bool:
        return all(lab_io.node_version(url) is not None for url in self.lab.node_urls().values())

    def ensure_v1(self) -> None:
        """Every measurement starts from a fleet serving v1. The nodes that are not are rolled back to the v1
        artifact (make rollback ROLLBACK_BINARY=…: drain, restore, restart, health, ready), not deployed to
        it: a deploy goes through the SLI gate, which on a busy machine can hold for want of evidence and
        stop before the peers, leaving the fleet mixed (the cause of "could not bring the fleet back")."""
        for attempt in (1, 2):
            if lab_io.wait_serving(self.lab, "v1", 5):
                return
            others = [n for n, url in self.lab.node_urls().items() if lab_io.node_version(url) != "v1"]
            self.say(f"{', '.join(others)} not on v1: rolling back to the v1 artifact (not measured, try {attempt})")
            code, _, _ = lab_io.rollback(self.lab, f"restore-v1-{attempt}", ",".join(others),
                                         batch=max(1, len(others)), binary=self.artifacts["v1"], version="v1")
            if code != 0:
                self.say(f"restore-v1-{attempt} exited {code}; see {self.lab.log(f'restore-v1-{attempt}.log')}")
        if not lab_io.wait_serving(self.lab, "v1", 60):
            raise lab_io.BenchError(f"could not bring the fleet back to v1 in two tries; see {self.lab.work}/logs")

    # --- one operation under load ----------------------------------------------------------------------
    def under_load(self, label: str, action: Callable[[], T], baseline: float = 5.0,
                   tail: float = 3.0) -> tuple[T, list[st.Request]]:
        load = lab_io.Load(self.lab.lb_url, self.args.rps, self.lab.work / f"{label}.jsonl",
                           self.lab.pinned([], "lab")).start()
        try:
            time.sleep(baseline + 1.0)
            outcome = action()
            time.sleep(tail)
        finally:
            lines = load.stop()
        return outcome, st.parse_requests(lines)

    def op_result(self, op: str, run: int, code: int, start: float, end: float, requests: list[st.Request],
                  release: str | None = None) -> OpResult:
        first = min((r.start for r in requests), default=start)
        window = st.between(requests, start, end)
        drops = st.count_drops(window, release)
        result = OpResult(op, run, code, end - start, drops.sent, drops.dropped, drops.not_sent, drops.by_release,
                          st.p99(st.between(requests, first + 1.0, start)), st.p99(window, exclude_version=release))
        if self.lab.settings.mode == "loopback":  # sections 2-3 are the loopback lab's; hosts mode only logs them
            self.results.ops.append(result)
        self.say(f"{op} run {run}: exit {code}, {drops.dropped} dropped of {drops.sent} "
                 f"({drops.not_sent} not sent, {drops.by_release} the release's own), {end - start:.1f} s")
        return result

    # --- the phases ------------------------------------------------------------------------------------
    def green(self, run: int) -> None:
        self.ensure_v1()
        # Its check-mode twin first, under the same load: the same plays from the same controller, no node
        # drained, pushed or restarted. Its p99 rise is the lab machine's contention, not the deploy's.
        checked, requests = self.under_load(f"green-check-{run}", lambda: lab_io.deploy(
            self.lab, f"green-check-{run}", self.artifacts["v2"], CANARY, 1, self.green_window, LAB_INTERVAL_S, 5,
            check=True), baseline=GREEN_BASELINE_S)
        self.op_result("green-check", run, checked.code, checked.started, checked.ended, requests)
        if checked.code != 0:
            self.fail(f"check-mode deploy run {run} exited {checked.code}; "
                      f"see {self.lab.log(f'green-check-{run}.log')}")
        # A 30 s baseline (1500 requests at 50 rps): the p99 of a 5 s one is its 3rd slowest request, too
        # noisy to hold the deploy's p99 against.
        deployed, requests = self.under_load(f"green-{run}", lambda: lab_io.deploy(
            self.lab, f"green-{run}", self.artifacts["v2"], CANARY, 1, self.green_window, LAB_INTERVAL_S, 5),
            baseline=GREEN_BASELINE_S)
        self.op_result("green", run, deployed.code, deployed.started, deployed.ended, requests)
        if deployed.code != 0:
            self.fail(f"green deploy run {run} exited {deployed.code}; see {self.lab.log(f'green-{run}.log')}")
        self.record_roll(deployed, 1)

    def rollback(self, run: int) -> None:
        """Every node, one at a time, from a fleet on v2 (v1 its .previous)."""
        self.fleet_on_v2(run, "rollback")
        self.rollback_in_batches(run, 1, "rollback")

    def rollbackn(self, run: int) -> None:
        """Every node but one in one batch (BATCH=n, MAX_UNAVAILABLE=n): one node keeps serving."""
        self.fleet_on_v2(run, "rollback-batch")
        self.rollback_in_batches(run, max(1, len(self.lab.node_urls()) - 1), "rollback-batch")

    def fleet_on_v2(self, run: int, op: str) -> None:
        """A rollback is measured from a fleet on v2 with v1 as .previous: the green deploy's, when it just ran;
        otherwise v2 is deployed first (not measured). Without it a rollback re-measured after the first
        restores nothing and times a no-op."""
        if lab_io.wait_serving(self.lab, "v2", 5):
            return
        self.ensure_v1()
        label = f"to-v2-{op}-{run}"
        self.say(f"{op} run {run}: deploying v2 first (not measured)")
        self.under_load(label, lambda: lab_io.deploy(
            self.lab, label, self.artifacts["v2"], CANARY, 5, self.green_window, LAB_INTERVAL_S, 5))
        if not lab_io.wait_serving(self.lab, "v2", 30):
            raise lab_io.BenchError(f"{op} run {run}: the fleet is not on v2; see {self.lab.log(f'{label}.log')}")

    def rollback_in_batches(self, run: int, batch: int, op: str) -> None:
        label = f"{op}-{run}"
        (code, start, end), requests = self.under_load(label, lambda: lab_io.rollback(
            self.lab, label, "all", batch=batch))
        self.op_result(op, run, code, start, end, requests)
        if code != 0:
            self.fail(f"{op} run {run} exited {code}; see {self.lab.log(f'{label}.log')}")
        elif not lab_io.wait_serving(self.lab, "v1", 30):
            self.fail(f"{op} run {run} exited 0 but the fleet is not back on v1, its .previous; "
                      f"see {self.lab.log(f'{label}.log')}")

    def naive(self, run: int) -> None:
        before = {node: lab_io.node_version(url) for node, url in self.lab.node_urls().items()}
        saved = lab_io.save_binaries(self.lab, self.lab.work / "saved-binaries")
        new = {node: self.artifacts["v2"] for node in saved}
        (start, end), requests = self.under_load(f"naive-{run}", lambda: lab_io.naive_swap(self.lab, new))
        self.op_result("naive", run, 0, start, end, requests)
        lab_io.naive_swap(self.lab, saved)  # put the fleet's own binaries back (not measured)
        if not lab_io.wait_versions(self.lab, before, 60):
            self.fail("the fleet did not come back to its own binaries after the naive deploy")

    def revert(self, run: int, release: str) -> None:
        self.ensure_v1()
        poller = lab_io.VersionPoller(self.lab.node_urls()[CANARY]).start()

        def act() -> tuple[lab_io.DeployRun, float]:
            deployed = lab_io.deploy(self.lab, f"revert-{release}-{run}", self.artifacts[release], CANARY, 1,
                                     self.window, LAB_INTERVAL_S, 5)
            lab_io.wait_idle_watchers(self.lab)
            lab_io.wait_serving(self.lab, "v1", 60)
            return deployed, time.time()

        try:
            (deployed, back), requests = self.under_load(f"revert-{release}-{run}", act)
        finally:
            samples = poller.stop()
        self.op_result(f"revert-{release}", run, deployed.code, deployed.started, back, requests, release=release)
        first_bad = st.first_bad_answer(requests, release, LAB_SLOW_S)
        restored = st.first_seen(samples, "v1", first_bad) if first_bad is not None else None
        verdict = "?"
        with contextlib.suppress(OSError, ValueError):
            verdict = str(json.loads((deployed.run_dir / "verdict.json").read_text()).get("verdict", "?"))
        timeline = st.watcher_timeline(lab_io.decision_records(deployed.run_dir))
        result = RevertResult(release, run, verdict, first_bad, restored, timeline.started_at, timeline.red_at,
                              timeline.revert_s, st.last_bad_answer(requests, release, LAB_SLOW_S),
                              self.lab.settings.mode, timeline.verdict_at)
        self.results.reverts.append(result)
        self.say(f"revert {release} run {run}: verdict {verdict}, time to revert {result.seconds}")
        if result.seconds is None or verdict != "reverted":
            self.fail(f"auto-revert of {release} run {run}: verdict {verdict}, time to revert not measured; "
                      f"see {self.lab.log(f'revert-{release}-{run}.log')}")

    def record_roll(self, deployed: lab_io.DeployRun, batch: int) -> None:
        records = lab_io.node_records(deployed.run_dir)
        canary = records.get(CANARY, {})
        peers = [r for n, r in records.items() if n != CANARY]
        canary_span = st.node_span(canary)
        peer_spans = [s for s in (st.node_span(r) for r in peers) if s is not None]
        roll = None
        if canary_span is not None and peer_spans and len(peer_spans) == len(peers):
            roll = (canary_span[1] - canary_span[0]) + (max(e for _, e in peer_spans) - min(s for s, _ in peer_spans))
        steps: dict[str, list[float]] = {}
        for record in records.values():
            for step, secs in st.step_durations(record).items():
                steps.setdefault(step, []).append(secs)
        nodes = len(records)
        cost = lab_io.task_cost(deployed.cost_file, CANARY)
        result = RollResult(nodes, batch, st.batches(nodes - 1, batch), deployed.code,
                            deployed.ended - deployed.started, roll, {k: st.median(v) or 0.0 for k, v in steps.items()},
                            deployed.cpu_s, cost.module_runs_per_peer, cost.results_per_peer, deployed.module_cpu_s,
                            cost.forks)
        if deployed.code == 0 and roll is not None:
            self.results.rolls.append(result)
        self.last_junit = deployed.junit_dir

    def rolls(self) -> None:
        version = "v2"
        for nodes, batch_sizes in self.args.fleets:
            self.ensure_lab(nodes)
            # every roll changes every node: v1 → v2, then back, from wherever the fleet is
            if lab_io.wait_serving(self.lab, "v2", 5):
                version = "v1"
            else:
                self.ensure_v1()
                version = "v2"
            # Several forks settings take turns run by run, so that the machine's drift is shared between them.
            rolls = [(batch, run, forks) for batch in batch_sizes for run in range(1, self.args.roll_runs + 1)
                     for forks in self.args.forks]
            for batch, run, forks in rolls:
                label = f"roll-{nodes}x{batch}{f'-forks{forks}' if forks else ''}-{run}"
                self.say(f"{label}: deploying {version} to {nodes} nodes in batches of {batch}")
                deployed, _ = self.under_load(label, functools.partial(
                    lab_io.deploy, self.lab, label, self.artifacts[version], CANARY, batch, self.green_window,
                    LAB_INTERVAL_S, 5, forks=forks), 2.0, 0.0)
                if deployed.code != 0:
                    self.fail(f"{label} exited {deployed.code}; see {self.lab.log(label + '.log')}")
                    continue
                self.record_roll(deployed, batch)
                self.say(f"{label}: roll {self.results.rolls[-1].roll_s} s, "
                         f"wall {deployed.ended - deployed.started:.1f} s")
                version = "v1" if version == "v2" else "v2"
            tasks: Counter[str] = Counter()
            if getattr(self, "last_junit", None):
                tasks = lab_io.junit_task_times(self.last_junit)
            self.results.slow_tasks = [(name, secs) for name, secs in tasks.most_common(12)]

    def fleet_rollbacks(self) -> None:
        """make rollback NODES=all BATCH=n at each fleet size and batch of --fleets, --roll-runs times each."""
        for nodes, batch_sizes in self.args.fleets:
            self.ensure_lab(nodes)
            for batch in batch_sizes:
                for run in range(1, self.args.roll_runs + 1):
                    version = "v1" if lab_io.wait_serving(self.lab, "v2", 5) else "v2"
                    label = f"fleet-rollback-{nodes}x{batch}-{run}"
                    self.say(f"{label}: rolling every node back to the {version} artifact in batches of {batch}")
                    code, start, end = lab_io.rollback(self.lab, label, "all", batch=batch,
                                                       binary=self.artifacts[version], version=version)
                    self.results.fleet_rollbacks.append(FleetRollbackResult(nodes, batch, run, code, end - start))
                    self.say(f"{label}: exit {code}, {end - start:.1f} s")
                    if code != 0:
                        self.fail(f"{label} exited {code}; see {self.lab.log(label + '.log')}")

    def pct0(self, run: int) -> None:
        result = off.off_switch(self.lab, run)
        self.results.pct0.append(result)
        self.say(f"rollout PCT=0 run {run}: exit {result.code}, in force on every node after {result.in_force_s} s, "
                 f"command {result.wall_s:.1f} s, {result.cpu_s:.1f} CPU-s")
        if result.code != 0 or result.in_force_s is None:
            self.fail(f"rollout PCT=0 run {run} exited {result.code}; see {off.log_path(self.lab, run)}")

    def watcher(self) -> None:
        self.ensure_v1()
        cost, _ = self.under_load("watcher", lambda: lab_io.watcher_cost(
            self.lab, self.args.watcher_seconds, LAB_INTERVAL_S, CANARY), baseline=3.0, tail=0.0)
        self.results.watcher = {
            "elapsed_s": cost.elapsed_s, "cpu_s": cost.cpu_s,
            "cpu_per_hour": st.per_hour(cost.steady_cpu_s, cost.steady_s),
            "peak_rss_mib": None if cost.peak_rss_kib is None else cost.peak_rss_kib / 1024, "probes": cost.probes,
            "queries": cost.queries, "queries_per_probe": st.ratio(cost.queries, cost.probes)}
        self.say(f"watcher: {self.results.watcher}")
        if cost.probes == 0:
            self.fail(f"the watcher made no probe; see {self.lab.work}/watcher-cost/watcher.log")

    def guarded(self, what: str, step: Callable[[], None]) -> None:
        """Run one measurement; a crash in it is recorded as a failure and the bench goes on."""
        try:
            step()
        except lab_io.BenchError:
            raise
        except Exception as err:  # noqa: BLE001 - the report must still be written
            with self.lab.log("crash.log").open("a") as log:
                log.write(f"--- {what}\n{traceback.format_exc()}\n")
            self.fail(f"{what} crashed: {err!r}; see {self.lab.log('crash.log')}")

    # --- all of it ---------------------------------------------------------------------------------------
    def merge(self, path: Path) -> None:
        """Carry over an earlier run's results for the phases this run does not measure again."""
        old = json.loads(path.read_text())
        phases = set(self.args.phases)
        mode = self.lab.settings.mode
        self.results.ops += [OpResult(**o) for o in old.get("ops", [])
                             if mode == "hosts" or OP_PHASES.get(o["op"]) not in phases]
        if "pct0" not in phases:
            self.results.pct0 += [Pct0Result(**r) for r in old.get("pct0", [])]
        self.results.reverts += [RevertResult(**r) for r in kept_reverts(old.get("reverts", []), phases, mode)]
        self.results.rolls += [RollResult(**r) for r in kept_rolls(old.get("rolls", []), phases, self.args.fleets)]
        if "roll" not in phases:
            self.results.slow_tasks = [(str(name), float(secs)) for name, secs in old.get("slow_tasks", [])]
        if "watcher" not in phases:
            self.results.watcher = old.get("watcher", {})
        if "fleetrollback" not in phases:
            self.results.fleet_rollbacks += [FleetRollbackResult(**r) for r in old.get("fleet_rollbacks", [])]
        measured = {"pct0": ("rollout PCT=0",), "green": ("green deploy", "roll-"), "roll": ("roll-",),
                    "revert": ("auto-revert",), "rollback": ("rollback run",),
                    "rollbackn": ("rollback-batch", "rollbackn"), "naive": ("naive",),
                    "watcher": ("watcher", "the watcher"), "fleetrollback": ("fleet-rollback", "fleet rollbacks")}
        redone = tuple(prefix for phase in phases for prefix in measured.get(phase, ()) if mode != "hosts")
        kept = [f for f in old.get("failures", []) if not f.startswith(redone)]
        self.failures += kept
        self.results.notes += [f"FAILED (earlier run): {f}" for f in kept]
        self.results.notes.append(f"merged with an earlier run of {old.get('date', '?')} for the phases not re-run "
                                  f"here ({old.get('command', '?')})")

    def run(self) -> int:
        started = time.time()
        if self.args.merge:
            self.merge(Path(self.args.merge))
        phases = self.args.phases
        if self.lab.settings.mode == "hosts" and set(phases) - set(HOSTS_PHASES):
            raise SystemExit(f"edge-canary bench: the lab in {self.lab.lab_dir} is in hosts mode, which measures "
                             f"only {', '.join(HOSTS_PHASES)}; choose --phases among them")
        self.build_artifacts()
        first_fleet = self.args.fleets[0][0]
        try:
            self.ensure_lab(3 if not self.args.use_running_lab else first_fleet)
            for run in range(1, self.args.runs + 1):
                steps: list[tuple[str, Callable[[], None]]] = []
                if "revert" in phases:
                    steps += [(f"auto-revert {r}", functools.partial(self.revert, run, r))
                              for r in ("v2-errors", "v2-slow")]
                steps += [(p, functools.partial(getattr(self, p), run))
                          for p in ("pct0", "green", "rollback", "rollbackn", "naive") if p in phases]
                for name, step in steps:
                    self.say(f"{name} run {run}")
                    self.guarded(f"{name} run {run}", step)
            if "watcher" in phases:
                self.say(f"watcher cost over {self.args.watcher_seconds:g} s")
                self.guarded("watcher cost", self.watcher)
            if "fleetrollback" in phases:
                self.guarded("fleet rollbacks", self.fleet_rollbacks)
            if "roll" in phases:
                self.guarded("roll times", self.rolls)
        except lab_io.BenchError as err:
            self.fail(str(err))
        finally:
            if not self.args.use_running_lab:
                self.say("lab: taking the bench lab down")
                self.lab.down()
        self.results.settings["bench wall time"] = f"{(time.time() - started) / 60:.1f} min"
        self.results.notes.append(shared_note(self.load_at_start, os.getloadavg()[0]))
        floor = st.floor_seconds(SCRAPE_S, RANGE_S, LAB_INTERVAL_S, 1)
        out = Path(self.args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(markdown(self.results, METHOD, LAB_INTERVAL_S, floor))
        if self.args.json:
            Path(self.args.json).write_text(json.dumps(
                {**dataclasses.asdict(self.results), "failures": self.failures, "floor_s": floor}, indent=2))
        self.say(f"wrote {out}{' with failures: ' + '; '.join(self.failures) if self.failures else ''}")
        return 1 if self.failures else 0


def main(argv: list[str] | None = None) -> int:
    given = sys.argv[1:] if argv is None else argv
    args = parse_args(given)
    print(f"bench: {shlex.join(['edge-canary', 'bench', *given])}", flush=True)
    return Bench(args).run()
