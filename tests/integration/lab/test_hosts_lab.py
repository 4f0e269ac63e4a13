"""The hosts-mode lab (issue 9): each edge node its own network namespace, address and sshd, reached over
real SSH with the lab's key and known_hosts only. The main deploy, revert, rollback and status cases of
their own modules run here again on this lab (the same test bodies), and the partition drills; lab-down
leaving nothing is checked when the session's hosts lab is taken down (conftest.hosts_lab).

All of it in this one file, so that one xdist worker (--dist loadfile) brings a hosts-mode lab up."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_canary.lab.settings import known_hosts_option
from tests.helpers.fleet import fleet_versions, reset_fleet, sha256
from tests.helpers.lab import Lab
from tests.helpers.netns_ports import loopback_ports_in
from tests.helpers.paths import REPO
from tests.helpers.runner_job import job_env, private_data_dir, run_here, run_on_node, short_control_dir
from tests.helpers.watch_host import WatchHost, running_watch_host
from tests.integration.edge_canary.gameday import test_drills as test_gameday
from tests.integration.lab import watch_host_cases
from tests.integration.lab.test_lab_lifecycle import recap_changes
from tests.integration.playbooks import test_deploy, test_status

ON_HOSTS = pytest.mark.parametrize("fleet", ["hosts_lab"], indirect=True)


def ssh(lab: Lab, address: str, *options: str) -> subprocess.CompletedProcess[str]:
    keys = lab.lab_dir / "ssh"
    return subprocess.run(["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "IdentitiesOnly=yes",
                           "-i", str(keys / "id_ed25519"), *options, f"root@{address}", "ip -4 -o route"],
                          capture_output=True, text=True, timeout=30)


def test_second_lab_up_changes_nothing(hosts_lab: Lab) -> None:
    again = hosts_lab.up()
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr
    changes = recap_changes(again.stdout)
    assert set(changes) == {"localhost", "edge-1", "edge-2", "edge-3"} and set(changes.values()) == {0}, changes


def test_nodes_are_reached_over_ssh_with_the_lab_key_and_known_hosts_only(hosts_lab: Lab, tmp_path: Path) -> None:
    s = hosts_lab.settings
    known_hosts = hosts_lab.lab_dir / "ssh" / "known_hosts"
    assert sorted(line.split()[0] for line in known_hosts.read_text().splitlines()) == sorted(s.node_addresses())
    for address in s.node_addresses():
        ok = ssh(hosts_lab, address, "-o", known_hosts_option(known_hosts), "-o", "StrictHostKeyChecking=yes")
        assert ok.returncode == 0, ok.stderr
        # Inside the node's namespace: one route, to the lab's subnet only (nothing can leave the machine).
        routes = ok.stdout.splitlines()
        assert len(routes) == 1 and routes[0].startswith(f"{s.subnet} dev ") and f"src {address}" in routes[0], routes
    # An unknown host key is refused, never accepted.
    unknown = ssh(hosts_lab, s.node_addresses()[0], "-o", known_hosts_option(tmp_path / "empty"),
                  "-o", "StrictHostKeyChecking=yes")
    assert unknown.returncode != 0 and "Host key verification failed" in unknown.stderr


def test_a_mode_switch_of_an_existing_lab_is_refused_with_nothing_changed(hosts_lab: Lab) -> None:
    before = hosts_lab.settings
    switched = Lab(hosts_lab.lab_dir, {**hosts_lab.overrides, "LAB_MODE": "loopback"}).up()
    assert switched.returncode != 0
    assert switched.stderr.strip().splitlines() == [
        f"lab-up: the lab in {hosts_lab.lab_dir} was brought up in hosts mode, not loopback; make lab-clean "
        "first (it removes that lab's state) or use another LAB_DIR"]
    assert hosts_lab.settings == before
    assert hosts_lab.make("lab-status").returncode == 0


def test_partition_drills_are_refused_on_the_loopback_lab(lab: Lab, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "edge_canary", "gameday", "--scenario", "partition-node",
                           "--report-dir", str(tmp_path)], env=lab.env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "gameday: partition-node cuts a network path, which only the hosts-mode lab allows: run it there "
        "(make lab-up LAB_MODE=hosts); nothing was changed"]
    assert not list(tmp_path.iterdir())


# --- the main cases of the other modules, over SSH ------------------------------------------------


@ON_HOSTS
def test_green_deploy_and_rollback_over_ssh(fleet: Lab, artifacts: dict[str, Path], tmp_path: Path) -> None:
    test_deploy.test_green_deploy_keeps_v1_as_previous_and_a_rollback_brings_it_back(fleet, artifacts, tmp_path)


@ON_HOSTS
def test_unhealthy_canary_is_put_back_over_ssh(fleet: Lab, artifacts: dict[str, Path]) -> None:
    test_deploy.test_canary_that_fails_its_health_is_put_back_on_v1(fleet, artifacts, "v2-unhealthy")


@ON_HOSTS
def test_status_over_ssh(fleet: Lab, artifacts: dict[str, Path]) -> None:
    test_status.test_status_of_a_healthy_fleet_is_ok_with_one_row_per_node(fleet, artifacts)


# --- partition drills -------------------------------------------------------------------------------


@pytest.fixture
def cut_fleet(fleet: Lab) -> Iterator[Lab]:
    """The hosts lab's fleet, every link back up afterwards (then `fleet` puts it back on v1)."""
    try:
        yield fleet
    finally:
        for node in fleet.settings.node_names():  # a drill that broke may have left its cut
            subprocess.run([sys.executable, "-m", "edge_canary", "lab-netns", "heal", node], env=fleet.env)


def assert_links_up(lab: Lab) -> None:
    prefix = lab.settings.link_prefix()
    down = subprocess.run(["ip", "-o", "link", "show", "down"], capture_output=True, text=True).stdout
    assert f"{prefix}-" not in down, f"a link of the lab is still down:\n{down}"


@ON_HOSTS
@pytest.mark.parametrize(("scenario", "verdict", "own_check"), [
    ("partition-node", "reverted", "caught while the canary was cut off"),
    ("partition-peer", "promote", "the deploy stopped at the cut peer and said so"),
])
def test_partition_drill_heals_and_leaves_the_fleet_on_v1_with_failures_only_while_haproxy_noticed(
        cut_fleet: Lab, artifacts: dict[str, Path], tmp_path: Path, scenario: str, verdict: str,
        own_check: str) -> None:
    done = test_gameday.run_drill(cut_fleet, scenario, artifacts, tmp_path)
    test_gameday.assert_passed(done, scenario, verdict)
    assert_links_up(cut_fleet)
    test_gameday.assert_fleet_on(cut_fleet, artifacts["v1"])
    # Only the canary ever held v2: reverted by the watcher (node), or by the drill's own rollback after the
    # promote (peer); the cut peer and the others were never touched.
    test_gameday.assert_reverted(cut_fleet, artifacts["v2"])
    rows = test_gameday.expectation_rows(test_gameday.report_of(tmp_path, scenario))
    assert rows["HAProxy routed around the cut node"] == "PASS"
    assert rows[own_check] == "PASS"


def netns(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge_canary", "lab-netns", *args], env=lab.env,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def nft_works() -> None:
    """The Prometheus cut is an nftables rule: skip, saying why, where nft cannot add one."""
    try:
        probe = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        pytest.skip("the Prometheus cut needs nft (Debian's nftables; make setup installs it)")
    if probe.returncode != 0:
        pytest.skip(f"nft does not work here: {probe.stderr.strip()}")


def prometheus_cut_tables(lab: Lab) -> list[str]:
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=True).stdout
    return [line for line in tables.splitlines() if lab.settings.link_prefix() in line]


def prometheus_unreachable(lab: Lab) -> bool:
    """True when a query goes unanswered until its timeout (dropped, as over a cut link; not refused)."""
    try:
        lab.prom_query("vector(1)")
    except TimeoutError:
        return True
    except urllib.error.URLError as exc:
        return isinstance(exc.reason, TimeoutError)
    return False


@pytest.mark.usefixtures("nft_works")
def test_the_prometheus_cut_drops_only_what_goes_to_prometheus_and_lab_up_heals_a_leftover(hosts_lab: Lab) -> None:
    try:
        cut = netns(hosts_lab, "cut-prometheus")
        assert cut.returncode == 0 and "cut off" in cut.stdout, cut.stderr
        assert len(prometheus_cut_tables(hosts_lab)) == 1
        assert prometheus_unreachable(hosts_lab)
        assert hosts_lab.node_version("edge-1")["version"]  # the nodes are still reached
        again = netns(hosts_lab, "cut-prometheus")  # a second cut replaces the rule, never stacks two
        assert again.returncode == 0 and len(prometheus_cut_tables(hosts_lab)) == 1
        # A drill that crashed leaves its cut: lab-up (lab-netns up) heals it.
        healed = netns(hosts_lab, "up")
        assert healed.returncode == 0 and "reachable again" in healed.stdout, healed.stdout + healed.stderr
        assert prometheus_cut_tables(hosts_lab) == []
        assert hosts_lab.prom_query("vector(1)")
        assert netns(hosts_lab, "heal-prometheus").stdout.strip() == "lab-netns: nothing to do"
        # A lab folder removed during a cut loses its record, not the rule: lab-up heals it all the same.
        assert netns(hosts_lab, "cut-prometheus").returncode == 0
        record_path = hosts_lab.lab_dir / "hosts" / "network.json"
        record = json.loads(record_path.read_text())
        record_path.write_text(json.dumps({k: v for k, v in record.items() if k != "prometheus_cut"}))
        healed = netns(hosts_lab, "up")
        assert healed.returncode == 0 and "reachable again" in healed.stdout, healed.stdout + healed.stderr
        assert prometheus_cut_tables(hosts_lab) == [] and hosts_lab.prom_query("vector(1)")
    finally:
        netns(hosts_lab, "heal-prometheus")


@ON_HOSTS
@pytest.mark.usefixtures("nft_works")
def test_prometheus_partition_drill_the_blind_watcher_reverts_and_the_cut_is_healed(
        fleet: Lab, artifacts: dict[str, Path], tmp_path: Path) -> None:
    try:
        done = test_gameday.run_drill(fleet, "partition-prometheus", artifacts, tmp_path)
    finally:
        netns(fleet, "heal-prometheus")  # a drill that broke may have left its cut
    test_gameday.assert_passed(done, "partition-prometheus", "reverted")
    assert "the watcher is cut off from Prometheus" in done.stdout
    assert prometheus_cut_tables(fleet) == [] and fleet.prom_query("vector(1)")
    test_gameday.assert_fleet_on(fleet, artifacts["v1"])
    test_gameday.assert_reverted(fleet, artifacts["v2"])
    rows = test_gameday.expectation_rows(test_gameday.report_of(tmp_path, "partition-prometheus"))
    assert rows["caught while Prometheus was cut off"] == "PASS"
    assert rows["no collateral failures"] == "PASS"


# --- the watch host (inventory group edge_canary_watch) ------------------------------------------------


@pytest.fixture
def watch_host(hosts_lab: Lab) -> Iterator[WatchHost]:
    """A watch host beside the hosts lab's nodes: its own sshd, supervisord and state folder."""
    with running_watch_host(hosts_lab) as watch:
        yield watch


@ON_HOSTS
def test_a_controller_killed_in_the_watch_window_leaves_the_watch_host_to_revert_and_release_the_lock(
        fleet: Lab, watch_host: WatchHost, artifacts: dict[str, Path], tmp_path: Path) -> None:
    watch_host_cases.controller_killed_in_the_watch_window_and_a_second_controller_refused(
        fleet, watch_host, artifacts, tmp_path)


@ON_HOSTS
def test_prometheus_credentials_reach_the_watch_host_in_a_file_never_on_a_command_line(
        fleet: Lab, watch_host: WatchHost, tmp_path: Path) -> None:
    watch_host_cases.credentials_reach_the_watch_host_in_a_file_never_on_a_command_line(fleet, watch_host, tmp_path)


# --- remote execution as AWX's mesh does it -----------------------------------------------------------


def fleet_state(lab: Lab) -> dict[str, object]:
    """What a deploy leaves: each node's served version, binary, .previous and release record, and its LB state."""
    nodes = {}
    for node in lab.settings.node_names():
        home = lab.node_dir(node)
        record = (home / "release.json").read_text() if (home / "release.json").exists() else "{}"
        nodes[node] = {"serving": lab.node_version(node)["version"], "edge": sha256(home / "edge"),
                       "previous": sha256(home / "edge.previous"),
                       "recorded": json.loads(record).get("current", {}).get("version")}
    return {"nodes": nodes, "lb": lab.lb_states()}


@ON_HOSTS
def test_a_deploy_run_through_transmit_worker_process_on_an_execution_node_ends_like_a_local_run(
        fleet: Lab, artifacts: dict[str, Path], tmp_path: Path) -> None:
    """The job streamed to edge-3's namespace over SSH (ansible-runner transmit | ssh worker | process), as
    AWX's mesh runs it on an execution node, with the play's own id, checks and summary; then the same job
    run here (ansible-runner run): the fleet ends the same. The lab's Prometheus and Alertmanager (the
    control host's loopback) are reachable at the same address inside the execution node."""
    s = fleet.settings
    node, address = s.node_names()[-1], s.node_addresses()[-1]
    keys = fleet.lab_dir / "ssh"
    ssh_argv = ["ssh", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-i", str(keys / "id_ed25519"),
                "-o", known_hosts_option(keys / "known_hosts"), "-o", "StrictHostKeyChecking=yes",
                f"root@{address}"]
    # The canary and one peer (a peer roll over SSH is half a minute or more on a busy box; one shows it).
    canary, peer = s.node_names()[:2]
    fast = {"deploy_artifact": str(artifacts["v2"]), "deploy_canary_node": canary, "deploy_peer_nodes": peer,
            "sli_window": "9", "sli_probe_interval": "3"}
    with short_control_dir() as cp, loopback_ports_in(f"{s.link_prefix()}-{node}", [s.prom_port, s.prom_port + 3]):
        remote_job = private_data_dir(tmp_path / "remote", REPO / "lab.hosts.py",
                                      {**fast, "deploy_id": "mesh-remote-1"}, job_env(fleet.env, Path(cp)))
        code, out, err = run_on_node(remote_job, "playbooks/deploy-canary.yml", ssh_argv, tmp_path / "remote")
    assert code == 0, out[-5000:] + err[-3000:]
    assert "EDGE_CANARY_SUMMARY " in out and '"status": "successful"' in out and "mesh-remote-1" in out, out[-3000:]
    remote = fleet_state(fleet)
    assert fleet_versions(fleet) == {n: "v2" if n in (canary, peer) else "v1" for n in s.node_names()}

    reset_fleet(fleet, artifacts["v1"])
    with short_control_dir() as cp:
        local_job = private_data_dir(tmp_path / "local", REPO / "lab.hosts.py", {**fast, "deploy_id": "mesh-local-1"},
                                     job_env(fleet.env, Path(cp)))
        local = run_here(local_job, "playbooks/deploy-canary.yml")
    assert local.returncode == 0, local.stdout[-5000:] + local.stderr[-2000:]
    assert fleet_state(fleet) == remote
