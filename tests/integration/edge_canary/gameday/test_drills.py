"""make gameday (issue 7) against the real test lab: every scenario's verdict, and the fleet afterwards
checked here, independently of the drill's own report (each node's /version and files, the HAProxy
admin socket, the lock files, Prometheus). Windows are short so the module fits CI."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.fleet import reset_fleet, sha256
from tests.helpers.lab import REPO, Lab
from tests.helpers.watch_window import PROMOTING_WINDOW

# The drill as the user runs it: `edge-canary gameday` (make gameday).
GAMEDAY = [sys.executable, "-m", "edge_canary", "gameday"]


@pytest.fixture
def fleet(lab: Lab, artifacts: dict[str, Path]) -> Iterator[Lab]:
    reset_fleet(lab, artifacts["v1"])
    try:
        yield lab
    finally:
        if lab.supervisorctl("status", "lab-prometheus").stdout.split()[1:2] != ["RUNNING"]:
            lab.supervisorctl("start", "lab-prometheus")
        reset_fleet(lab, artifacts["v1"])


def drill_argv(scenario: str, artifacts: dict[str, Path], reports: Path, *extra: str) -> list[str]:
    return [*GAMEDAY, "--scenario", scenario, "--artifacts-dir", str(artifacts["v1"].parent),
            "--report-dir", str(reports), "--window", PROMOTING_WINDOW["SLI_WINDOW"],
            "--interval", PROMOTING_WINDOW["SLI_PROBE_INTERVAL"], *extra]


def run_drill(lab: Lab, scenario: str, artifacts: dict[str, Path], reports: Path,
              *extra: str) -> subprocess.CompletedProcess[str]:
    argv = drill_argv(scenario, artifacts, reports, *extra)
    proc = subprocess.Popen(argv, env=lab.env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=1200)
    finally:
        stop_drill(proc)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def report_of(reports: Path, scenario: str) -> str:
    (run,) = reports.glob("gameday-*")
    md = run / scenario / f"{scenario}.md"
    png = run / scenario / f"{scenario}.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"no timeline PNG for {scenario}"
    return md.read_text()


def assert_fleet_on(lab: Lab, artifact: Path, config: str = "rollout_pct=0\n") -> None:
    """Every node serves the artifact, holds it as binary and as .previous, READY and UP, no lock left."""
    version = artifact.name.removeprefix("edge-")
    wanted = sha256(artifact)
    for node in lab.settings.node_names():
        home = lab.node_dir(node)
        assert serves(lab, node, version), f"{node} does not serve {version}"
        assert sha256(home / "edge") == wanted, f"{node}'s binary is not {version}"
        assert sha256(home / "edge.previous") == wanted, f"{node}'s .previous is not {version}"
        assert (home / "edge.conf").read_text().strip() == config.strip(), f"{node}'s config changed"
    assert set(lab.lb_states().values()) == {"READY"}, lab.lb_states()
    lab.wait_until(lambda: {row["status"] for row in lab.server_stats().values()} == {"UP"}, 30, "every node UP")
    assert not list((lab.lab_dir / "control").glob("*.lock")), "a lock was left behind"


def assert_reverted(lab: Lab, artifact: Path, canary: str = "edge-1") -> None:
    """The release was put aside on the canary only."""
    assert sha256(lab.node_dir(canary) / "edge.rolled-back") == sha256(artifact)
    for node in lab.settings.node_names():
        if node != canary:
            assert not (lab.node_dir(node) / "edge.rolled-back").exists(), f"{node} was touched"


def expectation_rows(report: str) -> dict[str, str]:
    return {m.group(2): m.group(1) for m in re.finditer(r"^\| (PASS|\*\*FAIL\*\*) \| ([^|]+?) \|", report, re.M)}


def serves(lab: Lab, node: str, version: str) -> bool:
    try:
        return bool(lab.node_version(node)["version"] == version)
    except OSError:  # restarting
        return False


def stop_drill(proc: subprocess.Popen[str]) -> None:
    """A drill left running by a failed test is stopped the way a user would: SIGTERM, so it cleans up."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(600)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def assert_passed(done: subprocess.CompletedProcess[str], scenario: str, verdict: str) -> None:
    assert done.returncode == 0, f"{scenario} drill failed:\n{done.stdout[-6000:]}\n{done.stderr[-3000:]}"
    assert f"gameday {scenario}: PASS — the tool said {verdict}" in done.stdout


# --- refusals (nothing changes) ---------------------------------------------------------------


def test_an_unknown_scenario_is_refused_with_the_list(tmp_path: Path, lab: Lab) -> None:
    done = subprocess.run([*GAMEDAY, "--scenario", "eror", "--report-dir", str(tmp_path)],
                          env=lab.env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "gameday: SCENARIO='eror' is not a game-day scenario; use one of green, errors, slow, unhealthy, crash, "
        "prometheus-outage, watcher-killed, bad-rollout, acceptance, partition-node, partition-peer, "
        "partition-prometheus, several separated by commas, or all "
        "(e.g. make gameday SCENARIO=errors)"]
    assert not list(tmp_path.iterdir())


def test_an_inventory_marked_production_is_refused_unless_allowed(fleet: Lab, tmp_path: Path,
                                                                   artifacts: dict[str, Path]) -> None:
    state = tmp_path / "state"
    inventory = tmp_path / "prod.hosts.yml"
    node_vars = "\n".join(
        f"        {node}: {{edge_install_dir: {fleet.node_dir(node)}, "
        f"edge_config_path: {fleet.node_dir(node)}/edge.conf, "
        f"edge_health_url: 'http://127.0.0.1:{fleet.node_port(node)}/health'}}"
        for node in fleet.settings.node_names())
    inventory.write_text(f"""\
all:
  vars:
    ansible_connection: local
    ansible_python_interpreter: "{{{{ ansible_playbook_python }}}}"
    edge_binary_name: edge
    haproxy_server_socket: {fleet.admin_socket}
    haproxy_server_backend: edge
    edge_canary_state_dir: {state}
    edge_canary_production: true
    prom_url: http://127.0.0.1:{fleet.settings.prom_port}
    sli_window: 30
    sli_probe_interval: 3
    prom_p95_threshold_s: 0.3
    prom_err_rate_threshold: 0.01
  children:
    edge:
      hosts:
{node_vars}
    haproxy:
      hosts:
        lb-1: {{}}
    control:
      hosts:
        localhost: {{}}
""")
    reports = tmp_path / "reports"
    done = run_drill(fleet, "errors", artifacts, reports, "--inventory", str(inventory))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "is marked production (edge_canary_production)" in done.stderr
    assert "ALLOW_PRODUCTION=1" in done.stderr
    assert not reports.exists() and not state.exists(), "a refused drill changed something"
    # Allowed, it goes past that gate (and stops at the next one: this inventory has no lab Prometheus to stop).
    allowed = run_drill(fleet, "prometheus-outage", artifacts, reports, "--inventory", str(inventory),
                        "--allow-production")
    assert allowed.returncode == 2, allowed.stdout + allowed.stderr
    assert "game-day lock held" in allowed.stdout
    assert "NOT STARTED, nothing changed: prometheus-outage needs to stop and start Prometheus" in allowed.stdout
    assert not (state / "gameday.lock").exists(), "the drill kept its lock"
    assert_fleet_on(fleet, artifacts["v1"])


@pytest.mark.parametrize("kind, message", [
    ("gameday", "the game-day lock is held (another gameday other-run"),
    ("deploy", "a deploy, rollback or rollout is running (deploy other-run"),
])
def test_a_drill_refuses_while_another_drill_or_a_deploy_runs(fleet: Lab, tmp_path: Path, artifacts: dict[str, Path],
                                                              kind: str, message: str) -> None:
    control = fleet.lab_dir / "control"
    lock = [sys.executable, "-m", "edge_canary", "lock", "--dir", str(control)]
    # The lock's holder is this test process: alive for as long as the test runs.
    subprocess.run([*lock, "acquire", kind, "--id", "other-run"], check=True, capture_output=True)
    try:
        done = run_drill(fleet, "errors", artifacts, tmp_path)
        if kind == "deploy":
            assert not (control / "gameday.lock").exists(), "the refused drill kept its game-day lock"
    finally:
        subprocess.run([*lock, "release", kind, "--id", "other-run"], check=True, capture_output=True)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr
    assert not list(tmp_path.glob("gameday-*")), "a refused drill wrote a report"
    assert_fleet_on(fleet, artifacts["v1"])


# --- the scenarios ----------------------------------------------------------------------------


def test_green_a_good_release_is_promoted_then_rolled_back(fleet: Lab, tmp_path: Path,
                                                            artifacts: dict[str, Path]) -> None:
    done = run_drill(fleet, "green", artifacts, tmp_path)
    assert_passed(done, "green", "promote")
    rows = expectation_rows(report_of(tmp_path, "green"))
    assert rows["every node promoted to v2"] == "PASS" and rows["deliberate rollback"] == "PASS"
    assert_fleet_on(fleet, artifacts["v1"])
    for node in fleet.settings.node_names():  # every node went to v2 and was rolled back by the drill
        assert sha256(fleet.node_dir(node) / "edge.rolled-back") == sha256(artifacts["v2"])


# One scenario per flow: `slow` runs the same drill as `errors` with another release, whose latency revert
# tests/integration/watcher/test_lab.py proves through a real deploy; likewise `unhealthy` beside `crash`
# below (tests/integration/playbooks/test_deploy.py puts both back). The scenario table is unit-tested.
def test_a_bad_release_is_reverted_by_the_watcher(fleet: Lab, tmp_path: Path, artifacts: dict[str, Path]) -> None:
    """On a staging fleet with background errors, as real ones have: the last-known-good's own failures within
    BACKGROUND_ERRORS are not charged to the drill (the fixture's reset takes the noise away again)."""
    scenario, release = "errors", "v2-errors"
    noisy = "rollout_pct=0\nnoise_errors=0.005\n"  # 0.5 % background 5xx on every node, under the 1 % SLO
    for node in fleet.settings.node_names():
        (fleet.node_dir(node) / "edge.conf").write_text(noisy)
    done = run_drill(fleet, scenario, artifacts, tmp_path, "--background-errors", "0.005")
    assert_passed(done, scenario, "reverted")
    assert_fleet_on(fleet, artifacts["v1"], config=noisy)
    assert_reverted(fleet, artifacts[release])
    # The drill's own deploy went past its own game-day lock, and that was logged.
    run_id = re.search(r"^gameday: (gameday-\S+):", done.stdout, re.M).group(1)  # type: ignore[union-attr]
    forced = [line for line in (fleet.lab_dir / "control" / "locks.log").read_text().splitlines()
              if f"FORCED deploy {run_id}-{scenario}-deploy by " in line]
    assert forced and f" during drill {run_id} by " in forced[0]
    report = report_of(tmp_path, scenario)
    assert "| first bad response → detection |" in report
    assert re.search(r"\| requests failed \| \d+ \(\d+ by the release itself, (\d+ background, )?0 collateral\) \|",
                     report), report
    assert expectation_rows(report)["background failures"] == "PASS", report


def test_a_release_that_fails_its_roll_is_put_back_before_any_client_sees_it(
        fleet: Lab, tmp_path: Path, artifacts: dict[str, Path]) -> None:
    scenario, release = "crash", "v2-crash"
    proc = subprocess.Popen(drill_argv(scenario, artifacts, tmp_path, "--health-timeout", "8"), env=fleet.env,
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        # While the drill holds the game-day lock, a deploy is refused. In check mode, so that it could
        # change nothing even if it came too late.
        fleet.wait_until(lambda: (fleet.lab_dir / "control" / "gameday.lock").exists(), 300, "the game-day lock")
        refused = fleet.make("deploy-canary", extra_env={"ARTIFACT": str(artifacts["v2"]), "CHECK": "1"},
                             timeout=600)
        assert refused.returncode != 0
        assert "a game-day drill holds the lock" in refused.stdout + refused.stderr
        out, _ = proc.communicate(timeout=1200)
    finally:
        stop_drill(proc)
    assert proc.returncode == 0, out[-6000:]
    assert f"gameday {scenario}: PASS — the tool said roll-failed" in out
    assert_fleet_on(fleet, artifacts["v1"])
    assert_reverted(fleet, artifacts[release])
    rows = expectation_rows(report_of(tmp_path, scenario))
    assert rows["the release never reached clients"] == "PASS"


def test_prometheus_outage_the_blind_watcher_reverts(fleet: Lab, tmp_path: Path, artifacts: dict[str, Path]) -> None:
    done = run_drill(fleet, "prometheus-outage", artifacts, tmp_path)
    assert_passed(done, "prometheus-outage", "reverted")
    assert "Prometheus stopped in the middle of the watch window" in done.stdout
    assert_fleet_on(fleet, artifacts["v1"])
    assert_reverted(fleet, artifacts["v2"])
    assert "RUNNING" in fleet.supervisorctl("status", "lab-prometheus").stdout
    fleet.wait_until(lambda: bool(fleet.prom_query("vector(1)")), 60, "Prometheus answering again")
    report = report_of(tmp_path, "prometheus-outage")
    assert "blind" in report
    assert expectation_rows(report)["caught while Prometheus was down"] == "PASS"


def test_watcher_killed_the_deploy_reverts_the_canary_itself(fleet: Lab, tmp_path: Path,
                                                              artifacts: dict[str, Path]) -> None:
    done = run_drill(fleet, "watcher-killed", artifacts, tmp_path)
    assert_passed(done, "watcher-killed", "died")
    assert re.search(r"killed the watcher \(pid \d+\)", done.stdout)
    assert_fleet_on(fleet, artifacts["v1"])
    assert_reverted(fleet, artifacts["v2"])
    assert expectation_rows(report_of(tmp_path, "watcher-killed"))["caught after the watcher was killed"] == "PASS"


def test_bad_rollout_every_node_goes_back_to_rollout_pct_0(fleet: Lab, tmp_path: Path,
                                                           artifacts: dict[str, Path]) -> None:
    done = run_drill(fleet, "bad-rollout", artifacts, tmp_path, "--rollout-stages", "50")
    assert_passed(done, "bad-rollout", "reverted")
    rows = expectation_rows(report_of(tmp_path, "bad-rollout"))
    assert rows["every node at rollout_pct=0"] == "PASS"
    assert rows["the release failed requests"] == "PASS" and rows["no collateral failures"] == "PASS"
    assert_fleet_on(fleet, artifacts["v1"])  # the drill's deliberate rollback after the rollout


# --- a drill that stops in the middle ---------------------------------------------------------


def test_an_interrupted_drill_puts_the_fleet_back_and_says_so(fleet: Lab, tmp_path: Path,
                                                               artifacts: dict[str, Path]) -> None:
    proc = subprocess.Popen(drill_argv("errors", artifacts, tmp_path), env=fleet.env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        try:  # seen once in a full suite: no canary on the bad release in 600 s, and the drill's output unseen
            fleet.wait_until(lambda: proc.poll() is not None or serves(fleet, "edge-1", "v2-errors"), 600,
                             "the canary serving the bad release")
            assert proc.poll() is None, "the drill ended before its canary served the bad release"
        except AssertionError as early:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            said = proc.communicate(timeout=600)[0]
            raise AssertionError(f"{early}; the drill said:\n{said[-6000:]}") from early
        time.sleep(1)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=1200)
    finally:
        stop_drill(proc)
    assert proc.returncode == 1, out[-6000:]
    assert "interrupted: cleaning up" in out
    assert re.search(r"cleanup: (stopped the unfinished deploy play|the drill put the fleet back on v1)", out), out
    assert_fleet_on(fleet, artifacts["v1"])
    assert "## Cleanup" in report_of(tmp_path, "errors")
