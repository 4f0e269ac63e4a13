"""A lab with two points of presence (LAB_POPS=2), in hosts mode: edge-1..3 behind lb-1, edge-4..6 behind
lb-2, each LB its own HAProxy. Each LB serves its own PoP only, Prometheus tells the PoPs apart, and the
plays that touch a node's load balancers (rollback, status) use the node's own PoP's. A deploy goes wave by
wave (issue 17): each PoP's canary judged against the rest of its PoP, a red wave reverted by its watcher
(on a watch host) with the rest of its PoP untouched.

One lab for the whole file (a few minutes): its folder, ports (+250 above the slot's) and subnet are its own,
so it runs beside the slot's other labs."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.edge import build_artifact
from tests.helpers.fleet import fleet_versions, node_pids, reset_fleet, sha256
from tests.helpers.lab import REPO, Lab
from tests.helpers.summary import record_dir, warnings_in
from tests.helpers.watch_host import WatchHost, running_watch_host
from tests.helpers.watch_window import PROMOTING_WINDOW
from tests.integration.conftest import TEST_LAB_PORTS, TEST_SLOT, hosts_lab_up
from tests.integration.edge_canary.gameday import test_drills as test_gameday
from tests.integration.playbooks.test_approval import Deploy, decide

POPS_LAB_DIR = REPO / (f".lab-test-pops-{TEST_SLOT}" if TEST_SLOT else ".lab-test-pops")
POPS_LAB_SETTINGS = {**{name: str(port + 1000 * TEST_SLOT + 250) for name, port in TEST_LAB_PORTS.items()},
                     "LAB_MODE": "hosts", "LAB_SUBNET": f"10.215.{TEST_SLOT}.0/24",
                     # 10 requests/s per node: the watcher's 20 requests within a 9 s window
                     "LAB_NODES": "6", "LAB_POPS": "2", "LAB_TRAFFIC_RPS": "60"}
POP1, POP2 = ["edge-1", "edge-2", "edge-3"], ["edge-4", "edge-5", "edge-6"]


@pytest.fixture(scope="module")
def pops_lab() -> Iterator[Lab]:
    with hosts_lab_up(POPS_LAB_DIR, POPS_LAB_SETTINGS) as the_lab:
        yield the_lab


@pytest.fixture
def pops(pops_lab: Lab, artifacts: dict[str, Path]) -> Iterator[Lab]:
    """The two-PoP lab's fleet on v1, and put back there afterwards."""
    reset_fleet(pops_lab, artifacts["v1"])
    yield pops_lab
    reset_fleet(pops_lab, artifacts["v1"])


def nodes_reached(lab: Lab, lb: str, requests: int = 15) -> set[str]:
    """The nodes that answered requests sent through one LB's frontend (each node's pid is its own)."""
    by_pid = {pid: node for node, pid in node_pids(lab).items()}
    reached = set()
    for _ in range(requests):
        with urllib.request.urlopen(lab.frontend_url("/version", lb=lb), timeout=5) as resp:
            reached.add(by_pid[json.loads(resp.read())["pid"]])
    return reached


def test_each_lb_serves_its_own_pops_nodes_only(pops: Lab) -> None:
    assert pops.settings.pop_nodes() == {"pop1": POP1, "pop2": POP2}
    assert set(pops.lb_states("lb-1")) == set(POP1) and set(pops.lb_states("lb-2")) == set(POP2)
    assert nodes_reached(pops, "lb-1") == set(POP1)
    assert nodes_reached(pops, "lb-2") == set(POP2)
    # The merged view reports each node from its own PoP's LB.
    assert pops.lb_states() == dict.fromkeys(POP1 + POP2, "READY")
    status = pops.make("lab-status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert [line.split()[:3] for line in status.stdout.splitlines() if line.startswith("haproxy")] == [
        ["haproxy", "lb-1", "RUNNING"], ["haproxy", "lb-2", "RUNNING"]]


def test_prometheus_labels_the_nodes_and_the_lbs_with_their_pop(pops: Lab) -> None:
    def up(query: str) -> dict[str, str]:
        return {row["metric"].get("node") or row["metric"]["lb"]: row["value"][1] for row in pops.prom_query(query)}

    assert up('up{job="edge",pop="pop1"}') == dict.fromkeys(POP1, "1")
    assert up('up{job="edge",pop="pop2"}') == dict.fromkeys(POP2, "1")
    assert up('up{job="haproxy"}') == {"lb-1": "1", "lb-2": "1"}
    # Both frontends take the lab's traffic: every node is sent requests.
    served = pops.prom_query('sum by (node) (increase(edge_http_requests_total{job="edge"}[30s])) > 0')
    assert sorted(row["metric"]["node"] for row in served) == POP1 + POP2


def server_lines(lab: Lab, lb: str) -> dict[str, tuple[str, ...]]:
    """Each server's operational and admin state and weights on one LB (no timers or counters)."""
    lines = lab.haproxy("show servers state edge", lb).splitlines()
    header = next(line for line in lines if line.startswith("# be_id")).lstrip("# ").split()
    rows = [dict(zip(header, line.split(), strict=False)) for line in lines
            if line and not line.startswith("#") and len(line.split()) >= len(header)]
    keep = ("srv_op_state", "srv_admin_state", "srv_uweight", "srv_iweight")
    return {row["srv_name"]: tuple(row[key] for key in keep) for row in rows}


def test_rollback_of_a_pop2_node_drains_and_readies_it_on_lb2_only(pops: Lab, artifacts: dict[str, Path]) -> None:
    pops.install("edge-5", artifacts["v2"])
    pops.wait_until(lambda: fleet_versions(pops)["edge-5"] == "v2" and pops.server_stats()["edge-5"]["status"] == "UP",
                    60, "edge-5 serving v2, UP on lb-2")
    lb1_before = server_lines(pops, "lb-1")
    seen_on_lb2: set[str] = set()
    stop = threading.Event()

    def watch_lb2() -> None:
        while not stop.is_set():
            seen_on_lb2.add(pops.lb_states("lb-2")["edge-5"])
            stop.wait(0.1)

    watcher = threading.Thread(target=watch_lb2)
    watcher.start()
    try:
        result = pops.make("rollback", extra_env={"NODES": "edge-5", "BATCH": "10"})
    finally:
        stop.set()
        watcher.join()
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    # Without MAX_UNAVAILABLE a batch is cut to the smallest PoP's nodes but one: never a whole PoP at once.
    assert "at most 2 out of rotation at once" in result.stdout, result.stdout[-3000:]
    assert fleet_versions(pops) == dict.fromkeys(POP1 + POP2, "v1")
    assert sha256(pops.node_dir("edge-5") / "edge") == sha256(artifacts["v1"])
    assert {"DRAIN", "READY"} <= seen_on_lb2 and pops.lb_states("lb-2") == dict.fromkeys(POP2, "READY")
    # lb-1 was never asked: not one of its servers changed (state, weight), and no step named it.
    assert server_lines(pops, "lb-1") == lb1_before
    lb_steps = [line for line in result.stdout.splitlines() if "edge-5 -> lb-" in line]
    assert lb_steps and all("edge-5 -> lb-2" in line for line in lb_steps), lb_steps


def test_status_asks_each_node_its_own_pops_lb(pops: Lab) -> None:
    result = pops.make("status", extra_env={"JSON": "1"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    rows = {row["node"]: row for row in json.loads(result.stdout)["nodes"]}
    assert {node: [(lb["lb"], lb["admin_state"]) for lb in row["lbs"]] for node, row in rows.items()} == {
        **{node: [("lb-1", "ready")] for node in POP1}, **{node: [("lb-2", "ready")] for node in POP2}}


# --- waves across the PoPs (docs/ARCHITECTURE.md, Waves) ----------------------------------------------

DEPLOY_ENV = {**PROMOTING_WINDOW, "BATCH": "2"}


@pytest.fixture
def pops_watch(pops: Lab) -> Iterator[WatchHost]:
    """A watch host beside the two PoPs: the watchers, the lock and the records live there."""
    with running_watch_host(pops) as watch:
        yield watch


def record_of(result: subprocess.CompletedProcess[str]) -> Path:
    return record_dir(result.stdout)


def started(run_dir: Path, node: str) -> float:
    steps = json.loads((run_dir / "nodes" / f"{node}.json").read_text())["steps"]
    return float(steps[0]["at"])


def test_a_green_deploy_goes_wave_by_wave_each_canary_judged_against_its_own_pop(
        pops: Lab, artifacts: dict[str, Path]) -> None:
    result = pops.make("deploy-canary",
                       extra_env={"ARTIFACT": str(artifacts["v2"]), "CANARY_NODE": "edge-2", **DEPLOY_ENV})
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert warnings_in(result.stdout + result.stderr) == []
    assert set(fleet_versions(pops).values()) == {"v2"}
    assert pops.lb_states() == dict.fromkeys(POP1 + POP2, "READY")
    run_dir = record_of(result)
    assert json.loads((run_dir / "deploy.json").read_text())["waves"] == [
        {"wave": 1, "pop": "pop1", "canary": "edge-2", "rest": ["edge-1", "edge-3"]},
        {"wave": 2, "pop": "pop2", "canary": "edge-4", "rest": ["edge-5", "edge-6"]},
    ]
    # Each canary has its own watcher, judged against the rest of its own PoP.
    assert json.loads((run_dir / "watcher.json").read_text())["control_selector"] == \
        'job="edge",pop="pop1",node!="edge-2"'
    assert json.loads((run_dir / "wave-2" / "watcher.json").read_text())["control_selector"] == \
        'job="edge",pop="pop2",node!="edge-4"'
    control_seen = [e for e in map(json.loads, (run_dir / "wave-2" / "decisions.jsonl").read_text().splitlines())
                    if e["event"] == "probe" and e.get("control")]
    assert control_seen, "wave 2's canary was never compared with the rest of pop2"
    assert "SLI verdict of wave 2 (pop2, canary edge-4): PROMOTE" in result.stdout
    assert "    watcher wave-2 | verdict: promote" in result.stdout, result.stdout[-4000:]  # its live lines too
    printed = " ".join(result.stdout.split())  # progress: each wave's canary, then its batches
    assert "wave 2/2 (pop2): its canary edge-4, judged against the rest of pop2" in printed, result.stdout[-4000:]
    assert "wave 2/2 (pop2): batch edge-5" in printed, result.stdout[-4000:]
    # Wave by wave: pop2's canary after every pop1 node, the rest of pop2 after its verdict.
    wave2_verdict = (run_dir / "wave-2" / "verdict.json").stat().st_mtime
    assert started(run_dir, "edge-4") > max(started(run_dir, node) for node in POP1)
    assert min(started(run_dir, "edge-5"), started(run_dir, "edge-6")) > wave2_verdict


def test_a_red_wave_is_reverted_by_its_watcher_on_the_watch_host_and_the_rest_of_its_pop_is_untouched(
        pops: Lab, pops_watch: WatchHost, artifacts: dict[str, Path], tmp_path: Path) -> None:
    """A release whose new code path fails, enabled in pop2 only (rollout_pct=100 there): pop1's gate is
    green, pop2's canary goes red and its watcher (on the watch host) reverts it; edge-5 and edge-6 are
    never touched."""
    newpath = build_artifact(tmp_path / "edge-v2-newpath", "v2-newpath", "errors=0.3:502,scope=new")
    for node in POP2:
        (pops.node_dir(node) / "edge.conf").write_text("rollout_pct=100\n")
    untouched = {node: sha256(pops.node_dir(node) / "edge") for node in ("edge-5", "edge-6")}
    pids = node_pids(pops)
    result = subprocess.run(["make", "--no-print-directory", "deploy-canary"], cwd=REPO, capture_output=True,
                            text=True, timeout=900, env={**pops_watch.env, "ARTIFACT": str(newpath),
                                                         "CANARY_NODE": "edge-1", **DEPLOY_ENV})
    assert result.returncode != 0
    assert "SLI gate of wave 2 (pop2): REVERTED" in result.stdout, result.stdout[-4000:]
    assert fleet_versions(pops) == {**dict.fromkeys(POP1, "v2-newpath"), **dict.fromkeys(POP2, "v1")}
    assert sha256(pops.node_dir("edge-4") / "edge.rolled-back") == sha256(newpath)
    assert {node: sha256(pops.node_dir(node) / "edge") for node in ("edge-5", "edge-6")} == untouched
    assert {node: node_pids(pops)[node] for node in ("edge-5", "edge-6")} == {n: pids[n] for n in ("edge-5", "edge-6")}
    assert pops.lb_states() == dict.fromkeys(POP1 + POP2, "READY")
    deploy_id = record_of(result).name
    verdict = json.loads((pops_watch.state / "runs" / deploy_id / "wave-2" / "verdict.json").read_text())
    assert verdict["verdict"] == "reverted" and "errors" in verdict["reason"]
    # The run's lock keeper on the watch host ends with the run's SSH session: released within seconds.
    def lock_shown() -> str:
        return subprocess.run([sys.executable, "-m", "edge_canary", "lock", "--dir", str(pops_watch.state), "show"],
                              capture_output=True, text=True, cwd=REPO).stdout

    pops.wait_until(lambda: lock_shown().startswith("deploy: free"), 60, "the deploy lock on the watch host released")
    # make status reads that lock where deploys take it: on the watch host, over SSH.
    status = subprocess.run(["make", "--no-print-directory", "status"], cwd=REPO, capture_output=True, text=True,
                            timeout=300, env={**pops_watch.env, "JSON": "1"})
    assert json.loads(status.stdout)["in_progress"] == [], status.stdout[-3000:] + status.stderr[-2000:]


def test_a_red_first_wave_leaves_the_other_pop_untouched(pops: Lab, artifacts: dict[str, Path]) -> None:
    before = {node: sha256(pops.node_dir(node) / "edge") for node in POP1 + POP2}
    result = pops.make("deploy-canary", extra_env={"ARTIFACT": str(artifacts["v2-errors"]), "CANARY_NODE": "edge-3",
                                                   **DEPLOY_ENV})
    assert result.returncode != 0 and "SLI verdict: REVERTED" in result.stdout, result.stdout[-4000:]
    assert set(fleet_versions(pops).values()) == {"v1"}
    assert {node: sha256(pops.node_dir(node) / "edge") for node in POP1 + POP2 if node != "edge-3"} == \
        {node: sha for node, sha in before.items() if node != "edge-3"}
    assert not (record_of(result) / "wave-2").exists()



def test_a_wave_canary_put_in_maintenance_during_the_deploy_stops_it_and_stays_there(
        pops: Lab, artifacts: dict[str, Path]) -> None:
    """A later wave's canary put in maintenance while the deploy waited for approval: judged out of rotation
    it would take no traffic. The roll refuses it untouched, leaves it in maintenance and stops the deploy
    before the rest of its PoP."""
    run = Deploy(pops, artifacts["v2"], APPROVE="1", CANARY_NODE="edge-1", BATCH="2")
    pop2 = {node: sha256(pops.node_dir(node) / "edge") for node in POP2}
    pids = node_pids(pops)
    try:
        run.wait_awaiting()
        pops.haproxy("set server edge/edge-4 state maint", lb="lb-2")
        assert decide(pops, "approve", run.deploy_id).returncode == 0
        out = run.finish()
    finally:
        if run.proc.poll() is None:
            run.proc.kill()
            run.proc.communicate()
    try:
        assert run.proc.returncode != 0, out[-4000:]
        printed = " ".join(out.split())
        assert "edge-4 was put in maintenance on lb-2 after preflight: a canary out of rotation takes no traffic" \
            in printed, out[-4000:]
        assert "is left in maintenance on lb-2 as found" in printed, out[-4000:]
        assert fleet_versions(pops) == {**dict.fromkeys(POP1, "v2"), **dict.fromkeys(POP2, "v1")}
        assert {node: sha256(pops.node_dir(node) / "edge") for node in POP2} == pop2
        assert {node: node_pids(pops)[node] for node in POP2} == {node: pids[node] for node in POP2}
        assert pops.lb_states() == {**dict.fromkeys(POP1 + POP2, "READY"), "edge-4": "MAINT"}
    finally:
        pops.haproxy("set server edge/edge-4 state ready", lb="lb-2")


def test_a_game_day_drill_runs_across_pops_each_node_in_rotation_on_its_own_pops_lb(
        pops: Lab, artifacts: dict[str, Path], tmp_path: Path) -> None:
    """A drill asked every load balancer for every node, so across PoPs it found each node "unknown" to the
    other PoP's LB and refused to start (a staging with PoPs could run no game day)."""
    done = test_gameday.run_drill(pops, "errors", artifacts, tmp_path)
    test_gameday.assert_passed(done, "errors", "reverted")
    rows = test_gameday.expectation_rows(test_gameday.report_of(tmp_path, "errors"))
    assert rows["ready on every LB"] == "PASS", rows
    assert set(fleet_versions(pops).values()) == {"v1"}
    assert (pops.node_dir("edge-1") / "edge.rolled-back").exists()
