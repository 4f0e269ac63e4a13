"""edge_canary.ops.play_events: ansible-runner's events of a play, as the on-call tools print them."""

from __future__ import annotations

import io
import json
from pathlib import Path

from edge_canary.ops.play_events import PlayEvents, recap
from edge_canary.ops.summary import SUMMARY_PREFIX


def test_events_are_printed_as_they_come_and_feed_the_summary(tmp_path: Path) -> None:
    out = io.StringIO()
    events = PlayEvents(out)
    stream = [
        {"event": "playbook_on_start", "pid": 4242, "stdout": ""},
        {"event": "runner_on_ok", "pid": 4242, "stdout": "ok: [localhost]",
         "event_data": {"host": "localhost", "res": {"edge_canary_request": "deploy", "run_id": "d1"}}},
        {"event": "runner_on_ok", "pid": 4243, "stdout": "ok: [localhost]",
         "event_data": {"host": "localhost", "res": {"ansible_facts": {"deploy_run_dir": str(tmp_path)}}}},
        {"event": "runner_on_failed", "pid": 4243, "stdout": "...ignored",
         "event_data": {"host": "edge-1", "task": "probe", "ignore_errors": True, "res": {"msg": "no"}}},
        {"event": "runner_on_failed", "pid": 4243, "stdout": "fatal: [edge-2]",
         "event_data": {"host": "edge-2", "task": "Roll the peer", "res": {"msg": "health failed"}}},
        {"event": "playbook_on_stats", "pid": 4242, "stdout": "PLAY RECAP",
         "event_data": {"ok": {"localhost": 2, "edge-2": 1}, "failures": {"edge-2": 1}, "dark": {}}},
    ]
    assert all(events.event(e) is False for e in stream)  # runner keeps no copy on disk
    assert out.getvalue().splitlines() == ["ok: [localhost]", "ok: [localhost]", "...ignored", "fatal: [edge-2]",
                                           "PLAY RECAP"]
    assert events.run_dir() == tmp_path
    line = next(x for x in events.summary().splitlines() if x.startswith(SUMMARY_PREFIX))
    data = json.loads(line.removeprefix(SUMMARY_PREFIX))
    assert data["status"] == "failed" and data["id"] == "d1"
    assert data["failures"] == [{"host": "edge-2", "task": "Roll the peer", "msg": "health failed"}]
    assert data["hosts"]["edge-2"]["failures"] == 1 and data["hosts"]["localhost"]["ok"] == 2


def test_recap_names_unreachable_hosts() -> None:
    hosts = recap({"ok": {"a": 1}, "dark": {"b": 1}, "processed": {"a": 1, "b": 1}})
    assert hosts["b"]["unreachable"] == 1 and hosts["a"]["ok"] == 1 and hosts["a"]["unreachable"] == 0


def test_a_play_that_ended_before_its_recap_failed_although_no_task_said_so() -> None:
    events = PlayEvents(io.StringIO())  # ansible-playbook never started: no event at all
    data = json.loads(events.summary(exit_code=1).splitlines()[-1].removeprefix(SUMMARY_PREFIX))
    assert data["status"] == "failed"
    assert data["failures"] == [{"host": "localhost", "task": "ansible-playbook",
                                 "msg": "ended with exit code 1 before its play recap (see above)"}]


def test_a_play_that_reached_its_recap_is_judged_by_it() -> None:
    events = PlayEvents(io.StringIO())
    events.event({"event": "playbook_on_stats", "event_data": {"ok": {"localhost": 3}}})
    data = json.loads(events.summary(exit_code=0).splitlines()[-1].removeprefix(SUMMARY_PREFIX))
    assert data["status"] == "successful" and data["failures"] == []


def test_the_last_start_of_a_play_task_or_handler_is_kept_as_the_play_stamped_it() -> None:
    events = PlayEvents(io.StringIO())
    assert events.last_start == 0.0
    events.event({"event": "playbook_on_task_start", "created": "2026-12-06T22:20:35.500000+00:00"})
    events.event({"event": "runner_on_ok", "created": "2026-12-06T22:20:40+00:00"})  # a result, not a start
    assert events.last_start == 1796595635.5
    events.event({"event": "playbook_on_handler_task_start", "created": "2026-12-06T22:20:41+00:00"})
    events.event({"event": "playbook_on_task_start", "created": "2026-12-06T22:20:39+00:00"})  # came late
    events.event({"event": "playbook_on_play_start"})  # unstamped: says nothing
    assert events.last_start == 1796595641.0
