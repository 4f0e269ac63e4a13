"""Approval inputs and state (issue 19): APPROVE / APPROVAL_TIMEOUT / DEPLOY_ID checked by the one
schema, approve/abort decided once under a lock (twice is a no-op, a deploy not waiting says so),
wait-approval's outcomes, and resume's refusals. The lab tests run the real thing
(tests/integration/playbooks/test_approval.py)."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import threading
from pathlib import Path

import pytest

from edge_canary.ops import approval, approval_state, approval_wait, deploy, inputs, resume, runs
from tests.unit.edge_canary.ops.test_inputs import HOSTILE
from watcher.approval_settings import ApprovalConfigError, ApprovalSettings


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "runs" / "20261202T010000Z-bob-abc123"
    folder.mkdir(parents=True)
    (tmp_path / "edge-v2").write_bytes(b"\x7fELF")
    (tmp_path / "edge-v2").chmod(0o755)
    (folder / "deploy.json").write_text(
        json.dumps(
            {
                "deploy_id": folder.name,
                "artifact": str(tmp_path / "edge-v2"),
                "sha256": "ab" * 32,
                "version": "v2",
                "canary": "edge-1",
                "peers": ["edge-2"],
                "batch": 1,
                "config": {"rollout_pct": "0"},
            }
        )
    )
    return folder


def env_for(run_dir: Path, deploy_id: str | None = None) -> dict[str, str]:
    return {runs.STATE_DIR_ENV: str(run_dir.parent.parent), "DEPLOY_ID": deploy_id or run_dir.name, "USER": "alice"}


def waiting(run_dir: Path, timeout: float = 60) -> None:
    approval_state.open_wait(
        run_dir,
        deploy_id=run_dir.name,
        canary="edge-1",
        release="v2",
        timeout=timeout,
        on_timeout="abort",
        ask="",
        pid=1,
    )


# --- inputs ---------------------------------------------------------------------------------------


def test_approve_is_passed_only_when_given_and_must_be_a_flag() -> None:
    assert "deploy_approval" not in deploy.checked_vars({})  # group_vars' deploy_approval stands
    assert deploy.checked_vars({"APPROVE": "1"})["deploy_approval"] is True
    assert deploy.checked_vars({"APPROVE": "off"})["deploy_approval"] is False
    assert deploy.checked_vars({"APPROVAL_TIMEOUT": "90"})["deploy_approval_timeout"] == 90
    for name, value in [
        ("APPROVE", "maybe"),
        ("APPROVAL_TIMEOUT", "0"),
        ("APPROVAL_TIMEOUT", "1h"),
        *(("APPROVE", v) for v in HOSTILE),
        *(("APPROVAL_TIMEOUT", v) for v in HOSTILE),
    ]:
        with pytest.raises(inputs.InputError) as err:
            deploy.checked_vars({name: value})
        assert str(err.value).startswith(name) and "\n" not in str(err.value)


@pytest.mark.parametrize("value", [*HOSTILE, "../etc", "a/b", ".hidden", "", " "])
def test_a_bad_deploy_id_is_refused_in_one_line_with_exit_64(
    run_dir: Path, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert approval.decide("approve", env_for(run_dir, value) | {"DEPLOY_ID": value}) == inputs.EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("approve: DEPLOY_ID") and err.count("\n") == 1 and "nothing was changed" in err
    assert approval_state.read(run_dir) is None


def test_an_unknown_deploy_id_says_where_it_looked(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert approval.decide("abort", env_for(run_dir, "20261202T000000Z-x-000000")) == inputs.EXIT_USAGE
    err = capsys.readouterr().err
    assert "no such deploy in" in err and str(run_dir.parent) in err and err.count("\n") == 1


def test_the_state_dir_comes_from_the_inventory(tmp_path: Path) -> None:
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        f"all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
        f"      edge_canary_state_dir: {tmp_path}/state\n"
    )
    assert runs.state_dir({"INVENTORY": str(inventory), "PATH": "/usr/bin:/bin"}) == tmp_path / "state"


def test_the_operator_is_named_without_user_in_the_environment() -> None:
    """A shell with no USER or LOGNAME (a container, cron, `env -i`) recorded approvals as "approved by 0"."""
    me = pwd.getpwuid(os.getuid()).pw_name
    assert runs.operator({}) == me
    assert runs.operator({"USER": "alice", "SUDO_USER": "bob"}) == "bob"


# --- deciding ---------------------------------------------------------------------------------


def test_approve_twice_is_a_no_op_and_abort_after_it_says_so(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    waiting(run_dir)
    assert approval.decide("approve", env_for(run_dir)) == 0
    assert "approved by alice" in capsys.readouterr().out
    record = approval_state.read(run_dir)
    assert record is not None and (record["state"], record["decided_by"], record["done"]) == ("approved", "alice", True)
    assert approval.decide("approve", env_for(run_dir)) == 0
    assert "already approved by alice" in capsys.readouterr().out
    assert approval.decide("abort", env_for(run_dir)) == approval.EXIT_NOT_WAITING
    err = capsys.readouterr().err
    assert "is not waiting for approval: it was approved (by alice" in err and err.count("\n") == 1
    assert approval_state.read(run_dir) == record


def test_a_later_waves_gate_is_the_one_decided_once_it_waits(
        run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    waiting(run_dir)
    assert approval.decide("approve", env_for(run_dir)) == 0
    assert ": the deploy now rolls the peers (record: " in capsys.readouterr().out
    for wave in ("wave-2", "wave-10"):
        (run_dir / wave).mkdir()
    waiting(run_dir / "wave-2")
    assert approval_state.current_gate(run_dir) == run_dir / "wave-2"  # wave-10 has no record yet
    assert approval.decide("abort", env_for(run_dir)) == 0
    assert ": the watcher now reverts wave 2's canary to .previous and the deploy stops" in capsys.readouterr().out
    wave2 = approval_state.read(run_dir / "wave-2")
    assert wave2 is not None and wave2["state"] == "aborted"
    waiting(run_dir / "wave-10")
    assert approval.decide("approve", env_for(run_dir)) == 0
    assert ": the deploy now rolls the rest of wave 10 (record: " in capsys.readouterr().out
    wave10 = approval_state.read(run_dir / "wave-10")
    assert wave10 is not None and wave10["state"] == "approved"
    first = approval_state.read(run_dir)
    assert first is not None and first["state"] == "approved"


def test_a_deploy_that_never_waited_says_so(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert approval.decide("approve", env_for(run_dir)) == approval.EXIT_NOT_WAITING
    assert "it never waited for approval" in capsys.readouterr().err
    assert approval_state.read(run_dir) is None


def watcher_started(gate: Path, pid: int) -> None:
    """The decision log's first line, as a watcher writes it as it starts."""
    (gate / approval_state.DECISION_LOG).write_text(json.dumps({"event": "start", "pid": pid}) + "\n")


def test_abort_in_the_window_asks_the_live_watcher_and_only_it(
        run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No approval wait yet: make abort asks the watcher judging the window (alive, no verdict) to revert now;
    with no watcher alive, or its verdict given, nothing is written and it says the deploy is not waiting."""
    dead = subprocess.Popen(["true"])  # a pid surely gone: the child is reaped
    dead.wait()
    watcher_started(run_dir, dead.pid)
    assert approval.decide("abort", env_for(run_dir)) == approval.EXIT_NOT_WAITING
    assert not (run_dir / approval_state.ABORT_FILE).exists()
    assert "it never waited for approval" in capsys.readouterr().err

    watcher_started(run_dir, os.getpid())  # this process stands for a live watcher
    assert approval_state.abort_asked(run_dir) is None
    assert approval.decide("abort", env_for(run_dir)) == 0
    out = capsys.readouterr().out
    assert "aborted by alice in its SLI window: its watcher now reverts the canary to .previous" in out, out
    assert approval_state.abort_asked(run_dir) == "aborted by alice (make abort)"
    assert approval.decide("abort", env_for(run_dir)) == 0
    assert "was already aborted by alice (make abort): nothing to do" in capsys.readouterr().out

    wave = run_dir / "wave-2"  # a later wave's canary is the one judged now
    wave.mkdir()
    watcher_started(wave, os.getpid())
    (wave / approval_state.VERDICT_FILE).write_text("{}")
    assert approval.decide("abort", env_for(run_dir)) == approval.EXIT_NOT_WAITING, "its verdict is given"
    (wave / approval_state.VERDICT_FILE).unlink()
    assert approval.decide("abort", env_for(run_dir)) == 0
    assert "its watcher now reverts wave 2's canary" in capsys.readouterr().out
    assert approval.decide("approve", env_for(run_dir)) == approval.EXIT_NOT_WAITING, "approve is not for windows"


def test_racing_decisions_have_one_winner(run_dir: Path) -> None:
    waiting(run_dir)
    results: list[approval_state.Decision] = []
    barrier = threading.Barrier(8)

    def race(i: int) -> None:
        barrier.wait()
        results.append(
            approval_state.decide(run_dir, approval_state.REVERTED if i % 2 else approval_state.APPROVED, f"p{i}")
        )

    threads = [threading.Thread(target=race, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.changed for r in results) == 1
    record = approval_state.read(run_dir)
    assert record is not None and len(record["history"]) == 2


# --- the play's wait ------------------------------------------------------------------------------


def test_wait_approval_outcomes(run_dir: Path) -> None:
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        waiting(run_dir)
        approval_state.decide(run_dir, approval_state.ABORTED, "alice", "aborted by alice (make abort)")
        assert approval_wait.wait(run_dir, sleeper.pid, timeout=0.3, poll=0.05)[1]["verdict"] == "timeout"
    finally:
        sleeper.kill()
        sleeper.wait()
    approval_state.finish(run_dir, {"ok": True, "detail": "rolled back"})
    code, verdict = approval_wait.wait(run_dir, sleeper.pid, timeout=5, poll=0.05)
    assert (code, verdict["verdict"]) == (0, "aborted") and "aborted by alice" in verdict["reason"]

    waiting(run_dir)  # a watcher gone while waiting: the wait is closed, the play reverts itself
    code, verdict = approval_wait.wait(run_dir, sleeper.pid, timeout=5, poll=0.05)
    assert (code, verdict["verdict"]) == (3, "died")
    assert approval.decide("approve", env_for(run_dir)) == approval.EXIT_NOT_WAITING


def test_watcher_approval_settings_are_checked(tmp_path: Path) -> None:
    assert ApprovalSettings.from_mapping({}) is None
    gate = ApprovalSettings.from_mapping({"run_dir": str(tmp_path), "timeout": 30})
    assert gate is not None and (gate.timeout, gate.on_timeout) == (30.0, "abort")
    for bad in (
        {"run_dir": str(tmp_path / "nope")},
        {"run_dir": str(tmp_path), "on_timeout": "shrug"},
        {"run_dir": str(tmp_path), "timeout": 0},
        {"run_dir": str(tmp_path), "colour": 1},
    ):
        with pytest.raises(ApprovalConfigError):
            ApprovalSettings.from_mapping(bad)


# --- resume ---------------------------------------------------------------------------------------


def test_resume_takes_the_held_request_and_refuses_anything_else(run_dir: Path) -> None:
    with pytest.raises(inputs.InputError, match="was not held .its SLI verdict: none"):
        resume.resumed_env({}, run_dir)
    (run_dir / "verdict.json").write_text(json.dumps({"verdict": "reverted"}))
    with pytest.raises(inputs.InputError, match="was not held .its SLI verdict: reverted"):
        resume.resumed_env({}, run_dir)
    (run_dir / "verdict.json").write_text(json.dumps({"verdict": "hold"}))
    env = resume.resumed_env({"ARTIFACT": "/other", "SLI_WINDOW": "9"}, run_dir)
    assert (env["ARTIFACT"], env["CANARY_NODE"], env["PEER_NODES"], env["SLI_WINDOW"]) == (
        str(run_dir.parent.parent / "edge-v2"),
        "edge-1",
        "edge-2",
        "9",
    )
    assert deploy.checked_vars(env)["deploy_artifact_sha256"] == "ab" * 32
    asked = json.loads((run_dir / "deploy.json").read_text())
    (run_dir / "deploy.json").write_text(json.dumps({**asked, "config": {"lab_api_key": resume.REDACTED}}))
    with pytest.raises(inputs.InputError, match="secret config keys"):
        resume.resumed_env({}, run_dir)


# --- events ---------------------------------------------------------------------------------------


def test_approval_and_wave_events_are_alerts_of_their_own() -> None:
    from datetime import UTC, datetime

    from watcher.notify import EVENTS, Event

    assert {"awaiting_approval", "approved", "aborted", "wave_done"} <= set(EVENTS)
    now = datetime(2026, 12, 2, tzinfo=UTC)
    waves = [Event("wave_done", "d1", canary="edge-1", release="v2", wave=w).alert("", now) for w in ("1/2", "2/2")]
    # Two waves are two alerts (Alertmanager merges alerts with the same labels), each its own wave label.
    assert [a["labels"]["wave"] for a in waves] == ["1/2", "2/2"]
    assert "wave" not in Event("approved", "d1").alert("", now)["labels"]
    assert Event("awaiting_approval", "d1").alert("https://x/RUNBOOK.md", now)["annotations"]["runbook_url"] == (
        "https://x/RUNBOOK.md#approve-abort-resume")


def test_a_deploy_held_at_a_later_wave_is_resumed_and_one_reverted_there_is_not(run_dir: Path) -> None:
    asked = json.loads((run_dir / "deploy.json").read_text())
    asked["waves"] = [{"wave": 1, "pop": "ams", "canary": "edge-1", "rest": []},
                      {"wave": 2, "pop": "fra", "canary": "edge-2", "rest": []}]
    (run_dir / "deploy.json").write_text(json.dumps(asked))
    (run_dir / "verdict.json").write_text(json.dumps({"verdict": "promote"}))
    (run_dir / "wave-2").mkdir()
    (run_dir / "wave-2" / "verdict.json").write_text(json.dumps({"verdict": "hold"}))
    assert resume.resumed_env({}, run_dir)["CANARY_NODE"] == "edge-1"
    (run_dir / "wave-2" / "verdict.json").write_text(json.dumps({"verdict": "reverted"}))
    with pytest.raises(inputs.InputError, match="was not held .its SLI verdict: reverted"):
        resume.resumed_env({}, run_dir)
