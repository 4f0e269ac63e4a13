"""The watcher as a real process against a real Prometheus scraping fake edge nodes.

Each test gets its own group of three fake nodes (gN-edge-1, gN-edge-2 = the canary, gN-edge-3)
whose error ratio and latency it changes at runtime. One Prometheus scrapes every group each
second (labels `node` and `group`), so tests stay independent without paying Prometheus'
start-up each time; the tests that stop Prometheus get their own. The `command` revert writes
a marker file, so a revert is something that really happened.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.fake_exporter import FakeExporter
from tests.helpers.paths import REPO
from tests.helpers.procs import free_port, read_text, running
from tests.helpers.prometheus import PromServer, query, running_prometheus, wait_for_samples

GROUPS = 12  # node groups on the shared Prometheus, one per test that uses it
WAIT = 90.0  # generous: the machine is shared and may be slow


@dataclass
class Fleet:
    group: str
    nodes: dict[str, FakeExporter]
    prom: PromServer
    tmp: Path

    @property
    def canary_node(self) -> str:
        return f"{self.group}-edge-2"

    @property
    def canary(self) -> FakeExporter:
        return self.nodes[self.canary_node]


def _group_nodes(group: str) -> dict[str, FakeExporter]:
    return {f"{group}-edge-{i}": FakeExporter(rps=50) for i in (1, 2, 3)}


Groups = dict[str, dict[str, FakeExporter]]  # group -> node name -> its exporter


@contextlib.contextmanager
def _fleets(tmp: Path, groups: list[str]) -> Iterator[tuple[PromServer, Groups]]:
    by_group: Groups = {}
    try:
        for group in groups:
            by_group[group] = _group_nodes(group)
        targets = {n: e.address for nodes in by_group.values() for n, e in nodes.items()}
        labels = {n: {"group": g} for g, nodes in by_group.items() for n in nodes}
        with running_prometheus(tmp, targets, labels=labels) as prom:
            wait_for_samples(prom.url, 'edge_http_requests_total{code="200"}', count=3)
            yield prom, by_group
    finally:
        for nodes in by_group.values():
            for exporter in nodes.values():
                exporter.close()


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Iterator[Fleet]]:
    tmp = tmp_path_factory.mktemp("shared-prometheus")
    with _fleets(tmp, [f"g{i}" for i in range(GROUPS)]) as (prom, by_group):
        yield iter([Fleet(g, nodes, prom, tmp) for g, nodes in by_group.items()])


@pytest.fixture
def fleet(shared: Iterator[Fleet], tmp_path: Path) -> Fleet:
    """A node group of its own on the shared Prometheus."""
    group = next(shared, None)
    assert group is not None, "raise GROUPS: every test on the shared Prometheus needs a group"
    return Fleet(group.group, group.nodes, group.prom, tmp_path)


@pytest.fixture
def own_fleet(tmp_path: Path) -> Iterator[Fleet]:
    """Three nodes and a Prometheus of their own, for tests that stop Prometheus."""
    with _fleets(tmp_path, ["solo"]) as (prom, by_group):
        yield Fleet("solo", by_group["solo"], prom, tmp_path)


@dataclass
class Watch:
    proc: subprocess.Popen[Any]
    out: Path
    decisions: Path
    verdict_file: Path
    marker: Path

    def records(self) -> list[dict[str, Any]]:
        text = read_text(self.decisions)
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def probes(self) -> list[dict[str, Any]]:
        return [r for r in self.records() if r["event"] == "probe"]

    def wait_for_probes(self, count: int, state: str | None = None) -> None:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            done = [p for p in self.probes() if state is None or p["state"] == state]
            if len(done) >= count:
                return
            assert self.proc.poll() is None, f"watcher exited early:\n{read_text(self.out)}"
            time.sleep(0.1)
        raise TimeoutError(f"no {count} {state or ''} probes:\n{read_text(self.out)}")

    def finish(self) -> int:
        try:
            return self.proc.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"watcher still running after {WAIT}s:\n{read_text(self.out)}")

    def verdict(self) -> dict[str, Any]:
        assert self.verdict_file.exists(), f"no verdict file:\n{read_text(self.out)}"
        return dict(json.loads(self.verdict_file.read_text()))


def marker_command(marker: Path) -> str:
    code = "import os, sys; open(sys.argv[1], 'w').write(os.environ['EDGE_CANARY_NODE'])"
    return shlex.join([sys.executable, "-c", code, str(marker)])


def watcher_argv(fleet: Fleet, name: str, *extra: str) -> tuple[list[str], Watch]:
    canary, group = fleet.canary_node, fleet.group
    tmp = fleet.tmp / name
    tmp.mkdir()
    watch = Watch(
        proc=None,  # type: ignore[arg-type]  # set once started
        out=tmp / "watcher.out",
        decisions=tmp / "decisions.jsonl",
        verdict_file=tmp / "verdict.json",
        marker=tmp / "reverted",
    )
    argv = [
        sys.executable, "-m", "watcher",
        "--prom-url", fleet.prom.url,
        "--canary-selector", f'group="{group}",node="{canary}"',
        "--control-selector", f'group="{group}",node!="{canary}"',
        "--canary-node", canary,
        "--interval", "1", "--scrape-interval", "1", "--window", "6",
        "--p95-threshold", "0.3", "--err-threshold", "0.01",
        "--revert-action", "command", "--revert-command", marker_command(watch.marker),
        "--decision-log", str(watch.decisions), "--verdict-file", str(watch.verdict_file),
        *extra,
    ]  # fmt: skip
    return argv, watch


class Starter:
    """start(name, *flags, env=None) -> Watch: the watcher as a real process; all stopped after."""

    def __init__(self) -> None:
        self.stack = contextlib.ExitStack()
        self.fleet: Fleet | None = None

    def __call__(self, name: str, *extra: str, env: dict[str, str] | None = None) -> Watch:
        assert self.fleet is not None
        argv, watch = watcher_argv(self.fleet, name, *extra)
        environ = {k: v for k, v in os.environ.items() if not k.startswith(("PROM_", "SLI_"))}
        ctx = running(argv, log_path=watch.out, cwd=REPO, env={**environ, **(env or {})})
        watch.proc = self.stack.enter_context(ctx)
        return watch


@pytest.fixture
def starter() -> Iterator[Starter]:
    s = Starter()
    with s.stack:
        yield s


@pytest.fixture
def start(fleet: Fleet, starter: Starter) -> Starter:
    starter.fleet = fleet
    return starter


@pytest.fixture
def start_own(own_fleet: Fleet, starter: Starter) -> Starter:
    starter.fleet = own_fleet
    return starter


def test_healthy_canary_is_promoted_and_serves_self_metrics(fleet: Fleet, start: Starter) -> None:
    port = free_port()
    watch = start("healthy", "--metrics-port", str(port))
    watch.wait_for_probes(1)
    metrics = ""
    deadline = time.monotonic() + WAIT
    while "edge_canary_watcher_probes_total{result=\"green\"} 1.0" not in metrics:
        if watch.proc.poll() is not None or time.monotonic() > deadline:
            break
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                metrics = resp.read().decode()
        except OSError:
            time.sleep(0.1)
    assert 'edge_canary_watcher_latency_p95_seconds{side="canary"}' in metrics
    assert "edge_canary_watcher_query_duration_seconds_count" in metrics
    assert watch.finish() == 0
    verdict = watch.verdict()
    assert verdict["verdict"] == "promote" and verdict["exit_code"] == 0
    assert verdict["green"] >= 5 and verdict["red"] == 0 and verdict["revert"] is None
    assert not watch.marker.exists()
    assert "verdict: promote (exit 0)" in read_text(watch.out)


def test_canary_turning_to_errors_is_reverted_within_two_intervals(
    fleet: Fleet, start: Starter
) -> None:
    watch = start("errors", "--window", "60", "--interval", "2")
    watch.wait_for_probes(2, state="green")
    flipped = time.time()
    fleet.canary.set(error_ratio=0.3)
    assert watch.finish() == 1
    verdict = watch.verdict()
    assert verdict["verdict"] == "reverted"
    assert verdict["revert"]["action"] == "command" and verdict["revert"]["ok"] is True
    assert watch.marker.read_text() == fleet.canary_node  # the command really ran, for the canary
    after = [p for p in watch.probes() if datetime.fromisoformat(p["ts"]).timestamp() > flipped]
    # Red by the second probe after the first bad request; one more allowed for scrape lag.
    assert after[-1]["state"] == "red" and "errors" in after[-1]["red_kinds"]
    assert len(after) <= 3, after
    assert any(r.startswith("errors (since start)") and "limit 1.00%" in r for r in after[-1]["reasons"])


def test_slow_canary_is_reverted_after_the_latency_consecutive_count(
    fleet: Fleet, start: Starter
) -> None:
    watch = start("slow", "--window", "60", "--latency-consecutive", "3")
    watch.wait_for_probes(1, state="green")
    fleet.canary.set(latency=1.0)
    assert watch.finish() == 1
    probes = watch.probes()
    reds = [p for p in probes if p["state"] == "red"]
    assert [p["streaks"]["latency"] for p in reds] == [1, 2, 3]
    assert [p["decision"] is not None for p in reds] == [False, False, True]
    assert probes[-1] is reds[-1] or probes[-1] == reds[-1]
    assert watch.verdict()["verdict"] == "reverted"
    assert watch.marker.read_text() == fleet.canary_node


@pytest.mark.parametrize(
    ("policy", "code", "verdict"), [("revert", 1, "reverted"), ("hold", 2, "hold")]
)
def test_prometheus_stopped_mid_window(
    own_fleet: Fleet, start_own: Starter, policy: str, code: int, verdict: str
) -> None:
    fleet, start = own_fleet, start_own
    watch = start(policy, "--window", "60", "--max-staleness", "3", "--query-timeout", "2",
                  "--blind-policy", policy)  # fmt: skip
    watch.wait_for_probes(2, state="green")
    fleet.prom.stop()
    assert watch.finish() == code
    result = watch.verdict()
    assert result["verdict"] == verdict
    assert result["blind"] >= 2 and result["blind_seconds"] > 0 and result["red"] == 0
    assert "longer than max staleness 3s" in result["reason"]
    assert f"blind policy {policy}" in result["reason"]
    blind = [p for p in watch.probes() if p["state"] == "blind"]
    # The last good probe stood in at first: early blind probes did not act.
    assert blind[0]["decision"] is None and blind[-1]["decision"] is not None
    # Past max staleness when it acted; the log keeps milliseconds, so 3.0004 s (which acts) reads 3.0.
    assert blind[-1]["without_fresh_data"] >= 3
    assert watch.marker.exists() == (policy == "revert")


def test_shadow_mode_reverts_nothing_and_logs_what_it_would_have_done(
    fleet: Fleet, start: Starter
) -> None:
    fleet.canary.set(error_ratio=0.5)
    watch = start("shadow", "--window", "60", "--revert-action", "none")
    assert watch.finish() == 4  # would have reverted: its own exit code, never "reverted"
    verdict = watch.verdict()
    assert verdict["verdict"] == "would_revert" and "SHADOW MODE" in verdict["reason"]
    assert verdict["revert"]["shadow"] is True and verdict["revert"]["action"] == "none"
    assert not watch.marker.exists()
    (revert,) = [r for r in watch.records() if r["event"] == "revert"]
    assert "would have run the command" in revert["detail"]
    assert "nothing was changed" in revert["detail"]


def wait_until_every_node_fails(fleet: Fleet, above: float) -> None:
    """Prometheus shows every node of the group above that 5xx ratio over the watcher's 4 s range. Started
    sooner, the watcher could see one node's errors before the others' (a canary-only breach)."""
    total = f'edge_http_requests_total{{group="{fleet.group}"}}'
    failed = f'edge_http_requests_total{{group="{fleet.group}",code=~"5.."}}'
    promql = f"min(sum by (node) (rate({failed}[4s])) / sum by (node) (rate({total}[4s])))"
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError, RuntimeError):
            result = query(fleet.prom.url, promql)
            if result and float(result[0]["value"][1]) > above:
                return
        time.sleep(0.5)
    raise TimeoutError(f"Prometheus does not show every node of {fleet.group} above {above:.0%} 5xx")


def test_fleet_wide_breach_holds_and_never_reverts(fleet: Fleet, start: Starter) -> None:
    for node in fleet.nodes.values():
        node.set(error_ratio=0.05)
    wait_until_every_node_fails(fleet, above=0.02)
    watch = start("fleet", "--window", "5")
    assert watch.finish() == 2
    verdict = watch.verdict()
    assert verdict["verdict"] == "hold" and verdict["reason"].startswith("FLEET-WIDE BREACH")
    assert verdict["fleet_breach"] >= 1 and verdict["red"] == 0 and verdict["revert"] is None
    assert not watch.marker.exists()
    assert "FLEET-WIDE BREACH (errors)" in read_text(watch.out)


def test_decision_log_parses_and_holds_no_secret(fleet: Fleet, start: Starter) -> None:
    token, password = "tok-3f9a1c77", "pw-77e1b0c3"
    runs = [
        start("token", "--window", "2", env={"PROM_TOKEN": token}),
        start("basic", "--window", "2",
              "--prom-url", fleet.prom.url.replace("http://", f"http://watch:{password}@")),
    ]  # fmt: skip
    for watch in runs:
        # The credentials worked: no probe was blind and one judged the canary green. Promote or hold is not
        # this test's point: on a loaded machine the first of two probes can come before the canary has 20
        # requests in Prometheus (inconclusive), and 1 green of 2 is a hold.
        code, verdict = watch.finish(), watch.verdict()
        assert code in (0, 2) and verdict["blind"] == 0 and verdict["green"] >= 1, read_text(watch.out)
        records = watch.records()  # every line parses as JSON
        assert [r["event"] for r in records][0] == "start"
        assert records[-1]["event"] == "verdict"
        for path in (watch.decisions, watch.verdict_file, watch.out):
            text = path.read_text()
            assert token not in text and password not in text, path
    settings = runs[0].records()[0]["settings"]
    assert settings["prom_token"] == "***"
    basic = runs[1].records()[0]["settings"]
    assert basic["prom_password"] == "***" and basic["prom_url"] == fleet.prom.url


def test_terminated_watcher_leaves_no_verdict(fleet: Fleet, start: Starter) -> None:
    watch = start("killed", "--window", "60")
    watch.wait_for_probes(1)
    watch.proc.send_signal(signal.SIGTERM)
    assert watch.finish() == 128 + signal.SIGTERM
    assert not watch.verdict_file.exists()  # the deploy treats a missing verdict as red
    assert watch.records()[-1]["event"] == "aborted"


def test_failed_revert_is_exit_3_and_loud(fleet: Fleet, start: Starter) -> None:
    fleet.canary.set(error_ratio=0.5)
    watch = start("revert-fails", "--window", "60", "--revert-command", "false")
    assert watch.finish() == 3
    verdict = watch.verdict()
    assert verdict["verdict"] == "revert_failed" and verdict["exit_code"] == 3
    assert "THE REVERT FAILED" in verdict["reason"] and verdict["revert"]["ok"] is False
    assert "REVERT FAILED: revert command exited 1" in read_text(watch.out)


def test_red_canary_is_reverted_through_the_rollback_playbook(
    fleet: Fleet, start: Starter, tmp_path: Path
) -> None:
    playbook = tmp_path / "rollback.yml"
    playbook.write_text(
        "- name: Roll back (test stand-in)\n  hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - name: Record the rollback\n      ansible.builtin.copy:\n"
        '        dest: "{{ marker_dir }}/{{ inventory_hostname }}"\n'
        '        content: "rolled back"\n        mode: "0644"\n'
    )
    host = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(json.dumps({"all": {"hosts": {n: host for n in fleet.nodes}}}))
    markers = tmp_path / "markers"
    markers.mkdir()
    fleet.canary.set(error_ratio=0.5)
    watch = start(
        "ansible", "--window", "60", "--revert-action", "ansible", "--playbook", str(playbook),
        "--inventory", str(inventory),
        "--revert-extravars", json.dumps({"marker_dir": str(markers)}),
    )  # fmt: skip
    assert watch.finish() == 1, read_text(watch.out)
    assert [p.name for p in markers.iterdir()] == [fleet.canary_node]  # --limit: canary only
    revert = watch.verdict()["revert"]
    assert revert["action"] == "ansible" and revert["ok"] is True


def test_canary_that_stops_reporting_is_reverted_after_max_staleness(
    fleet: Fleet, start: Starter
) -> None:
    watch = start("silent", "--window", "60", "--max-staleness", "3")
    watch.wait_for_probes(2, state="green")
    fleet.canary.close()  # the node stops answering scrapes; the control still reports
    assert watch.finish() == 1
    verdict = watch.verdict()
    assert verdict["verdict"] == "reverted" and verdict["red"] == 0 and verdict["blind"] >= 1
    assert "the control is scraped but the canary is not" in verdict["reason"]
    assert watch.marker.read_text() == fleet.canary_node


def test_check_traffic_warns_of_a_canary_too_quiet_for_its_window_to_promote(tmp_path: Path) -> None:
    """Preflight's --check-traffic reads the canary's recent requests from a real Prometheus: a node at 0.1
    request/s cannot get 80% of a 30 s window's probes past the judge's 20-request minimum; one at 50/s can.
    Both are new to Prometheus (seconds of samples in a 300 s lookback): the rate is over what was scraped."""
    with FakeExporter(rps=0.1) as quiet, FakeExporter(rps=50) as busy:
        targets = {"quiet-1": quiet.address, "busy-1": busy.address}
        with running_prometheus(tmp_path, targets) as prom:
            wait_for_samples(prom.url, "edge_http_requests_total", count=5)

            def check(node: str) -> str:
                argv = [sys.executable, "-m", "watcher", "--check-config", "--check-traffic",
                        "--prom-url", prom.url, "--canary-selector", f'node="{node}"',
                        "--control-selector", f'node!="{node}"', "--revert-action", "none",
                        "--window", "30", "--interval", "3", "--scrape-interval", "1"]
                done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=60,
                                      env={k: v for k, v in os.environ.items() if not k.startswith(("PROM_", "SLI_"))})
                assert done.returncode == 0, done.stderr
                return done.stdout

            said = check("quiet-1")
            assert "warning: the canary served" in said and "at most 0 of the window's 10 probes can be green and " \
                "promotion needs 8; the gate will hold a healthy release" in said, said
            assert check("busy-1") == "settings ok: 10 probes, every 3s\n"
