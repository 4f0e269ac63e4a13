"""Issue 15 items 1 and 4 end to end against the lab: real make deploy-canary and make rollback runs;
the fleet's state is read independently (node files, /version, the HAProxy admin socket).

The rule under test: `.previous` is always the last release that served healthily on the node. A
config-only re-deploy does not replace it, and a node a failed deploy never reached is neither sent to
`make rollback` nor rolled back one release too far. (Item 2, a release that never served, needs a peer
failing its health check while the canary passes; the module and property tests cover it.)"""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers.edge import build_artifact
from tests.helpers.fleet import fleet_versions, install_fleet, sha256
from tests.helpers.lab import Lab
from tests.helpers.summary import run_summary
from tests.integration.playbooks.test_deploy import deploy


def output(result: object) -> str:
    return f"{getattr(result, 'stdout', '')[-5000:]}\n{getattr(result, 'stderr', '')[-2000:]}"


def test_previous_stays_the_last_known_good_through_a_failed_peer_and_a_config_redeploy(
        fleet: Lab, artifacts: dict[str, Path], tmp_path: Path) -> None:
    """One failed deploy (edge-3 never reached), one config-only re-deploy, two rollbacks."""
    v0 = build_artifact(tmp_path / "edge-v0", "v0")
    v1 = sha256(artifacts["v1"])
    install_fleet(fleet, artifacts["v1"], previous=v0)
    # Item 4: edge-3's staging folder cannot be made, so its push fails before the node changes.
    (fleet.node_dir("edge-3") / ".staging").write_text("in the way\n")

    # Both peers in one batch, drained and readied together: edge-2 goes back with the batch's ready, which
    # leaves edge-3 out (it failed after the drain), and edge-3's own rescue puts it back.
    result = deploy(fleet, artifacts["v2"], BATCH="2")
    assert result.returncode != 0
    out = output(result)
    assert "SLI verdict: PROMOTE" in out, out
    assert "The push never reached it" in out and "make rollback NODES=edge-3" not in out, out
    assert "edge-2 failed" not in out, out
    assert fleet_versions(fleet) == {"edge-1": "v2", "edge-2": "v2", "edge-3": "v1"}
    fleet.wait_until(lambda: set(fleet.lb_states().values()) == {"READY"}, 30, "every node back in rotation")
    # A rollback of the node the deploy never reached leaves it on v1, not one release back on v0.
    untouched = fleet.make("rollback", extra_env={"NODES": "edge-3"})
    assert untouched.returncode == 0, output(untouched)
    assert sha256(fleet.node_dir("edge-3") / "edge") == v1 and fleet_versions(fleet)["edge-3"] == "v1"

    # Item 1: the same artifact with a new CONFIG is no new release: .previous stays v1 everywhere
    # (edge-3, pushed now, keeps the v1 it ran).
    again = deploy(fleet, artifacts["v2"], BATCH="2", CONFIG="rollout_pct=10")
    assert again.returncode == 0, output(again)
    for node in fleet.settings.node_names():
        home = fleet.node_dir(node)
        assert sha256(home / "edge.previous") == v1, node
        assert "rollout_pct=10" in (home / "edge.conf").read_text()
        assert json.loads((home / "release.json").read_text())["previous"]["sha256"] == v1

    # ... so a rollback lands on v1 on every node.
    rolled = fleet.make("rollback", extra_env={"NODES": "all"})
    assert rolled.returncode == 0, output(rolled)
    assert fleet_versions(fleet) == dict.fromkeys(fleet.settings.node_names(), "v1")
    fleet.wait_until(lambda: set(fleet.lb_states().values()) == {"READY"}, 30, "every node READY")


def test_a_node_left_alone_in_maintenance_is_not_rolled_back_past_the_release_it_kept(
        fleet: Lab, artifacts: dict[str, Path], tmp_path: Path) -> None:
    """A node in maintenance when a deploy starts is left alone, on v1 (its .previous v0). A make rollback
    NODES=all after that deploy took it back to v0, one release past the last-known-good it still ran."""
    v0 = build_artifact(tmp_path / "edge-v0", "v0")
    v1 = sha256(artifacts["v1"])
    install_fleet(fleet, artifacts["v1"], previous=v0)
    fleet.haproxy("set server edge/edge-3 state maint")
    try:
        result = deploy(fleet, artifacts["v2"], BATCH="2")
        assert result.returncode == 0, output(result)
        assert fleet_versions(fleet) == {"edge-1": "v2", "edge-2": "v2", "edge-3": "v1"}
        rolled = fleet.make("rollback", extra_env={"NODES": "all", "BATCH": "3"})
        assert rolled.returncode == 0, output(rolled)
        assert fleet_versions(fleet) == dict.fromkeys(fleet.settings.node_names(), "v1")
        assert sha256(fleet.node_dir("edge-3") / "edge") == v1
        said = f"already on its last-known-good: deploy {run_summary(result.stdout)['id']} never reached it; " \
            "left in maintenance on lb-1 as found"
        assert said in " ".join(rolled.stdout.split()), output(rolled)
        assert fleet.lb_states() == {"edge-1": "READY", "edge-2": "READY", "edge-3": "MAINT"}
    finally:
        fleet.haproxy("set server edge/edge-3 state ready")


def test_a_rollback_after_a_reverted_canary_leaves_the_peers_on_the_release_they_run(
        fleet: Lab, artifacts: dict[str, Path], tmp_path: Path) -> None:
    """The canary goes red and is reverted; the peers were never started. A make rollback NODES=all after
    that (the on-call undoing "the bad release") took the peers from v1 to their .previous, v0: one release
    past the last-known-good they ran. The deploy notes every node as it starts; the push drops the note."""
    v0 = build_artifact(tmp_path / "edge-v0", "v0")
    install_fleet(fleet, artifacts["v1"], previous=v0)
    result = deploy(fleet, artifacts["v2-errors"])
    assert result.returncode != 0 and "SLI verdict: REVERTED" in result.stdout, output(result)
    assert fleet_versions(fleet) == dict.fromkeys(fleet.settings.node_names(), "v1")
    rolled = fleet.make("rollback", extra_env={"NODES": "all", "BATCH": "2"})
    assert rolled.returncode == 0, output(rolled)
    assert fleet_versions(fleet) == dict.fromkeys(fleet.settings.node_names(), "v1")
    assert {node: sha256(fleet.node_dir(node) / "edge.previous") for node in ("edge-2", "edge-3")} == \
        dict.fromkeys(("edge-2", "edge-3"), sha256(v0))
    rows = {row["node"]: row["result"] for row in run_summary(rolled.stdout)["nodes"]}
    never = f"already on its last-known-good: deploy {run_summary(result.stdout)['id']} never reached it"
    assert rows == {"edge-1": "already on its last-known-good", "edge-2": never, "edge-3": never}, output(rolled)
    # (installed without a record, so named by its sha256)
    said = (f"edge-3: already on its last-known-good release sha256:{sha256(artifacts['v1'])[:12]} (deploy "
            f"{run_summary(result.stdout)['id']} never reached it), nothing to do")
    assert said in " ".join(rolled.stdout.split()), output(rolled)
    fleet.wait_until(lambda: set(fleet.lb_states().values()) == {"READY"}, 30, "every node READY")


def test_a_rollback_after_a_failed_peer_leaves_the_peers_never_started_on_their_release(
        fleet: Lab, artifacts: dict[str, Path], tmp_path: Path) -> None:
    """edge-2's push fails (its staging folder cannot be made), so the roll stops before edge-3. The
    on-call rolls the fleet back: edge-1 (on v2) goes back to v1; edge-3, never started, stays on v1
    (it went to v0 before)."""
    v0 = build_artifact(tmp_path / "edge-v0", "v0")
    install_fleet(fleet, artifacts["v1"], previous=v0)
    staging = fleet.node_dir("edge-2") / ".staging"
    staging.write_text("in the way\n")
    try:
        result = deploy(fleet, artifacts["v2"], BATCH="1")
        assert result.returncode != 0, output(result)
        rows = {row["node"]: row["result"] for row in run_summary(result.stdout)["nodes"]}
        assert rows["edge-3"] == "not started", output(result)
        assert fleet_versions(fleet) == {"edge-1": "v2", "edge-2": "v1", "edge-3": "v1"}
    finally:
        staging.unlink(missing_ok=True)
    fleet.wait_until(lambda: set(fleet.lb_states().values()) == {"READY"}, 30, "every node back in rotation")
    rolled = fleet.make("rollback", extra_env={"NODES": "all"})
    assert rolled.returncode == 0, output(rolled)
    assert fleet_versions(fleet) == dict.fromkeys(fleet.settings.node_names(), "v1")
    assert sha256(fleet.node_dir("edge-3") / "edge.previous") == sha256(v0)
    rows = {row["node"]: row["result"] for row in run_summary(rolled.stdout)["nodes"]}
    never = f"already on its last-known-good: deploy {run_summary(result.stdout)['id']} never reached it"
    assert rows == {"edge-1": "rolled back", "edge-2": never, "edge-3": never}, output(rolled)
    fleet.wait_until(lambda: set(fleet.lb_states().values()) == {"READY"}, 30, "every node READY")
