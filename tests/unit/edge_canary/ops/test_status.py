"""edge_canary.ops.status (`edge-canary status`), the pure parts: which records are problems, and how they are shown."""

from __future__ import annotations

from typing import Any

import pytest

from edge_canary.ops import status as fs

V1, V2 = "1" * 64, "2" * 64


def row(node: str, sha: str = V1, version: str | None = "v1", running: str | None = "v1",
        pct: str = "0", admin: str = "ready", op: str = "up", health: int = 200,
        **release: Any) -> dict[str, Any]:
    return {
        "node": node,
        "release": {
            "current": {"sha256": sha, "version": version, "exists": True},
            "previous": {"sha256": V1, "version": "v1", "exists": True},
            "config": {"rollout_pct": pct},
            "record": {},
            "paths": {"binary": f"/opt/{node}/edge"},
            **release,
        },
        "health": {"url": f"http://{node}/health", "status": health,
                   "error": "" if health == 200 else "Request failed: <urlopen error refused>"},
        "running": {"version": running} if running else None,
        "lbs": [{"lb": "lb-1", "admin_state": admin, "operational_state": op, "sessions": 0,
                 "error": ""}],
        "errors": [],
    }


def test_a_healthy_uniform_fleet_has_no_problem() -> None:
    rows = [row("edge-1"), row("edge-2"), row("edge-3")]
    assert fs.fleet_problems(rows) == []
    assert fs.report(rows)["ok"] is True
    assert "OK: 3 node(s)" in fs.render_table(rows, [])


def test_drained_and_maintenance_nodes_are_named_with_the_lb() -> None:
    problems = fs.fleet_problems([row("edge-1"), row("edge-2", admin="drain"),
                                  row("edge-3", admin="maint", op="down")])
    assert any(p.startswith("edge-2 is drained on lb-1") for p in problems)
    assert "edge-3 is in maintenance on lb-1 (out of rotation; a deploy leaves it alone)" in problems
    # HAProxy stops checking a server in maintenance and calls it down: no second, misleading problem.
    assert len(problems) == 2, problems


def test_a_node_down_is_named_by_its_health_and_by_haproxy() -> None:
    problems = fs.fleet_problems([row("edge-1"), row("edge-2", health=-1, running=None, op="down")])
    assert any(p.startswith("edge-2 is down: its health URL http://edge-2/health did not answer "
                            "(<urlopen error refused>)") for p in problems)
    assert any(p.startswith("edge-2 is down on lb-1") for p in problems)


def test_a_node_warming_up_under_slowstart_is_in_rotation_not_a_problem() -> None:
    rows = [row("edge-1", op="starting"), row("edge-2", op="stopping")]
    assert fs.fleet_problems(rows) == ["edge-2 is stopping on lb-1 (HAProxy's own health check)"]


def test_a_503_health_is_down_too() -> None:
    problems = fs.fleet_problems([row("edge-1", health=503)])
    assert problems == ["edge-1 is down: its health URL http://edge-1/health answered 503"]


def test_mixed_versions_name_each_version_and_its_nodes() -> None:
    problems = fs.fleet_problems([row("edge-1"), row("edge-2"),
                                  row("edge-3", sha=V2, version="v2", running="v2")])
    assert problems == [f"mixed versions: v1 ({V1[:12]}) on edge-1, edge-2; v2 ({V2[:12]}) on edge-3"]


def test_mixed_versions_are_named_even_when_no_record_knows_the_version() -> None:
    # Binaries put there by hand: the version comes from what the node serves.
    problems = fs.fleet_problems([row("edge-1", version=None),
                                  row("edge-2", sha=V2, version=None, running="v2")])
    assert problems == [f"mixed versions: v1 ({V1[:12]}) on edge-1; v2 ({V2[:12]}) on edge-2"]


def test_a_down_node_on_the_same_binary_is_not_a_mixed_fleet() -> None:
    problems = fs.fleet_problems([row("edge-1", version=None),
                                  row("edge-2", version=None, running=None, health=-1)])
    assert not any("mixed" in p for p in problems)


def test_mixed_rollout_pct_is_named() -> None:
    problems = fs.fleet_problems([row("edge-1", pct="10"), row("edge-2", pct="0")])
    assert problems == ["mixed rollout_pct: 10 on edge-1; 0 on edge-2"]


def test_a_binary_not_restarted_into_is_named() -> None:
    problems = fs.fleet_problems([row("edge-1", version="v2", running="v1", sha=V2)])
    assert problems == ["edge-1 serves v1 but has v2 installed; restart it or roll it back"]


@pytest.mark.parametrize(
    ("extra", "words"),
    [({"pending": {"target_sha256": V2}}, "interrupted push"),
     ({"pending_rollback": {"target_sha256": V1}}, "interrupted rollback"),
     ({"record_error": "release record x is not valid JSON"}, "not valid JSON")],
)
def test_unfinished_work_and_unreadable_records_are_named(extra: dict[str, Any], words: str) -> None:
    problems = fs.fleet_problems([row("edge-1", **extra)])
    assert len(problems) == 1 and words in problems[0] and problems[0].startswith("edge-1")


def test_an_unreachable_node_and_an_lb_error_are_problems() -> None:
    unreachable = {"node": "edge-2", "errors": ["the node did not answer (unreachable)"]}
    lb_error = row("edge-1")
    lb_error["lbs"] = [{"lb": "lb-1", "error": "cannot connect to /run/haproxy/admin.sock"}]
    problems = fs.fleet_problems([lb_error, unreachable])
    assert problems == ["lb-1 could not be asked about edge-1: cannot connect to /run/haproxy/admin.sock",
                        "edge-2: the node did not answer (unreachable)"]


def test_table_shows_versions_config_lb_state_and_last_change() -> None:
    r = row("edge-2", admin="drain", sha=V2, version="v2", running="v2", pct="50",
            record={"action": "deploy", "current": {"sha256": V2, "version": "v2"},
                    "time": "2024-01-01T00:00:00Z", "deploy_id": "d1",
                    "config_change": {"set": {"rollout_pct": "50"}, "time": "2024-01-02T00:00:00Z"}})
    problems = fs.fleet_problems([r])
    text = fs.render_table([r], problems)
    header, line = text.splitlines()[:2]
    assert header.split()[:3] == ["NODE", "CURRENT", "PREVIOUS"]
    assert f"v2 {V2[:12]}" in line and f"v1 {V1[:12]}" in line
    assert "rollout_pct=50" in line and "lb-1: drain/up 0 sess" in line
    assert "deploy v2 2024-01-01T00:00:00Z (d1); set rollout_pct=50 2024-01-02T00:00:00Z" in line
    assert "NOT OK: 1 problem(s)" in text and "edge-2 is drained on lb-1" in text


def test_last_change_names_a_config_key_removed() -> None:
    record = {"config_change": {"set": {"rollout_pct": "0", "feature_x": None}, "time": "2024-01-03T00:00:00Z"}}
    assert fs.last_release(record) == "set rollout_pct=0, removed feature_x 2024-01-03T00:00:00Z"
    record["config_change"]["set"] = {"feature_x": None}
    assert fs.last_release(record) == "removed feature_x 2024-01-03T00:00:00Z"


def test_table_of_an_unreadable_node_has_placeholders() -> None:
    text = fs.render_table([{"node": "edge-9", "errors": ["x"]}], ["edge-9: x"])
    assert text.splitlines()[1].split()[:3] == ["edge-9", "?", "?"]


def test_a_run_holding_the_lock_is_named_and_a_free_or_stale_lock_is_not() -> None:
    locks = ["deploy: deploy d1 by alice (pid 42, since 2026-12-07T05:29:12Z)",
             "gameday: gameday g1 by bob (pid 7, since 2026-12-07T05:00:00Z) [stale]"]
    assert fs.in_progress(locks) == ["deploy d1 by alice (pid 42, since 2026-12-07T05:29:12Z)"]
    assert fs.in_progress(["deploy: free", "gameday: free"]) == []
    assert fs.in_progress(["locks: could not be read (ssh: connection refused)"]) == [
        "locks: could not be read (ssh: connection refused)"]
    rows = [row("edge-1", sha=V2, version="v2"), row("edge-2"), row("edge-3")]
    result = fs.report(rows, locks)
    assert result["in_progress"] == ["deploy d1 by alice (pid 42, since 2026-12-07T05:29:12Z)"]
    assert not result["ok"]  # what a deploy is in the middle of is still said, and still counted
    text = fs.render_table(rows, result["problems"], result["in_progress"])
    assert "\nIN PROGRESS: deploy d1 by alice (pid 42, since 2026-12-07T05:29:12Z)\n\nNOT OK: " in text
    assert "IN PROGRESS" not in fs.render_table(rows, result["problems"], fs.in_progress(["deploy: free"]))


HELD = {"deploy_id": "d1", "canary": "edge-1", "reason": "not enough evidence", "sha256": V2, "version": "v2",
        "nodes": ["edge-1", "edge-2", "edge-3"]}


def test_a_held_deploy_is_named_with_what_to_do_until_it_is_decided() -> None:
    canary_on_v2 = [row("edge-1", sha=V2, version="v2", running="v2"), row("edge-2"), row("edge-3")]
    result = fs.report(canary_on_v2, held=[HELD])
    assert result["ok"] is False
    said = ("deploy d1 is held (its SLI gate said HOLD: not enough evidence): edge-1 runs v2, edge-2, edge-3 "
            "not yet. Decide: make resume DEPLOY_ID=d1 (a fresh SLI gate, then the rest) or make rollback NODES=edge-1")
    assert result["problems"][0] == said  # first: it explains the mixed versions below it
    assert result["held"] == [{**HELD, "behind": ["edge-2", "edge-3"]}]  # JSON=1 has it too
    # Decided: resumed (or deployed again) to the end, or the canary rolled back.
    finished = [row(node, sha=V2, version="v2", running="v2") for node in ("edge-1", "edge-2", "edge-3")]
    assert fs.undecided(finished, [HELD]) == []
    assert fs.undecided([row("edge-1"), row("edge-2"), row("edge-3")], [HELD]) == []
