"""run_summary.RunRecord: what a run reported, gathered from its task results, as its summary says it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ansible_collections.edge.canary.plugins.module_utils.run_summary import (
    SUMMARY_PREFIX,
    RunRecord,
    node_rows,
    release_name,
    summary_table,
)

HOSTS = {"localhost": {"ok": 3, "changed": 1, "failures": 0, "unreachable": 0}}


def json_line(text: str) -> dict[str, object]:
    lines = [line for line in text.splitlines() if line.startswith(SUMMARY_PREFIX)]
    assert len(lines) == 1, text
    data: dict[str, object] = json.loads(lines[0].removeprefix(SUMMARY_PREFIX))
    return data


def test_a_deploy_is_summarised_from_the_record_folder_it_announced(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "d1"
    (run_dir / "nodes").mkdir(parents=True)
    (run_dir / "deploy.json").write_text(json.dumps({"deploy_id": "d1", "version": "v2", "sha256": "ab" * 32,
                                                     "canary": "edge-1", "peers": []}))
    (run_dir / "nodes" / "edge-1.json").write_text(json.dumps({"result": "ok", "release": "v2",
                                                               "before": {"version": "v1", "sha256": "c" * 64}}))
    (run_dir / "verdict.json").write_text(json.dumps({"verdict": "promote", "reason": "green"}))
    record = RunRecord()
    record.ok({"edge_canary_request": "deploy", "run_id": "d1"})
    record.ok({"ansible_facts": {"deploy_id": "d1", "deploy_run_dir": str(run_dir)}})
    text = record.lines(HOSTS)
    assert "SLI verdict: PROMOTE" in text and "edge-1  canary" in text
    data = json_line(text)
    assert data["kind"] == "deploy" and data["id"] == "d1" and data["status"] == "successful"
    assert data["verdict"] == "promote" and data["record"] == str(run_dir)
    assert data["nodes"] == [{"node": "edge-1", "role": "canary", "before": "v1", "after": "v2", "steps": "-",
                              "result": "ok"}]


def test_a_check_mode_deploy_says_its_nodes_would_be_rolled(tmp_path: Path) -> None:
    (tmp_path / "nodes").mkdir()
    (tmp_path / "deploy.json").write_text(json.dumps({"deploy_id": "d1", "version": "v2", "canary": "edge-1",
                                                      "peers": ["edge-2"], "check_mode": True}))
    (tmp_path / "nodes" / "edge-1.json").write_text(json.dumps({"result": "ok", "release": "v2"}))
    (tmp_path / "nodes" / "edge-2.json").write_text(json.dumps({"result": "already on the release", "release": "v2"}))
    assert [row["result"] for row in node_rows(tmp_path)] == ["would be rolled", "already on the release"]


def test_a_node_left_alone_in_maintenance_gets_a_row_that_says_so(tmp_path: Path) -> None:
    (tmp_path / "nodes").mkdir()
    (tmp_path / "deploy.json").write_text(json.dumps({"deploy_id": "d1", "version": "v2", "canary": "edge-1",
                                                      "peers": [], "left_out": {"edge-3": ["lb-1", "lb-2"]}}))
    (tmp_path / "nodes" / "edge-1.json").write_text(json.dumps({"result": "ok", "release": "v2"}))
    rows = node_rows(tmp_path)
    assert rows[1] == {"node": "edge-3", "role": "peer", "before": "-", "after": "-", "steps": "-",
                       "result": "left alone: in maintenance on lb-1, lb-2 (not rolled)"}


def test_a_node_put_in_maintenance_during_the_deploy_gets_a_row_that_says_where_it_was_left(tmp_path: Path) -> None:
    """A peer put in maintenance after preflight was drained, rolled and put back in rotation by its batch.
    The roll leaves it alone (or, put there after its drain, rolled and left there), and its row says so."""
    (tmp_path / "nodes").mkdir()
    (tmp_path / "deploy.json").write_text(json.dumps({"deploy_id": "d1", "version": "v2", "canary": "edge-1",
                                                      "peers": ["edge-2", "edge-3"]}))
    v1 = {"version": "v1", "sha256": "c" * 64}
    records = {"edge-1": {"result": "ok", "release": "v2", "before": v1, "kept_in_maint": []},
               "edge-2": {"result": "left alone", "release": "v2", "before": v1, "kept_in_maint": ["lb-2"]},
               "edge-3": {"result": "ok", "release": "v2", "before": v1, "kept_in_maint": ["lb-1"]}}
    for node, record in records.items():
        (tmp_path / "nodes" / f"{node}.json").write_text(json.dumps(record))
    rows = {row["node"]: (row["after"], row["result"]) for row in node_rows(tmp_path)}
    assert rows == {"edge-1": ("v2", "ok"),
                    "edge-2": ("v1", "left alone: put in maintenance on lb-2 during the deploy (not rolled)"),
                    "edge-3": ("v2", "ok; left in maintenance on lb-1 as found")}


def test_a_deploy_stopped_in_preflight_says_why_not_of_what(tmp_path: Path) -> None:
    """Before deploy.json the summary said 'Deploy d1 of ? (sha256 ?)' and not why it stopped."""
    record = RunRecord()
    record.ok({"edge_canary_request": "deploy", "run_id": "d1"})
    record.ok({"ansible_facts": {"deploy_id": "d1", "deploy_run_dir": str(tmp_path)}})
    record.failed("localhost", "Refuse a canary in maintenance", {"msg": "canary edge-3 is in maintenance on lb-1"})
    text = record.lines({"localhost": {"ok": 9, "failures": 1}})
    assert "Deploy d1: stopped in preflight, before anything changed\n" in text and "of ?" not in text
    assert "  localhost: Refuse a canary in maintenance: canary edge-3 is in maintenance on lb-1" in text
    assert json_line(text)["status"] == "failed"


def test_a_refusal_is_one_line_and_status_refused() -> None:
    record = RunRecord()
    record.failed("localhost", "Check", {"edge_canary_request": "rollback", "refused": True,
                                         "msg": "rollback_batch=0 is not a whole number; nothing was changed"})
    text = record.lines({"localhost": {"ok": 0, "failures": 1}})
    assert text.splitlines()[0] == "rollback: refused: rollback_batch=0 is not a whole number; nothing was changed"
    assert json_line(text)["status"] == "refused"


def test_a_rollout_folder_set_in_a_loop_is_found_and_a_failure_fails_the_run(tmp_path: Path) -> None:
    (tmp_path / "result.json").write_text(json.dumps({"rollout_id": "r1", "rollout_pct": 0, "stages": [],
                                                      "stopped": {"pct": 10, "verdict": "reverted"}}))
    record = RunRecord()
    record.ok({"results": [{"ansible_facts": {"rollout_run_dir": str(tmp_path)}}, "not a mapping"]})
    record.failed("edge-1", "Say how the rollout ended", {"msg": "ROLLOUT STOPPED\nat 10 %"})
    data = json_line(record.lines({"edge-1": {"ok": 5, "failures": 1}}))
    assert data["kind"] == "rollout" and data["status"] == "failed" and data["rollout_pct"] == 0
    assert data["failures"] == [{"host": "edge-1", "task": "Say how the rollout ended",
                                 "msg": "ROLLOUT STOPPED at 10 %"}]


def test_a_rollout_stopped_before_its_end_says_why(tmp_path: Path) -> None:
    """No result.json (refused by a check of the first play): the failure, not only "see the output above"."""
    record = RunRecord()
    record.ok({"edge_canary_request": "rollout", "run_id": "rollout-1"})
    record.ok({"ansible_facts": {"rollout_run_dir": str(tmp_path)}})
    record.failed("edge-1", "Refuse a watcher without a Prometheus to judge its canary",
                  {"msg": "Prometheus at http://p does not answer queries; nothing was changed"})
    lines = record.lines({"edge-1": {"ok": 9, "failures": 1}}).splitlines()
    assert lines[1:3] == [
        f"rollout rollout-1: failed before its end (no result in {tmp_path})",
        "  edge-1: Refuse a watcher without a Prometheus to judge its canary: Prometheus at http://p does not "
        "answer queries; nothing was changed"]


def rollback_record(check_mode: bool = False) -> RunRecord:
    """A rollback of edge-1..edge-4 as its play reports it: edge-1 rolled back, edge-2 already on its
    last-known-good (and in maintenance), edge-3 read then stopped short (interrupted), edge-4 never reached."""
    record = RunRecord()
    record.ok({"edge_canary_request": "rollback", "run_id": "rollback-1", "edge_canary_check_mode": check_mode})
    record.ok({"ansible_facts": {"rollback_plan": ["edge-1", "edge-2", "edge-3", "edge-4"]}}, "edge-2")
    v1, v2 = {"version": "v1", "sha256": "a" * 64}, {"version": "v2", "sha256": "b" * 64}
    for node, current, needed in (("edge-1", v2, True), ("edge-2", v1, False), ("edge-3", v2, True)):
        record.ok({"ansible_facts": {"node_release_revert_needed": needed, "node_release_reverted_from": current}},
                  node)
    # edge-1's restored config took back a rollout made since the deploy, and a key the deploy added.
    restored = {"set": {"rollout_pct": "0", "feature_x": None}, "before": {"rollout_pct": "40", "feature_x": "on"}}
    record.ok({"ansible_facts": {"node_release_after": v1, "node_release_config_restored": restored}}, "edge-1")
    # edge-2: a deploy stopped before it (its note keeps it on v1); someone had put it in maintenance on lb-2,
    # where the revert left it.
    record.ok({"ansible_facts": {"node_release_after": v1, "node_release_config_restored": None,
                                 "node_release_kept_in_maint": ["lb-2"], "node_release_not_reached_by": "d-7"}},
              "edge-2")
    record.ok({"ansible_facts": {"node_release_not_reached_by": ""}}, "edge-1")
    record.ok({"ansible_facts": {"node_release_kept_in_maint": []}}, "edge-1")
    return record


def test_a_rollback_says_each_nodes_outcome_in_its_plans_order() -> None:
    text = rollback_record().lines({"edge-1": {"ok": 30}}, interrupted=True)
    lines = text.splitlines()
    assert lines[1:7] == [
        "Rollback rollback-1: interrupted",
        "node    before  after  result",
        "edge-1  v2      v1     rolled back; config rollout_pct 40 -> 0, feature_x on -> (absent)",
        "edge-2  v1      v1     already on its last-known-good: deploy d-7 never reached it; left in maintenance "
        "on lb-2 as found",
        "edge-3  v2      ?      not finished: may be out of rotation",
        "edge-4  -       -      not started",
    ]
    data = json_line(text)
    nodes: list[dict[str, str]] = data["nodes"]  # type: ignore[assignment]
    assert data["id"] == "rollback-1" and [row["node"] for row in nodes] == ["edge-1", "edge-2", "edge-3", "edge-4"]
    checked = rollback_record(check_mode=True).lines({"edge-1": {"ok": 30}})
    assert "Rollback rollback-1: successful — CHECK MODE, nothing changed" in checked
    assert "edge-1  v2      v1     would be rolled back; config rollout_pct 40 -> 0" in checked


def test_a_rollback_refused_by_the_lock_is_not_a_nodes_failure() -> None:
    """The lock is taken on the first node's turn (run_once): before, its row read "failed: edge-lock: …" as if
    that node's revert had failed. No node was touched: every row is "not started", the reason below."""
    record = RunRecord()
    record.ok({"edge_canary_request": "rollback", "run_id": "rollback-3"})
    record.ok({"ansible_facts": {"rollback_plan": ["edge-1", "edge-2"]}}, "edge-1")
    record.failed("edge-1", "Stop when the lock is held", {"msg": "edge-lock: another deploy d1 holds the lock"})
    lines = record.lines({"edge-1": {"failures": 1}}).splitlines()
    assert lines[2:6] == ["node    before  after  result", "edge-1  -       -      not started",
                          "edge-2  -       -      not started",
                          "  edge-1: Stop when the lock is held: edge-lock: another deploy d1 holds the lock"], lines


def test_a_rollback_names_the_node_that_failed_and_a_failure_before_its_plan() -> None:
    record = rollback_record()
    record.failed("edge-3", "Restart", {"msg": "no 200 from /health"})
    record.failed("edge-3", "Say loudly that the revert failed", {"msg": "REVERT FAILED on edge-3 at Restart"})
    rows = {row["node"]: row for row in json_line(record.lines({"edge-3": {"failures": 1}}))["nodes"]}  # type: ignore[attr-defined]
    assert rows["edge-3"] == {"node": "edge-3", "before": "v2", "after": "?",
                              "result": "failed: REVERT FAILED on edge-3 at Restart"}
    early = RunRecord()  # refused by the play before it planned anything: the failure lines as before
    early.ok({"edge_canary_request": "rollback", "run_id": "rollback-2"})
    early.failed("edge-1", "Refuse a rollback binary", {"msg": "ROLLBACK_BINARY=/x is not a file"})
    text = early.lines({"edge-1": {"failures": 1}})
    assert text.splitlines()[0:2] == ["rollback: failed",
                                      "  edge-1: Refuse a rollback binary: ROLLBACK_BINARY=/x is not a file"]
    assert "nodes" not in json_line(text)


def test_an_interrupted_run_says_so() -> None:
    record = RunRecord()
    record.ok({"edge_canary_request": "deploy", "run_id": "d2"})
    assert json_line(record.lines(HOSTS, interrupted=True))["status"] == "interrupted"


def test_an_interrupted_deploy_says_how_far_each_roll_got_and_who_it_left_out_of_rotation(tmp_path: Path) -> None:
    """The play noted each roll's steps as it went, but an interrupted roll never wrote its node record: the
    rows come from the steps the play reported, not "not started" for a node it drained and pushed."""
    run_dir = tmp_path / "runs" / "d3"
    (run_dir / "nodes").mkdir(parents=True)
    (run_dir / "deploy.json").write_text(json.dumps({"deploy_id": "d3", "version": "v2", "sha256": "ab" * 32,
                                                     "canary": "edge-1", "peers": ["edge-2", "edge-3"]}))
    v1 = {"version": "v1", "sha256": "c" * 64}
    for node in ("edge-1", "edge-2", "edge-3"):  # what preflight writes before any roll
        (run_dir / "nodes" / f"{node}.json").write_text(json.dumps({"before": v1, "result": "not started"}))
    record = RunRecord()
    record.ok({"edge_canary_request": "deploy", "run_id": "d3"})
    record.ok({"ansible_facts": {"deploy_run_dir": str(run_dir)}}, "localhost")
    steps = [{"step": "start", "at": 100.0}]
    for step, at in (("drain", 101.0), ("push", 101.5), ("restart+health", 104.0)):
        steps = [*steps, {"step": step, "at": at}]
        record.ok({"ansible_facts": {"node_release_steps": steps}, "changed": False}, "edge-1")
    record.ok({"ansible_facts": {"node_release_steps": [{"step": "start", "at": 100.0}]}}, "edge-2")
    text = record.lines(HOSTS, interrupted=True)
    data = json_line(text)
    rows = {row["node"]: row for row in data["nodes"]}  # type: ignore[attr-defined]
    assert rows["edge-1"] == {"node": "edge-1", "role": "canary", "before": "v1", "after": "v2",
                              "steps": "drain 1.0s, push 0.5s, restart+health 2.5s",
                              "result": "interrupted after restart+health, not put back in rotation"}
    assert rows["edge-2"]["result"] == "not started" and rows["edge-2"]["after"] == "v1"
    assert rows["edge-3"]["result"] == "not started"
    assert "interrupted after restart+health, not put back in rotation" in text and data["status"] == "interrupted"
    record.ok({"ansible_facts": {"node_release_steps": [*steps, {"step": "ready+lb", "at": 106.0}]}}, "edge-1")
    rows = {row["node"]: row for row in json_line(record.lines(HOSTS, interrupted=True))["nodes"]}  # type: ignore[attr-defined]
    assert rows["edge-1"]["result"] == "interrupted after ready+lb" and rows["edge-1"]["after"] == "v2"


def test_a_deploy_in_waves_says_each_waves_verdict_and_its_reverted_canary(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "d2"
    (run_dir / "nodes").mkdir(parents=True)
    (run_dir / "wave-2").mkdir()
    waves = [{"wave": 1, "pop": "pop1", "canary": "edge-1", "rest": ["edge-2"]},
             {"wave": 2, "pop": "pop2", "canary": "edge-3", "rest": ["edge-4"]}]
    (run_dir / "deploy.json").write_text(json.dumps({"deploy_id": "d2", "version": "v2", "sha256": "ab" * 32,
                                                     "canary": "edge-1", "peers": ["edge-2", "edge-3", "edge-4"],
                                                     "waves": waves}))
    v1 = {"version": "v1", "sha256": "c" * 64}
    for node in ("edge-1", "edge-2", "edge-3"):
        (run_dir / "nodes" / f"{node}.json").write_text(json.dumps({"result": "ok", "release": "v2", "before": v1}))
    (run_dir / "verdict.json").write_text(json.dumps({"verdict": "promote", "reason": "green"}))
    (run_dir / "wave-2" / "verdict.json").write_text(json.dumps({"verdict": "reverted", "reason": "errors red"}))
    record = RunRecord()
    record.ok({"edge_canary_request": "deploy", "run_id": "d2"})
    record.ok({"ansible_facts": {"deploy_run_dir": str(run_dir)}})
    text = record.lines({"localhost": {"ok": 3, "failures": 1}})
    assert "SLI verdict: PROMOTE — green" in text
    assert "SLI verdict of wave 2 (pop2, canary edge-3): REVERTED — errors red" in text
    data = json_line(text)
    assert data["verdict"] == "promote" and data["status"] == "failed"
    assert data["waves"] == [{"wave": 2, "pop": "pop2", "canary": "edge-3", "verdict": "reverted"}]
    rows = {row["node"]: row for row in data["nodes"]}  # type: ignore[attr-defined]
    assert rows["edge-3"]["role"] == "wave 2 canary" and rows["edge-3"]["after"] == "v1"
    assert rows["edge-3"]["result"] == "reverted by the SLI watcher"
    assert rows["edge-2"]["role"] == "peer" and rows["edge-2"]["after"] == "v2"
    assert rows["edge-4"]["result"] == "not started" and rows["edge-4"]["after"] == "-"
    # An operator's abort in the window: the row says who, not only that the watcher reverted it.
    (run_dir / "wave-2" / "verdict.json").write_text(json.dumps({"verdict": "reverted",
                                                                 "reason": "aborted by alice (make abort)"}))
    rows = {row["node"]: row for row in json_line(record.lines({"localhost": {"ok": 3}}))["nodes"]}  # type: ignore[attr-defined]
    assert rows["edge-3"]["result"] == "reverted by the SLI watcher: aborted by alice (make abort)"


@pytest.mark.parametrize(("version", "header"), [
    ("v2", "Deploy d1 of v2 (sha256 abababababab)"),
    ("sha256:abababababab", "Deploy d1 of sha256:abababababab"),  # no version embedded: its sha256 once
])
def test_a_deploys_header_names_its_release_once(tmp_path: Path, version: str, header: str) -> None:
    (tmp_path / "deploy.json").write_text(json.dumps({"deploy_id": "d1", "version": version, "sha256": "ab" * 32}))
    assert summary_table(tmp_path).splitlines()[1] == header


def test_an_approved_deploy_says_who_approved_each_wave_and_when(tmp_path: Path) -> None:
    waves = [{"wave": 1, "pop": "pop1", "canary": "edge-1"}, {"wave": 2, "pop": "pop2", "canary": "edge-3"}]
    (tmp_path / "deploy.json").write_text(json.dumps({"deploy_id": "d1", "version": "v2", "sha256": "ab" * 32,
                                                      "waves": waves}))
    (tmp_path / "wave-2").mkdir()
    approval = {"state": "approved", "reason": "approved by alice (make approve)", "decided_at": "2026-12-07T05:25Z"}
    for gate in (tmp_path, tmp_path / "wave-2"):
        (gate / "verdict.json").write_text(json.dumps({"verdict": "promote", "reason": "6/6 probes green"}))
        (gate / "approval.json").write_text(json.dumps(approval))
    assert summary_table(tmp_path).splitlines()[2:6] == [
        "SLI verdict: PROMOTE — 6/6 probes green",
        "Approval: approved by alice (make approve) at 2026-12-07T05:25Z",
        "SLI verdict of wave 2 (pop2, canary edge-3): PROMOTE — 6/6 probes green",
        "Approval of wave 2: approved by alice (make approve) at 2026-12-07T05:25Z",
    ]
    for gate in (tmp_path, tmp_path / "wave-2"):
        (gate / "approval.json").write_text(json.dumps({**approval, "state": "aborted"}))
    assert "Approval" not in summary_table(tmp_path)  # the verdict's reason says who aborted


def test_a_held_gate_says_what_stays_and_what_to_decide(tmp_path: Path) -> None:
    waves = [{"wave": 1, "pop": "pop1", "canary": "edge-1"}, {"wave": 2, "pop": "pop2", "canary": "edge-3"}]
    deploy = {"deploy_id": "d1", "version": "v2", "sha256": "ab" * 32, "canary": "edge-1", "waves": waves}
    (tmp_path / "deploy.json").write_text(json.dumps(deploy))
    (tmp_path / "verdict.json").write_text(json.dumps({"verdict": "hold", "reason": "not enough evidence"}))
    held = ("Held: edge-1 stays on v2, in rotation, and nothing after it rolled. Decide: make resume DEPLOY_ID=d1 "
            "(a fresh SLI gate, then the rest) or make rollback NODES=edge-1")
    assert summary_table(tmp_path).splitlines()[3] == held
    (tmp_path / "wave-2").mkdir()  # the first canary promoted; the second wave's canary held
    (tmp_path / "verdict.json").write_text(json.dumps({"verdict": "promote", "reason": "green"}))
    (tmp_path / "wave-2" / "verdict.json").write_text(json.dumps({"verdict": "hold", "reason": "fleet-wide"}))
    assert summary_table(tmp_path).splitlines()[4] == held.replace("edge-1", "edge-3")
    (tmp_path / "wave-2" / "verdict.json").write_text(json.dumps({"verdict": "promote", "reason": "green"}))
    assert "Held" not in summary_table(tmp_path)
    (tmp_path / "verdict.json").write_text(json.dumps({"verdict": "hold", "reason": "not enough evidence"}))
    (tmp_path / "deploy.json").write_text(json.dumps({**deploy, "waves": [], "check_mode": True}))
    assert "Held" not in summary_table(tmp_path)  # a CHECK=1 run changed nothing to decide about


@pytest.mark.parametrize(("release", "name"), [
    ({"version": "v1", "sha256": "c" * 64}, "v1"),
    ({"version": None, "sha256": "625167e2f87a" + "0" * 52}, "sha256:625167e2f87a"),  # never "None"
    ({"sha256": "ab" * 32}, "sha256:abababababab"),
    ({"version": None, "sha256": None}, "-"),
    ({}, "-"),
    (None, "-"),
])
def test_a_release_is_named_by_its_version_or_else_its_sha256(release: dict[str, object] | None, name: str) -> None:
    assert release_name(release) == name


def test_a_failed_loop_is_named_by_its_failed_items_not_ansibles_one_or_more_items_failed() -> None:
    record = RunRecord()
    record.failed("localhost", "Read each load balancer", {"msg": "One or more items failed", "results": [
        {"item": "lb-1", "failed": False},
        {"item": "lb-2", "failed": True, "msg": "cannot connect to HAProxy socket /2.sock: Connection refused"},
        {"item": {"key": "lb-3"}, "_ansible_item_label": "lb-3", "failed": True, "msg": "timed out"},
    ]})
    assert record.failures == [{"host": "localhost", "task": "Read each load balancer",
                                "msg": "lb-2: cannot connect to HAProxy socket /2.sock: Connection refused; "
                                       "lb-3: timed out"}]
