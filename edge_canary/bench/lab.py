"""The bench's hands on the lab (side effects only): bring the lab up and down, run load, run the real
playbooks, do the naive deploy by hand, poll node versions, run and measure a watcher."""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from edge_canary.bench.stats import cpu_seconds, peak_rss_kib, times_children_seconds
from edge_canary.gameday import fleet
from edge_canary.lab.settings import REPO, LabSettings, load
from edge_canary.ops.play import release_lock
from edge_canary.procgroup import stop_group

VENV_BIN = Path(sys.executable).parent
CALLBACKS = Path(__file__).parent / "callbacks"
MODULE_CPU = Path(__file__).parent / "module_cpu.sh"


def children_cpu() -> float:
    """CPU seconds (user + system) of every child process this one has waited for so far."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def cost_env(junit: Path, cost_file: Path) -> dict[str, str]:
    """The junit callback (per-task times) and the bench's task_cost callback (module runs per host)."""
    return {"ANSIBLE_CALLBACKS_ENABLED": "ansible.builtin.junit,task_cost", "JUNIT_OUTPUT_DIR": str(junit),
            "JUNIT_HIDE_TASK_ARGUMENTS": "true", "ANSIBLE_CALLBACK_PLUGINS": str(CALLBACKS),
            "EDGE_CANARY_TASK_COST": str(cost_file)}


class BenchError(RuntimeError):
    """Something the bench needs did not work; the message says what and where to look."""


def split_cpus(cpus: set[int]) -> tuple[str, str]:
    """The CPU list (taskset -c) of the lab and of the controller when they are kept apart: the first CPU for
    the lab's processes, the others for the controller."""
    first, *rest = sorted(cpus)
    if not rest:
        raise BenchError("keeping the controller apart from the lab needs at least 2 CPUs; this process has 1")
    return str(first), ",".join(map(str, rest))


@dataclass
class LabHandle:
    env: dict[str, str]
    work: Path
    # With isolate, the lab (supervisord and its children: HAProxy, the nodes, Prometheus) and the load run on
    # the first CPU, the controller (ansible-playbook and every process it runs) on the others.
    isolate: bool = False

    def pinned(self, argv: list[str], side: str) -> list[str]:
        """argv on its side's CPUs ("lab" or "controller") when isolated, else as it is."""
        if not self.isolate:
            return argv
        lab, controller = split_cpus(os.sched_getaffinity(0))
        return ["taskset", "-c", lab if side == "lab" else controller, *argv]

    @property
    def settings(self) -> LabSettings:
        return load(self.env)

    @property
    def lab_dir(self) -> Path:
        return Path(self.settings.lab_dir)

    @property
    def lb_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.haproxy_port}/api"

    def node_urls(self) -> dict[str, str]:
        """Each node's own base URL, straight to the node (its address in hosts mode), not through HAProxy."""
        return {node: f"http://{address}:{port}" for node, (address, port) in self.settings.endpoints().items()}

    def log(self, name: str) -> Path:
        return self.work / "logs" / name

    def run(self, argv: list[str], name: str, timeout: float, extra: dict[str, str] | None = None) -> int:
        self.log(name).parent.mkdir(parents=True, exist_ok=True)
        with self.log(name).open("ab") as out:
            try:
                return subprocess.run(argv, cwd=REPO, env={**self.env, **(extra or {})}, stdout=out,
                                      stderr=subprocess.STDOUT, timeout=timeout).returncode
            except subprocess.TimeoutExpired:
                raise BenchError(f"{name} took longer than {timeout:.0f} s; see {self.log(name)}") from None

    def controller(self, playbook: str, *args: str) -> list[str]:
        """The argv of ansible-playbook running `playbook` (a file of playbooks/), on the controller's CPUs."""
        return self.pinned([str(VENV_BIN / "ansible-playbook"), str(REPO / "playbooks" / playbook), *args],
                           "controller")

    def up(self, nodes: int) -> None:
        self.env["LAB_NODES"] = str(nodes)
        self.env["LAB_TRAFFIC_RPS"] = "0"  # the bench's own load generator is the only traffic
        if self.run(self.pinned(["bash", str(REPO / "scripts/lab-up.sh")], "lab"), "lab-up.log", 1200) != 0:
            raise BenchError(f"the bench lab ({nodes} nodes) did not come up; see {self.log('lab-up.log')}")

    def down(self) -> None:
        self.run(["bash", str(REPO / "scripts/lab-down.sh")], "lab-down.log", 300)


def lab_handle(work: Path, isolate: bool = False) -> LabHandle:
    env = dict(os.environ)
    env.update({"PY": sys.executable, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
                "PATH": f"{VENV_BIN}:{env.get('PATH', '')}"})
    return LabHandle(env, work, isolate)


# --- load ---------------------------------------------------------------------------------------------


@dataclass
class Load:
    """`edge-canary loadgen` through HAProxy at a fixed rate, one JSON line per request, until stopped."""

    url: str
    rps: float
    out: Path
    prefix: list[str] = field(default_factory=list)  # e.g. taskset's, to run it on the lab's CPU
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Load:
        self.out.unlink(missing_ok=True)
        argv = [*self.prefix, sys.executable, "-m", "edge_canary", "loadgen", "--url", self.url, "--rps",
                f"{self.rps:g}", "--duration", "7200", "--out", str(self.out)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        return self

    def stop(self) -> list[str]:
        if self.proc is not None and self.proc.poll() is None:
            stop_group(self.proc)
        return self.out.read_text().splitlines() if self.out.exists() else []


# --- node versions --------------------------------------------------------------------------------------


def node_version(url: str) -> str | None:
    """What the node at base URL `url` says it runs (None: no answer)."""
    return fleet.node_version(f"{url}/version", timeout=1.0)


@dataclass
class VersionPoller:
    """Asks one node's /version directly every `every` seconds: when it really serves what."""

    url: str
    every: float = 0.2
    samples: list[tuple[float, str | None]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> VersionPoller:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            version = node_version(self.url)
            self.samples.append((time.time(), version))
            self._stop.wait(self.every)

    def stop(self) -> list[tuple[float, str | None]]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        return self.samples


# --- our tool: the real playbooks -----------------------------------------------------------------------


@dataclass(frozen=True)
class DeployRun:
    code: int
    started: float
    ended: float
    run_dir: Path
    junit_dir: Path
    cpu_s: float = 0.0  # CPU seconds of ansible-playbook and every process it ran
    cost_file: Path | None = None  # the task_cost callback's JSON
    module_cpu_s: float | None = None  # the part of cpu_s that is module runs (local lab only)


def deploy(lab: LabHandle, label: str, artifact: Path, canary: str, batch: int, window: float,
           interval: float, min_requests: int, check: bool = False, forks: int | None = None) -> DeployRun:
    """playbooks/deploy-canary.yml as `edge-canary deploy-canary` runs it (check: as CHECK=1 does), with the
    junit callback on for per-task times; the lock is released afterwards as deploy-canary does. forks:
    Ansible's --forks (None: ansible.cfg's)."""
    deploy_id = f"bench-{label}-{time.strftime('%H%M%S')}-{os.getpid()}"
    junit = lab.work / "junit" / deploy_id
    junit.mkdir(parents=True, exist_ok=True)
    extra = {"deploy_id": deploy_id, "deploy_artifact": str(artifact), "deploy_canary_node": canary,
             "deploy_batch": batch, "sli_window": window, "sli_probe_interval": interval,
             "sli_watch_settings": {"min_requests": min_requests}, "force_migrate": False, "force_lock": False}
    cost_file = junit / "task_cost.json"
    module_cpu = junit / "module_cpu.txt"
    # On the loopback lab every module run is a process of this machine: each goes through module_cpu.sh,
    # which logs its CPU. Over SSH (hosts mode) they are sshd's, not counted in cpu_s at all.
    wrap = lab.settings.mode != "hosts"
    if wrap:  # in the JSON file, not key=value: the path may hold a space
        extra["ansible_python_interpreter"] = str(MODULE_CPU)
    vars_file = lab.work / f"{deploy_id}.json"
    vars_file.write_text(json.dumps(extra))
    started, cpu = time.time(), children_cpu()
    args = ["-e", f"@{vars_file}", *(["--check", "--diff"] if check else []),
            *(["--forks", str(forks)] if forks else [])]
    code = lab.run(lab.controller("deploy-canary.yml", *args), f"{label}.log", 1800,
                   {**cost_env(junit, cost_file), **({"EDGE_CANARY_MODULE_CPU": str(module_cpu),
                                                      "EDGE_CANARY_MODULE_PYTHON": sys.executable} if wrap else {})})
    ended, cpu = time.time(), children_cpu() - cpu
    run_dir = lab.lab_dir / "control" / "runs" / deploy_id
    release_lock(run_dir, deploy_id)
    modules = times_children_seconds(module_cpu.read_text()) if wrap and module_cpu.exists() else None
    return DeployRun(code, started, ended, run_dir, junit, cpu, cost_file, modules)


def rollback(lab: LabHandle, label: str, nodes: str, batch: int = 1, binary: Path | None = None,
             version: str = "") -> tuple[int, float, float]:
    """playbooks/rollback.yml as `make rollback NODES= BATCH= [ROLLBACK_BINARY=]` runs it (vars as a file)."""
    extra: dict[str, object] = {"rollback_nodes": nodes, "rollback_batch": batch}
    if binary is not None:
        extra.update(rollback_binary=str(binary), rollback_version=version)
    vars_file = lab.work / f"rollback-{label}.json"
    vars_file.write_text(json.dumps(extra))
    started = time.time()
    code = lab.run(lab.controller("rollback.yml", "-e", f"@{vars_file}"), f"{label}.log", 1800)
    return code, started, time.time()


@dataclass(frozen=True)
class TaskCost:
    """What the task_cost callback counted: medians over the peers, and the run's forks."""

    module_runs_per_peer: float | None = None
    results_per_peer: float | None = None
    forks: int | None = None


def task_cost(cost_file: Path | None, skip: str) -> TaskCost:
    """Module runs and task results per host, medians over the hosts but `skip` (the canary)."""
    if cost_file is None:
        return TaskCost()
    try:
        cost = json.loads(cost_file.read_text())
    except (OSError, ValueError):
        return TaskCost()
    forks = cost.get("forks")
    peers = [v for h, v in cost.get("hosts", {}).items() if h not in (skip, "localhost")]
    if not peers:
        return TaskCost(forks=forks)
    runs = sorted(float(v.get("module_runs", 0)) for v in peers)
    results = sorted(float(v.get("results", 0)) for v in peers)
    return TaskCost(runs[len(runs) // 2], results[len(results) // 2], forks)


def wait_idle_watchers(lab: LabHandle, timeout: float = 120) -> None:
    """A reverting watcher finishes after the deploy play; wait for its verdict file before going on."""
    deadline = time.time() + timeout
    runs = lab.lab_dir / "control" / "runs"
    while time.time() < deadline:
        pending = [d for d in runs.glob("bench-*") if (d / "watcher.json").exists()
                   and not (d / "verdict.json").exists()] if runs.exists() else []
        if not pending:
            return
        time.sleep(1)


def node_records(run_dir: Path) -> dict[str, dict[str, object]]:
    records = {}
    for path in sorted((run_dir / "nodes").glob("*.json")):
        with contextlib.suppress(OSError, ValueError):
            records[path.stem] = json.loads(path.read_text())
    return records


def junit_task_times(junit_dir: Path) -> Counter[str]:
    """Seconds per task name, summed over hosts, from the junit callback's XML (the watcher's revert play
    inherits the callback's settings, so its tasks are in there too)."""
    times: Counter[str] = Counter()  # float values: Counter's int annotation is only nominal
    for path in junit_dir.glob("*.xml"):
        with contextlib.suppress(ET.ParseError, OSError):
            for case in ET.parse(path).getroot().iter("testcase"):
                name = case.get("name", "?")
                name = name.split("] ", 1)[-1] if name.startswith("[") else name
                with contextlib.suppress(ValueError):
                    times[name] += float(case.get("time", "0"))  # type: ignore[assignment]
    return times


# --- the naive way, by hand -----------------------------------------------------------------------------


def naive_swap(lab: LabHandle, binaries: dict[str, Path]) -> tuple[float, float]:
    """Copy each node's new binary in place and restart its service, one node after the other, with no
    drain and no health wait: what a plain `cp && restart` loop does."""
    conf = lab.lab_dir / "supervisord.conf"
    started = time.time()
    for node, binary in binaries.items():
        target = lab.lab_dir / "nodes" / node / "edge"
        staging = target.with_name(".edge.naive")
        shutil.copy2(binary, staging)
        os.replace(staging, target)
        subprocess.run(["supervisorctl", "-c", str(conf), "restart", node], capture_output=True, timeout=120)
    return started, time.time()


def save_binaries(lab: LabHandle, folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    saved = {}
    for node in lab.node_urls():
        saved[node] = folder / node
        shutil.copy2(lab.lab_dir / "nodes" / node / "edge", saved[node])
    return saved


def wait_serving(lab: LabHandle, version: str, timeout: float = 120) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if all(node_version(url) == version for url in lab.node_urls().values()):
            return True
        time.sleep(0.5)
    return False


# --- watcher cost ---------------------------------------------------------------------------------------


class _CountingProxy(http.server.ThreadingHTTPServer):
    upstream: str
    count: int
    lock: threading.Lock


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    server: _CountingProxy

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        with self.server.lock:
            self.server.count += 1
        request = urllib.request.Request(self.server.upstream + self.path, data=body, method=self.command)
        for name in ("Content-Type", "Authorization"):
            if self.headers.get(name):
                request.add_header(name, self.headers[name])
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                payload, status = answer.read(), answer.status
        except urllib.error.HTTPError as err:
            payload, status = err.read(), err.code
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _forward

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        return


@dataclass(frozen=True)
class WatcherCost:
    elapsed_s: float
    cpu_s: float
    peak_rss_kib: int | None
    probes: int
    queries: int
    steady_s: float  # from the first probe to the end: the part that scales with watching time
    steady_cpu_s: float


def watcher_cost(lab: LabHandle, window: float, interval: float, canary: str) -> WatcherCost:
    """Run the watcher for `window` seconds in shadow mode (no revert) through a proxy that counts its
    Prometheus queries; read its CPU and peak RSS from /proc while it runs."""
    proxy = _CountingProxy(("127.0.0.1", 0), _ProxyHandler)
    proxy.upstream, proxy.count, proxy.lock = f"http://127.0.0.1:{lab.settings.prom_port}", 0, threading.Lock()
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    folder = lab.work / "watcher-cost"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    argv = [sys.executable, "-m", "watcher", "--prom-url", f"http://127.0.0.1:{proxy.server_address[1]}",
            "--canary-selector", f'job="edge",node="{canary}"', "--control-selector",
            f'job="edge",node!="{canary}"', "--canary-node", canary, "--window", f"{window:g}",
            "--interval", f"{interval:g}", "--scrape-interval", "1", "--revert-action", "none",
            "--decision-log", str(folder / "decisions.jsonl"), "--verdict-file", str(folder / "verdict.json")]
    ticks = os.sysconf("SC_CLK_TCK")
    cpu, rss = 0.0, None
    steady: tuple[float, float] | None = None  # (time, cpu) at the first probe: start-up cost left out
    log = folder / "decisions.jsonl"
    started = last = time.time()
    with (folder / "watcher.log").open("wb") as out:
        proc = subprocess.Popen(argv, cwd=REPO, env=lab.env, stdout=out, stderr=subprocess.STDOUT)
        try:
            while proc.poll() is None and time.time() - started < window + 120:
                with contextlib.suppress(OSError, ValueError, IndexError):
                    cpu = cpu_seconds(Path(f"/proc/{proc.pid}/stat").read_text(), ticks)
                    rss = peak_rss_kib(Path(f"/proc/{proc.pid}/status").read_text()) or rss
                    if steady is None and log.exists() and log.stat().st_size > 0:
                        steady = (time.time(), cpu)
                last = time.time()
                time.sleep(0.25)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            proxy.shutdown()
            proxy.server_close()
    elapsed = time.time() - started
    probes = 0
    with contextlib.suppress(OSError):
        for line in log.read_text().splitlines():
            with contextlib.suppress(ValueError):
                probes += int(json.loads(line).get("event") == "probe")
    steady_s, steady_cpu = (last - steady[0], cpu - steady[1]) if steady else (0.0, 0.0)
    return WatcherCost(elapsed, cpu, rss, probes, proxy.count, steady_s, steady_cpu)


def wait_versions(lab: LabHandle, wanted: dict[str, str | None], timeout: float = 60) -> bool:
    """Wait until every node answers /version with the version it is wanted to serve."""
    urls = lab.node_urls()
    deadline = time.time() + timeout
    while time.time() < deadline:
        if all(node_version(urls[node]) == version for node, version in wanted.items()):
            return True
        time.sleep(0.5)
    return False


def decision_records(run_dir: Path) -> list[dict[str, object]]:
    """The watcher's decision log of one deploy (JSON lines; a cut-short line is skipped)."""
    records = []
    with contextlib.suppress(OSError):
        for line in (run_dir / "decisions.jsonl").read_text().splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict):
                    records.append(record)
    return records
