"""The fast path on red (watcher/drain.py, FastPathRevert), the retried rollback play and the
ansible-playbook child owned by the watcher (watcher/owned.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from watcher import drain
from watcher.config import load_settings
from watcher.revert import AnsibleRevert, FastPathRevert, RevertOutcome, ShadowRevert, build_reverter
from watcher.settings import ConfigError

TARGET = {"lb": "lb-1", "socket": "/run/haproxy/admin.sock", "backend": "edge", "server": "edge-2"}


class FlakyRunner:
    """ansible_runner.run stand-in: fails the first `failures` calls, then succeeds."""

    def __init__(self, failures: int) -> None:
        self.failures, self.calls = failures, []  # type: ignore[var-annotated]

    def __call__(self, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        ok = len(self.calls) > self.failures
        out = Path(kwargs["private_data_dir"]) / "stdout"
        out.write_text("ok\n" if ok else "fatal: node unreachable\n")
        return SimpleNamespace(status="successful" if ok else "failed", rc=0 if ok else 2, stdout=out.open())


@pytest.fixture
def playbook(tmp_path: Path) -> str:
    (tmp_path / "ansible.cfg").write_text("[defaults]\n")
    (tmp_path / "rollback.yml").write_text("- hosts: all\n  tasks: []\n")
    return str(tmp_path / "rollback.yml")


def test_a_revert_failing_once_is_run_again_after_a_backoff(playbook: str) -> None:
    runner, pauses = FlakyRunner(1), []  # type: ignore[var-annotated]
    outcome = AnsibleRevert(playbook, "edge-2", None, {}, 600, runner=runner, sleep=pauses.append).revert("red")
    assert outcome.ok and len(runner.calls) == 2 and pauses == [2.0]
    assert outcome.extra["attempts"] == 2 and "ended failed" in outcome.extra["earlier_failures"][0]
    # each run gets what is left of the time limit
    assert runner.calls[1]["timeout"] <= runner.calls[0]["timeout"] == 600


def test_a_revert_failing_every_time_gives_up_after_its_attempts(playbook: str) -> None:
    runner, pauses = FlakyRunner(99), []  # type: ignore[var-annotated]
    outcome = AnsibleRevert(playbook, "edge-2", None, {}, 600, runner=runner, sleep=pauses.append).revert("red")
    assert not outcome.ok and len(runner.calls) == 3 and pauses == [2.0, 4.0]


def test_no_retry_when_the_time_limit_is_spent(playbook: str) -> None:
    runner = FlakyRunner(99)
    outcome = AnsibleRevert(playbook, "edge-2", None, {}, 2, runner=runner, sleep=lambda s: None).revert("red")
    assert not outcome.ok and len(runner.calls) == 1


def test_the_playbook_runs_under_the_owning_wrapper(playbook: str) -> None:
    runner = FlakyRunner(0)
    AnsibleRevert(playbook, "edge-2", None, {}, 60, runner=runner).revert("red")
    call = runner.calls[0]
    assert call["binary"].endswith("owned-ansible-playbook") and call["cmdline"] == playbook
    assert call["envvars"]["EDGE_CANARY_OWNER_PID"] == str(os.getpid())


class FakeInner:
    action = "ansible"

    def __init__(self) -> None:
        self.reverted = False

    def describe(self) -> str:
        return "the rollback playbook"

    def revert(self, reason: str) -> RevertOutcome:
        self.reverted = True
        return RevertOutcome("ansible", True, "rolled back")


def test_a_failed_drain_is_logged_and_the_restore_still_runs(capsys: pytest.CaptureFixture[str]) -> None:
    plan = drain.parse_plan({"targets": [TARGET]})
    assert plan is not None

    def broken(plan: drain.Plan, log: Any) -> drain.DrainOutcome:
        raise OSError("socket gone")

    inner = FakeInner()
    outcome = FastPathRevert(plan, inner, broken).revert("red")
    assert inner.reverted and outcome.ok
    assert outcome.extra["drain"]["ok"] is False and "socket gone" in outcome.extra["drain"]["detail"]
    assert "FAST PATH FAILED" in capsys.readouterr().out
    assert "edge-2 on lb-1 (admin socket), then the rollback playbook" in FastPathRevert(plan, inner).describe()


def test_drain_retries_a_failing_load_balancer_and_logs_each_failure(tmp_path: Path) -> None:
    plan = drain.Plan((drain.Target("lb-1", str(tmp_path / "nothing.sock"), "edge", "edge-2"),),
                      socket_timeout=0.2, deadline=0.5, pause=0.1)  # fmt: skip
    lines: list[str] = []
    outcome = drain.drain(plan, lines.append)
    assert not outcome.ok and outcome.results[0].attempts >= 2
    assert len(lines) == outcome.results[0].attempts and "attempt 1" in lines[0]
    assert "NOT drained on lb-1" in outcome.detail


def test_a_load_balancer_out_of_reach_is_left_to_the_rollback_play() -> None:
    plan = drain.Plan((drain.Target("lb-remote", "", "edge", "edge-2"),))
    outcome = drain.drain(plan, lambda line: None)
    assert not outcome.ok and "the rollback play drains it" in outcome.results[0].detail


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"targets": []}, "non-empty list"),
        ({"targets": [{**TARGET, "server": "edge-2;shutdown"}]}, "invalid server name"),
        ({"targets": [{**TARGET, "backend": "a\nb"}]}, "invalid backend name"),
        ({"targets": [TARGET], "socket_timeout": 0}, "socket_timeout"),
    ],
)
def test_drain_settings_are_checked_as_the_module_checks_them(
    tmp_path: Path, data: dict[str, Any], message: str
) -> None:
    with pytest.raises(drain.DrainConfigError, match=message):
        drain.parse_plan(data)
    config = tmp_path / "w.json"
    import json

    config.write_text(json.dumps({"prom_url": "http://p:9090", "canary_selector": 'node="a"',
                                  "control_selector": 'node!="a"', "revert_action": "none", "drain": data}))
    with pytest.raises(ConfigError, match="--drain"):
        load_settings(["--config", str(config)])


def test_build_reverter_puts_the_fast_path_in_front_but_not_in_shadow_mode(tmp_path: Path, playbook: str) -> None:
    import json

    base = {"prom_url": "http://p:9090", "canary_selector": 'node="edge-2"', "control_selector": 'node!="edge-2"',
            "canary_node": "edge-2", "playbook": playbook, "drain": {"targets": [TARGET]}}
    for action, kind in (("ansible", FastPathRevert), ("none", ShadowRevert)):
        config = tmp_path / f"{action}.json"
        config.write_text(json.dumps({**base, "revert_action": action}))
        assert isinstance(build_reverter(load_settings(["--config", str(config)])), kind)


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def test_killing_the_watcher_kills_its_runner_child(tmp_path: Path, playbook: str) -> None:
    """A stand-in watcher runs the revert through real ansible-runner, its 'ansible-playbook' a sleeper;
    SIGKILL to the watcher's process group must not leave the sleeper running."""
    pidfile = tmp_path / "child.pid"
    sleeper = f"import os, sys, time; open({str(pidfile)!r}, 'w').write(str(os.getpid())); time.sleep(120)"
    watcher = textwrap.dedent(f"""
        from watcher.revert import AnsibleRevert
        AnsibleRevert({playbook!r}, "edge-2", None, {{}}, 120,
                      command=[{sys.executable!r}, "-c", {sleeper!r}]).revert("red")
    """)
    # Its runner folder goes in tmp_path: the SIGKILL leaves it behind, as any SIGKILL would.
    proc = subprocess.Popen([sys.executable, "-c", watcher], start_new_session=True,
                            env={**os.environ, "TMPDIR": str(tmp_path)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not pidfile.exists() or not pidfile.read_text():
            assert time.monotonic() < deadline and proc.poll() is None, "the runner child never started"
            time.sleep(0.1)
        child = int(pidfile.read_text())
        assert not _gone(child)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 15
        while not _gone(child):
            assert time.monotonic() < deadline, f"runner child {child} outlived the watcher"
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
