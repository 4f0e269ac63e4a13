"""docs/BENCHMARKS.md from the bench's results (pure: results in, markdown out)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from edge_canary.bench.stats import Fit, fit_roll_time, median, ratio, slope

# How the figures are measured: the report's Method section.
METHOD = """\
Everything runs on one local lab (`scripts/lab-up.sh`: supervisord, one HAProxy, Prometheus scraping every
second, edge nodes on loopback) with the lab's own background traffic off. `edge-canary loadgen` sends a steady
open-loop load through HAProxy (`/api`, fixed rate, one JSON line per request with its start, latency, status
and the `X-Edge-Version` that answered). Every operation starts after a quiet baseline of load and the load runs
on a few seconds after it ends.

- **Dropped** = requests in the operation's window (its start to its end) that did not get a 2xx/3xx answer,
  *except* failures answered by the broken release itself (its version header): those are the release doing
  what it was built to do and the reason for the revert, not a cost of the deploy. Requests the load generator
  could not send because 64 were already in flight are counted as dropped (the fleet stalled) and shown apart.
- **p99 before / during**: nearest-rank p99 latency of answered requests in the baseline and in the operation's
  window; for the auto-reverts the slow release's own answers are left out of "during".
- **Check-mode twin**: before each green deploy, the same deploy with `--check --diff` (as `CHECK=1` runs it)
  under the same load: the controller does the same plays on the same machine and no node is drained, pushed
  or restarted, so its p99 rise is the lab machine's own contention, not the deploy's.
- **Controller on CPUs of its own**: with `--isolate-controller` (the settings line then says so), the lab
  (supervisord, so HAProxy, the nodes and Prometheus) and the load generator run on the first CPU, each deploy's
  and rollback's ansible-playbook and everything it starts (the module runs too) on the others, as a controller
  on its own machine would. Without it, the controller's process start-ups (a worker per task and host, a Python
  per module run) share the CPUs with HAProxy and the nodes and raise their p99, whatever the controller's
  priority.
- **Green deploy / rollback / auto-revert**: the real `playbooks/deploy-canary.yml` (canary edge-1, SLI gate by
  the real watcher, peers in batches) and `playbooks/rollback.yml`, run as `make deploy-canary` runs them.
- **Naive deploy**: done by hand by the bench, not by our playbooks: for each node in turn, copy the new binary
  over the old one and `supervisorctl restart` it, with no drain and no health wait.
- **Exposure**: from the first bad answer the canary served through HAProxy to the last one (what users saw of
  the broken release), and from the watcher's red verdict (the probe that decided, in its decision log) to
  that last bad answer: how long the canary stayed in rotation once the watcher knew. The "hosts (SSH)" rows
  come from a hosts-mode lab (`--lab-mode hosts`: a network namespace and sshd per node, every play over real
  SSH), the same deploys and the same watcher.
- **Rollback batch 1 / batch n**: `make rollback NODES=all`, one node at a time, and `BATCH=n` with n = every
  node but one (one batch; one node keeps serving), each from a fleet on v2 with v1 as `.previous` (the green
  deploy's, or deployed first, not measured) and checked back on v1 after it.
- **Off switch**: `make rollout PCT=0` from rollout_pct=40 on every node, until every node's gauge shows 0.
- **Controller cost**: CPU seconds of each deploy's ansible-playbook and every process it ran (getrusage of the
  bench's waited-for children), split into the module runs' own CPU (each run logs it through
  edge_canary/bench/module_cpu.sh) and the rest (Ansible's controller: ansible-playbook and its workers), with
  module runs and task results per peer counted by the bench's callback.
- **Time to revert**: from the first bad answer the canary served (the first answer with the release's version
  that failed or took longer than the lab's p95 SLO, 0.3 s; the answer's own time, start + latency) to the first
  time the canary's own `/version`, polled directly every 0.2 s, answers the previous version again.
- **Roll time**: from the per-node step timestamps the deploy records (runs/<id>/nodes/<node>.json): the canary's
  roll plus the span of the peers' rolls, i.e. without preflight and without the SLI gate (whose length is a
  setting). Deploys alternate between v2 and v1 so every one rolls the whole fleet. Per-task times come from
  ansible-core's junit callback.
- **Fleet rollback**: `make rollback NODES=all BATCH=n` at each fleet size, timed from the command's start to its
  end, ROLLBACK_BINARY set to v1 and v2 in turn so that every run restores every node.
- **Watcher cost**: `python -m watcher` in shadow mode (`--revert-action none`) watching edge-1 against the rest
  under load, its CPU (utime+stime) and peak RSS (VmHWM) read from /proc while it runs, its Prometheus queries
  counted by a pass-through proxy the bench puts in front of Prometheus.
- Each figure is the median of the repeated runs; the per-run values are listed beside it."""


@dataclass(frozen=True)
class OpResult:
    """One operation under steady load: what the clients saw."""

    op: str
    run: int
    code: int
    seconds: float
    sent: int
    dropped: int
    not_sent: int
    by_release: int
    p99_before_s: float | None
    p99_during_s: float | None


def _diff(end: float | None, start: float | None) -> float | None:
    return None if end is None or start is None else end - start


@dataclass(frozen=True)
class RevertResult:
    release: str
    run: int
    verdict: str
    first_bad_at: float | None
    restored_at: float | None
    watcher_started_at: float | None = None
    red_at: float | None = None
    revert_play_s: float | None = None
    last_bad_at: float | None = None
    lab: str = "loopback"  # the lab's mode: loopback, or hosts (every node over SSH)
    verdict_at: float | None = None  # the watcher's red verdict (the probe that decided)

    @property
    def exposure(self) -> float | None:
        """First bad answer → the last bad answer the release served (through HAProxy)."""
        return _diff(self.last_bad_at, self.first_bad_at)

    @property
    def served_after_verdict(self) -> float | None:
        """The red verdict → the last bad answer served: how long the canary stayed in rotation after it."""
        return _diff(self.last_bad_at, self.verdict_at)

    @property
    def until_watching(self) -> float | None:
        """First bad answer → the watcher's start (the rest of the canary's roll and the SLI gate's set-up)."""
        return _diff(self.watcher_started_at, self.first_bad_at)

    @property
    def detection(self) -> float | None:
        """The watcher's start (or the first bad answer, when later) → its first red probe."""
        start = max(t for t in (self.watcher_started_at, self.first_bad_at) if t is not None) \
            if self.watcher_started_at is not None or self.first_bad_at is not None else None
        return _diff(self.red_at, start)

    @property
    def seconds(self) -> float | None:
        if self.first_bad_at is None or self.restored_at is None:
            return None
        return self.restored_at - self.first_bad_at


@dataclass(frozen=True)
class RollResult:
    nodes: int
    batch: int
    batches: int
    code: int
    wall_s: float
    roll_s: float | None  # canary roll + peer rolls, without preflight and the SLI gate
    steps: dict[str, float]  # median seconds per step over the fleet's nodes
    cpu_s: float | None = None  # CPU seconds of ansible-playbook and everything it ran (its module runs too)
    module_runs_per_peer: float | None = None  # median over the peers, from the task_cost callback
    results_per_peer: float | None = None
    module_cpu_s: float | None = None  # the part of cpu_s that is module runs (their processes and children)
    forks: int | None = None  # Ansible's forks in the run (None: not recorded)


@dataclass(frozen=True)
class Pct0Result:
    """`make rollout PCT=0` from rollout_pct=40 on every node: when every node serves with 0."""

    run: int
    code: int
    in_force_s: float | None  # the command's start → every node's gauge shows 0
    wall_s: float  # the command's start → its end
    cpu_s: float  # CPU seconds of the command and everything it ran


@dataclass(frozen=True)
class FleetRollbackResult:
    """`make rollback NODES=all BATCH=n` of a whole fleet, with ROLLBACK_BINARY (v1 and v2 in turn), so that
    every run restores every node without a deploy in between."""

    nodes: int
    batch: int
    run: int
    code: int
    wall_s: float  # the command's start → its end


@dataclass
class Results:
    mode: str
    machine: str
    date: str
    command: str
    settings: dict[str, object]
    ops: list[OpResult] = field(default_factory=list)
    reverts: list[RevertResult] = field(default_factory=list)
    rolls: list[RollResult] = field(default_factory=list)
    slow_tasks: list[tuple[str, float]] = field(default_factory=list)
    watcher: dict[str, float | int | None] = field(default_factory=dict)
    pct0: list[Pct0Result] = field(default_factory=list)
    fleet_rollbacks: list[FleetRollbackResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def fmt(value: float | int | None, unit: str = "", digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, int):
        return f"{value}{unit}"
    return f"{value:.{digits}f}{unit}"


def short(task: str, width: int = 110) -> str:
    """A task name for a table cell: one line, no pipes, cut to width."""
    flat = " ".join(task.split()).replace("|", "/")
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def ms(value: float | None) -> str:
    return "–" if value is None else f"{value * 1000:.0f} ms"


def times(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"


OP_TITLES = {
    "green": "green deploy of the fleet (drain, push, restart, health, ready)",
    "green-check": "the same deploy in check mode (the controller's plays, no node touched)",
    "rollback": "manual rollback of the fleet, batch 1 (make rollback NODES=all)",
    "rollback-batch": "manual rollback of the fleet, every node but one in one batch (make rollback NODES=all BATCH=n)",
    "naive": "naive deploy (binary swapped + service restarted, no drain)",
    "revert-v2-errors": "auto-revert of a canary serving 20 % 502s (v2-errors)",
    "revert-v2-slow": "auto-revert of a canary 0.6 s slow (v2-slow)",
}


def p99_rise(ops: Sequence[OpResult]) -> float | None:
    """p99 during / p99 before, the median over these runs of one operation."""
    return median(ratio(o.p99_during_s, o.p99_before_s) for o in ops)


def op_rows(ops: Sequence[OpResult]) -> list[str]:
    rows = ["| operation | runs | dropped (median) | dropped per run | of which not sent | the broken binary's "
            "own failures (not counted) | requests in the window | p99 before | p99 during | p99 during / before "
            "| seconds |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for op in OP_TITLES:
        mine = [o for o in ops if o.op == op]
        if not mine:
            continue
        before, during = median(o.p99_before_s for o in mine), median(o.p99_during_s for o in mine)
        rows.append(
            f"| {OP_TITLES[op]} | {len(mine)} | {fmt(median(o.dropped for o in mine))} | "
            f"{', '.join(str(o.dropped) for o in mine)} | {', '.join(str(o.not_sent) for o in mine)} | "
            f"{', '.join(str(o.by_release) for o in mine)} | {fmt(median(o.sent for o in mine), digits=0)} | "
            f"{ms(before)} | {ms(during)} | {times(p99_rise(mine))} | "
            f"{fmt(median(o.seconds for o in mine))} |")
    return rows


def naive_ratio_line(ops: Sequence[OpResult]) -> str:
    naive = median(o.dropped for o in ops if o.op == "naive")
    green = median(o.dropped for o in ops if o.op == "green")
    if naive is None or green is None:
        return "Naive vs drained: not measured in this run."
    if naive == green == 0:
        return ("Naive vs drained: neither dropped a request (medians 0 and 0). A connection a restarting node "
                "refuses is retried on another node by HAProxy (retries + redispatch), so at this load the naive "
                "way's cost shows in latency (p99 during / before above), not in dropped requests.")
    r = ratio(naive, green)
    if r is None:
        return (f"Naive vs drained: the naive deploy dropped {naive:g} requests (median) where the drained "
                f"deploy dropped {green:g}: the ratio is unbounded (∞ : 0).")
    return f"Naive vs drained: {naive:g} vs {green:g} dropped requests (medians), a ratio of {r:.1f}×."


def contention_line(ops: Sequence[OpResult], isolated: bool = False) -> str:
    """How much of the green deploy's p99 rise the lab machine's contention explains: its check-mode twin
    runs the same plays on the same machine and touches no node. isolated: the controller ran on CPUs of its
    own (--isolate-controller)."""
    green = [o for o in ops if o.op == "green"]
    check = [o for o in ops if o.op == "green-check"]
    if not green or not check:
        return "Deploy vs its check-mode twin: not measured in this run."
    real, controller = p99_rise(green), p99_rise(check)
    if real is None or not controller:
        return "Deploy vs its check-mode twin: no p99 to compare."
    said = (f"Deploy vs its check-mode twin: p99 during / before is {real:.2f}× for the green deploy and "
            f"{controller:.2f}× for the same plays in check mode, which drain, push and restart nothing: ")
    cause = ("what is left of sharing one machine with the controller, which ran on CPUs of its own "
             "(--isolate-controller)" if isolated else
             "the controller's process start-ups on the CPUs the nodes and HAProxy share (--isolate-controller "
             "measures without them)")
    if real <= 1.0:
        return said + "p99 did not rise during the deploy."
    if real <= controller:
        return said + ("the plays alone raised p99 as much, so none of the rise is measurably the deploy's own: "
                       f"it is {cause}.")
    return said + f"{real / controller:.2f}× is the deploy's own share, the rest is {cause}."


LAB_NAMES = {"loopback": "loopback", "hosts": "hosts (SSH)"}


def revert_rows(reverts: Sequence[RevertResult], interval: float, floor: float) -> list[str]:
    rows = ["| lab | release | runs | verdicts | exposure: first bad answer → last bad answer served | per run "
            "| red verdict → last bad answer served | per run "
            "| time to revert: → canary serving .previous (median) | per run | × probe interval | × floor "
            "| first bad answer → watcher starts | detection: → first red probe | detection × floor "
            "| rollback play |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for lab, release in sorted({(r.lab, r.release) for r in reverts}, key=lambda k: (k[0] != "loopback", k)):
        mine = [r for r in reverts if (r.lab, r.release) == (lab, release)]
        secs = median(r.seconds for r in mine)
        detection = median(r.detection for r in mine)
        rows.append(f"| {LAB_NAMES.get(lab, lab)} | {release} | {len(mine)} | {', '.join(r.verdict for r in mine)} | "
                    f"{fmt(median(r.exposure for r in mine), ' s')} | {', '.join(fmt(r.exposure) for r in mine)} | "
                    f"{fmt(median(r.served_after_verdict for r in mine), ' s')} | "
                    f"{', '.join(fmt(r.served_after_verdict) for r in mine)} | {fmt(secs, ' s')} | "
                    f"{', '.join(fmt(r.seconds) for r in mine)} | {times(ratio(secs, interval))} | "
                    f"{times(ratio(secs, floor))} | {fmt(median(r.until_watching for r in mine), ' s')} | "
                    f"{fmt(detection, ' s')} | {times(ratio(detection, floor))} | "
                    f"{fmt(median(r.revert_play_s for r in mine), ' s')} |")
    return rows


def roll_rows(rolls: Sequence[RollResult]) -> list[str]:
    steps = sorted({s for r in rolls for s in r.steps})
    rows = ["| nodes | batch | forks | batches | runs | deploy wall time | roll time (canary + peers) "
            "| roll time / batch | " + " | ".join(f"{s} (median per node)" for s in steps) + " |",
            "|---|---|---|---|---|---|---|---|" + "---|" * len(steps)]
    for key in sorted({(r.nodes, r.batch, r.forks or 0) for r in rolls}):
        mine = [r for r in rolls if (r.nodes, r.batch, r.forks or 0) == key]
        roll = median(r.roll_s for r in mine)
        rows.append(f"| {key[0]} | {key[1]} | {fmt(mine[0].forks)} | {mine[0].batches} | {len(mine)} | "
                    f"{fmt(median(r.wall_s for r in mine), ' s')} | {fmt(roll, ' s')} | "
                    f"{fmt(ratio(roll, mine[0].batches), ' s')} | "
                    + " | ".join(fmt(median(r.steps.get(s) for r in mine), " s") for s in steps) + " |")
    return rows


def pct0_rows(runs: Sequence[Pct0Result]) -> list[str]:
    if not runs:
        return ["Not measured in this run."]
    return ["| runs | in force on every node (median) | per run | command wall time (median) | CPU seconds (median) "
            "| exit codes |", "|---|---|---|---|---|---|",
            f"| {len(runs)} | {fmt(median(r.in_force_s for r in runs), ' s', 2)} | "
            f"{', '.join(fmt(r.in_force_s, digits=2) for r in runs)} | "
            f"{fmt(median(r.wall_s for r in runs), ' s', 2)} | "
            f"{fmt(median(r.cpu_s for r in runs), digits=2)} | {', '.join(str(r.code) for r in runs)} |"]


def fleet_rollback_rows(runs: Sequence[FleetRollbackResult]) -> list[str]:
    """Median wall time per (nodes, batch), and its multiple of the smallest fleet's (its smallest batch)."""
    if not runs:
        return ["Not measured in this run."]
    keys = sorted({(r.nodes, r.batch) for r in runs})
    walls = {key: median(r.wall_s for r in runs if (r.nodes, r.batch) == key) for key in keys}
    base = walls[keys[0]]
    rows = [f"| nodes | batch | runs | wall time (median) | per run | exit codes | × the {keys[0][0]}-node "
            f"rollback (batch {keys[0][1]}) |", "|---|---|---|---|---|---|---|"]
    for key in keys:
        mine = [r for r in runs if (r.nodes, r.batch) == key]
        rows.append(f"| {key[0]} | {key[1]} | {len(mine)} | {fmt(walls[key], ' s')} | "
                    f"{', '.join(fmt(r.wall_s) for r in mine)} | {', '.join(str(r.code) for r in mine)} | "
                    f"{times(ratio(walls[key], base))} |")
    return rows


def cost_rows(rolls: Sequence[RollResult]) -> list[str]:
    """Controller cost per node: CPU seconds over nodes (least-squares slope), module runs and task results."""
    measured = [r for r in rolls if r.cpu_s is not None]
    if not measured:
        return ["Not measured in this run."]
    rows = ["| nodes | batch | forks | CPU seconds of the deploy | CPU seconds / node | of it, module runs / node "
            "| of it, Ansible's controller / node | module runs per peer | task results per peer |",
            "|---|---|---|---|---|---|---|---|---|"]
    for r in measured:
        ansible = None if r.module_cpu_s is None or r.cpu_s is None else r.cpu_s - r.module_cpu_s
        rows.append(f"| {r.nodes} | {r.batch} | {fmt(r.forks)} | {fmt(r.cpu_s)} | "
                    f"{fmt(ratio(r.cpu_s, r.nodes), digits=2)} | "
                    f"{fmt(ratio(r.module_cpu_s, r.nodes), digits=2)} | {fmt(ratio(ansible, r.nodes), digits=2)} | "
                    f"{fmt(r.module_runs_per_peer, digits=0)} | {fmt(r.results_per_peer, digits=0)} |")
    per_node = slope([(float(r.nodes), float(r.cpu_s or 0.0)) for r in measured])
    rows += ["", f"CPU seconds per extra node (least-squares slope over the fleet sizes): {fmt(per_node, ' s', 2)}"
             if per_node is not None else "CPU seconds per extra node: one fleet size only; the per-node column is "
             "the whole deploy's CPU divided by its nodes (preflight and the SLI gate included)."]
    split = [r for r in measured if r.module_cpu_s is not None and r.cpu_s is not None]
    ansible_per_node = slope([(float(r.nodes), float((r.cpu_s or 0.0) - (r.module_cpu_s or 0.0))) for r in split])
    if ansible_per_node is not None:
        rows.append(f"Of it, Ansible's controller (ansible-playbook and its workers, without the module runs, which "
                    f"in production run on the nodes and load balancers): {fmt(ansible_per_node, ' s', 2)}")
    return rows


def fit_terms(fixed: float, per_batch: float, per_node: float) -> str:
    """'a s + b s × batches − c s × nodes', each sign printed as a sign."""
    signed = [f"{'−' if x < 0 else '+'} {abs(x):.1f} s" for x in (per_batch, per_node)]
    return f"{fixed:.1f} s {signed[0]} × batches {signed[1]} × nodes"


def fit_line(fit: Fit) -> str:
    fitted = fit_terms(fit.fixed_s, fit.per_batch_s, fit.per_node_s)
    line = (f"Least-squares fit over every roll: roll time ≈ {fitted}. The per-node term is the Ansible overhead "
            "paid per host even inside a batch.")
    if fit.free is not None:
        line += (f" Each term is held ≥ 0: the unconstrained fit is {fit_terms(*fit.free)}, a negative term no roll "
                 "can have; these fleet sizes hardly vary the batch count, or the largest saturated the lab "
                 "machine, so they do not separate the terms.")
    return line


def markdown(res: Results, method: str, interval: float, floor: float) -> str:
    s = res.settings
    lines = [
        "# Benchmarks",
        "",
        f"Written by `make bench` ({res.mode} mode). Do not edit by hand: re-run the bench.",
        "",
        f"- Date: {res.date}",
        f"- Machine: {res.machine}",
        f"- Reproduce: `{res.command}`",
        f"- Settings: {', '.join(f'{k}={v}' for k, v in s.items())}",
        *[f"- Note: {n}" for n in res.notes],
        "",
        "## Method",
        "",
        method,
        "",
        "## 1. Time to revert",
        "",
        *revert_rows(res.reverts, interval, floor),
        "",
        f"Probe interval {interval:g} s. Floor {floor:g} s = scrape interval + the probe's rate window + the red "
        "probes a revert needs one interval apart (errors: 1 probe, latency: 2 probes, so the slow release's "
        "floor is one interval higher than shown): the earliest any Prometheus-fed judge can call it. The "
        "breakdown shows where the rest goes: the canary serves its first bad answer as soon as HAProxy puts "
        "it back in rotation, but the watcher only starts after the canary's roll finishes and the SLI gate "
        "sets up; on its red verdict the watcher drains the canary on every load balancer itself (the admin "
        "socket, no Ansible start), so the canary stops serving within the verdict column's time, then runs "
        "the rollback play (drain, restore .previous, restart, health, ready), whose length is Ansible's, not "
        "the judge's.",
        "",
        "## 2–3. Requests dropped under steady load, and the naive way",
        "",
        *op_rows(res.ops),
        "",
        naive_ratio_line(res.ops),
        "",
        contention_line(res.ops, "controller" in res.settings),
        "",
        "## 4. Roll time as the fleet grows",
        "",
        *roll_rows(res.rolls),
        "",
    ]
    fit = fit_roll_time([(r.batches, r.nodes, r.roll_s) for r in res.rolls if r.roll_s is not None])
    if fit is not None:
        lines += [fit_line(fit), ""]
    else:
        lines += ["Not enough distinct (batches, nodes) points to separate per-batch from per-node time.", ""]
    if res.slow_tasks:
        lines += ["Where Ansible spends its time (junit callback, seconds summed over hosts, largest fleet):", "",
                  "| task | seconds |", "|---|---|",
                  *[f"| {short(name)} | {secs:.1f} |" for name, secs in res.slow_tasks], ""]
    w = res.watcher
    lines += [
        "## 6. `make rollout PCT=0` (the off switch)",
        "",
        "From rollout_pct=40 set by hand on every node; `edge-canary rollout` with PCT=0 as `make rollout` runs "
        "it; every node's `edge_config_rollout_pct` gauge polled every 50 ms from the command's start.",
        "",
        *pct0_rows(res.pct0),
        "",
        "## 7. Controller cost per node",
        "",
        "CPU seconds (user + system) of ansible-playbook and every process it ran, per deploy (the lab nodes' "
        "module runs are processes of the same machine); of it, the module runs' own (each logged by "
        "edge_canary/bench/module_cpu.sh, the lab hosts' Python for the bench) and the rest, Ansible's controller; "
        "module runs and task results per peer from the bench's task_cost callback (edge_canary/bench/callbacks).",
        "",
        *cost_rows(res.rolls),
        "",
        "## 8. Rollback of the whole fleet as it grows",
        "",
        "`make rollback NODES=all BATCH=n` as the command runs it (playbooks/rollback.yml), with ROLLBACK_BINARY "
        "set to v1 and v2 in turn so that every run drains, restores, restarts, health-checks and readies every "
        "node (a rollback to `.previous` does the same steps, the binary coming from the node instead of the "
        "control host); no load.",
        "",
        *fleet_rollback_rows(res.fleet_rollbacks),
        "",
    ]
    lines += [
        "## 5. Watcher cost",
        "",
        "| watched for | CPU seconds | CPU seconds per hour (after start-up) | peak RSS | probes | Prometheus queries "
        "| queries per probe |",
        "|---|---|---|---|---|---|---|",
        f"| {fmt(w.get('elapsed_s'), ' s')} | {fmt(w.get('cpu_s'), digits=2)} | {fmt(w.get('cpu_per_hour'))} | "
        f"{fmt(w.get('peak_rss_mib'), ' MiB')} | {fmt(w.get('probes'))} | {fmt(w.get('queries'))} | "
        f"{fmt(w.get('queries_per_probe'), digits=2)} |",
        "",
    ]
    return "\n".join(lines)
