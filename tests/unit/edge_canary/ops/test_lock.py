"""edge_canary.ops.lock under races, with real processes: stale recoveries, pid reuse, re-entry, watchers."""

from __future__ import annotations

import json
import multiprocessing
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from edge_canary.ops import lock
from edge_canary.ops.lock_holder import process, start_time

REPO = Path(__file__).resolve().parents[4]
CTX = multiprocessing.get_context("fork")


def cli(directory: Path, *args: str, token: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, lock.TOKEN_ENV: token}
    return subprocess.run([sys.executable, "-m", "edge_canary", "lock", "--dir", str(directory), *args],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=60)


def dead_holder() -> dict[str, Any]:
    gone = subprocess.Popen(["true"])
    gone.wait()
    return {"pid": gone.pid, "start": 1, **{k: v for k, v in process(os.getpid()).items() if k in ("host", "boot")}}


def stale_lock(directory: Path, lock_id: str = "20260101T000000Z-alice") -> None:
    (directory / "deploy.lock").write_text(json.dumps({"id": lock_id, "user": "alice", "since": "then",
                                                       **dead_holder(), "token": "t0"}))


def _taker(directory: str, lock_id: str, barrier: Any, results: Any) -> None:
    # The lock's holder is the taker's parent (_holder below): a process that outlives the take. Every read
    # is slowed down, so that a check-then-replace window, if there is one, is wide open.
    original = lock.read

    def slow_read(path: Path) -> dict[str, Any] | None:
        found = original(path)
        time.sleep(0.05)
        return found

    lock.read = slow_read  # this forked process only
    barrier.wait()
    code: int | str
    try:
        code = lock.acquire(Path(directory), "deploy", lock_id, force=False, wait=0)
    except Exception as exc:  # noqa: BLE001 - a crashed take is an outcome too
        code = repr(exc)
    results.put((lock_id, code))


def _holder(directory: str, lock_id: str, barrier: Any, results: Any, done: Any) -> None:
    child = CTX.Process(target=_taker, args=(directory, lock_id, barrier, results))
    child.start()
    child.join()
    done.wait(60)


def test_many_concurrent_stale_recoveries_end_with_exactly_one_holder(tmp_path: Path) -> None:
    stale_lock(tmp_path)
    takers = 20
    barrier, results, done = CTX.Barrier(takers), CTX.Queue(), CTX.Event()
    holders = [CTX.Process(target=_holder, args=(str(tmp_path), f"run-{n}", barrier, results, done))
               for n in range(takers)]
    for holder in holders:
        holder.start()
    try:
        outcomes = dict(results.get(timeout=60) for _ in range(takers))
        winners = [lock_id for lock_id, code in outcomes.items() if code == 0]
        assert len(winners) == 1, outcomes
        held = json.loads((tmp_path / "deploy.lock").read_text())
        assert held["id"] == winners[0]
        assert held["pid"] in {holder.pid for holder in holders}
        assert held["start"] == start_time(held["pid"])
        assert (tmp_path / "locks.log").read_text().count("recovered stale") == 1
        assert cli(tmp_path, "show").stdout.startswith(f"deploy: deploy {winners[0]}")
    finally:
        done.set()
        for holder in holders:
            holder.join(30)


def test_a_live_pid_with_another_start_time_is_a_reused_pid_and_its_lock_stale(tmp_path: Path) -> None:
    other = subprocess.Popen(["sleep", "60"])
    try:
        reused = {**process(other.pid), "start": (start_time(other.pid) or 0) + 1}
        (tmp_path / "deploy.lock").write_text(json.dumps({"id": "old-run", "user": "alice", "since": "then",
                                                          **reused}))
        assert "[stale]" in cli(tmp_path, "show").stdout
        taken = cli(tmp_path, "acquire", "deploy", "--id", "new-run")
        assert taken.returncode == 0, taken.stderr
        assert "recovered the stale lock of deploy old-run" in taken.stdout
    finally:
        other.kill()
        other.wait()


def test_the_same_id_from_another_run_is_refused_naming_the_holder(tmp_path: Path) -> None:
    holder = subprocess.Popen(["sleep", "60"])
    try:
        (tmp_path / "runs" / "20260101T000000Z-alice").mkdir(parents=True)  # the deploy's record
        (tmp_path / "runs" / "20260101T000000Z-alice" / "deploy.json").write_text("{}")
        (tmp_path / "deploy.lock").write_text(json.dumps({"id": "20260101T000000Z-alice", "user": "alice",
                                                          "since": "then", **process(holder.pid), "token": "t1"}))
        refused = cli(tmp_path, "acquire", "deploy", "--id", "20260101T000000Z-alice", "--wait", "0")
        assert refused.returncode == 1
        assert "another deploy 20260101T000000Z-alice by alice" in refused.stderr
        # A deploy's canary may be hurting now: the refusal says how to stop it without waiting for the verdict.
        assert "or make abort DEPLOY_ID=20260101T000000Z-alice to revert its canary now" in refused.stderr
        # Nor can that name release it; the token can re-enter it.
        cli(tmp_path, "release", "deploy", "--id", "20260101T000000Z-alice")
        assert (tmp_path / "deploy.lock").exists()
        again = cli(tmp_path, "acquire", "deploy", "--id", "anything", token="t1")
        assert again.returncode == 0 and "already held" in again.stdout
    finally:
        holder.kill()
        holder.wait()


def test_the_run_itself_re_enters_and_releases(tmp_path: Path) -> None:
    # This test process is the holder of both commands (their parent): the very run.
    assert cli(tmp_path, "acquire", "deploy", "--id", "r1").returncode == 0
    again = cli(tmp_path, "acquire", "deploy", "--id", "r1")
    assert again.returncode == 0 and "already held by r1" in again.stdout
    assert "released by r1" in cli(tmp_path, "release", "deploy", "--id", "r1").stdout
    assert not (tmp_path / "deploy.lock").exists()


def test_a_watcher_keeps_its_runs_lock_until_it_ends(tmp_path: Path) -> None:
    run = subprocess.Popen(["sleep", "60"])
    (tmp_path / "deploy.lock").write_text(json.dumps({"id": "d1", "user": "u", "since": "then",
                                                      **process(run.pid), "token": "t2", "watchers": []}))
    watcher = subprocess.Popen([sys.executable, "-m", "edge_canary", "lock", "--dir", str(tmp_path), "exec",
                                "deploy", "--", "sleep", "60"], cwd=REPO, env={**os.environ, lock.TOKEN_ENV: "t2"})
    try:
        deadline = time.monotonic() + 20
        while not json.loads((tmp_path / "deploy.lock").read_text()).get("watchers"):
            assert time.monotonic() < deadline, "the watcher never joined the lock"
            time.sleep(0.1)
        joined = json.loads((tmp_path / "deploy.lock").read_text())["watchers"]
        assert [w["pid"] for w in joined] == [watcher.pid]
        assert joined[0]["start"] == start_time(watcher.pid)  # exec kept the pid and the start time
        # The run ends (interrupted) and its tool releases: the lock stays with the watcher.
        run.kill()
        run.wait()
        released = cli(tmp_path, "release", "deploy", "--id", "d1")
        assert "keeps it until it ends" in released.stdout
        refused = cli(tmp_path, "acquire", "deploy", "--id", "d2", "--wait", "0")
        assert refused.returncode == 1
        assert "kept by its watcher" in refused.stderr
        # What the watcher runs (its token) re-enters.
        assert cli(tmp_path, "acquire", "deploy", "--id", "d1", token="t2").returncode == 0
        # So does a process the watcher started whose environment lost the token.
        acquire = shlex.join([sys.executable, "-m", "edge_canary", "lock", "--dir", str(tmp_path), "acquire", "deploy"])
        inside = subprocess.run(
            [sys.executable, "-m", "edge_canary", "lock", "--dir", str(tmp_path), "exec", "deploy", "--",
             "sh", "-c", f"unset {lock.TOKEN_ENV}; {acquire} --id x; echo rc=$?"],
            capture_output=True, text=True, cwd=REPO, timeout=60, env={**os.environ, lock.TOKEN_ENV: "t2"})
        assert "already held by d1" in inside.stdout and "rc=0" in inside.stdout, inside.stdout + inside.stderr
    finally:
        watcher.kill()
        watcher.wait()
    assert cli(tmp_path, "show").stdout.startswith("deploy: free")
    taken = cli(tmp_path, "acquire", "deploy", "--id", "d2")
    assert taken.returncode == 0 and "stale" not in taken.stdout
    cli(tmp_path, "release", "deploy", "--id", "d2")


@pytest.mark.parametrize("run_released", [True, False])
def test_a_watcher_done_with_the_fleet_leaves_and_the_lock_goes_with_its_last_holder(
        tmp_path: Path, run_released: bool) -> None:
    """The watcher leaves its run's lock before it writes its verdict (lock.leave_joined): a released run's
    lock file is gone then, not left behind for a stale recovery; a live run keeps its lock."""
    run = subprocess.Popen(["sleep", "60"])
    (tmp_path / "deploy.lock").write_text(json.dumps({"id": "d1", "user": "u", "since": "then",
                                                      **process(run.pid), "token": "t3", "watchers": []}))
    leave_then_wait = ("import time; from edge_canary.ops import lock; input(); lock.leave_joined(); "
                       "print('left', flush=True); time.sleep(60)")
    watcher = subprocess.Popen([sys.executable, "-m", "edge_canary", "lock", "--dir", str(tmp_path), "exec",
                                "deploy", "--", sys.executable, "-c", leave_then_wait], cwd=REPO, text=True,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, env={**os.environ, lock.TOKEN_ENV: "t3"})
    try:
        assert watcher.stdin is not None and watcher.stdout is not None
        assert "kept until this process" in watcher.stdout.readline()
        if run_released:  # the run's own release while its watcher still judges
            assert "keeps it until it ends" in cli(tmp_path, "release", "deploy", "--id", "d1", token="t3").stdout
        watcher.stdin.write("\n")
        watcher.stdin.flush()
        assert watcher.stdout.readline().strip() == "left"
        if run_released:
            assert not (tmp_path / "deploy.lock").exists()
            assert "released by its watcher" in (tmp_path / "locks.log").read_text()
        else:
            still = json.loads((tmp_path / "deploy.lock").read_text())
            assert still["watchers"] == [] and still["pid"] == run.pid
            assert cli(tmp_path, "acquire", "deploy", "--id", "d2", "--wait", "0").returncode == 1
    finally:
        for proc in (watcher, run):
            proc.kill()
            proc.wait()


def test_a_take_waits_for_the_watcher_of_a_released_run(tmp_path: Path) -> None:
    watcher = subprocess.Popen(["sleep", "2"])
    (tmp_path / "deploy.lock").write_text(json.dumps({"id": "d1", "user": "u", "since": "then", **dead_holder(),
                                                      "released": True, "watchers": [process(watcher.pid)]}))
    try:
        taken = cli(tmp_path, "acquire", "deploy", "--id", "d2", "--wait", "30")
        assert taken.returncode == 0, taken.stderr
        assert "taken by d2" in taken.stdout and "stale" not in taken.stdout
    finally:
        watcher.wait()
        cli(tmp_path, "release", "deploy", "--id", "d2")


def test_a_watcher_without_the_token_runs_but_does_not_join(tmp_path: Path) -> None:
    stale_lock(tmp_path)
    ran = subprocess.run([sys.executable, "-m", "edge_canary", "lock", "--dir", str(tmp_path), "exec", "deploy",
                          "--", "echo", "watching"], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, lock.TOKEN_ENV: "wrong"}, timeout=60)
    assert ran.returncode == 0
    assert "running without the lock" in ran.stdout and "watching" in ran.stdout
    assert not json.loads((tmp_path / "deploy.lock").read_text()).get("watchers")


def test_two_deploys_in_the_same_second_get_two_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    from edge_canary.ops import deploy, inputs

    ids: list[str] = []
    frozen = time.gmtime(1_700_000_000)
    monkeypatch.setattr(inputs.rules.time, "gmtime", lambda *_: frozen)

    def run_play(_playbook: str, run_id: str, *_args: Any, **_kwargs: Any) -> int:
        ids.append(run_id)
        return 0

    monkeypatch.setattr(deploy, "run_play", run_play)
    monkeypatch.setenv("ARTIFACT", sys.executable)
    deploy.main([])
    deploy.main([])
    assert len(set(ids)) == 2 and all(i.startswith("20231114T221320Z-") for i in ids)


def test_the_abort_hint_is_for_deploys_only(tmp_path: Path) -> None:
    """A deploy is a holder with a deploy record (runs/<id>/deploy.json); a rollout's folder has none."""
    records = {"20261207T181139Z-root-e1fb6e": "deploy.json", "rollout-20261207T174122Z-root": "rollout.json"}
    for run, record in records.items():
        (tmp_path / "runs" / run).mkdir(parents=True)
        (tmp_path / "runs" / run / record).write_text("{}")
    assert lock.abort_hint(tmp_path, {"id": "20261207T181139Z-root-e1fb6e"}).endswith(
        "make abort DEPLOY_ID=20261207T181139Z-root-e1fb6e to revert its canary now")
    assert lock.abort_hint(tmp_path, {"id": "rollback-20261207T173310Z-root"}) == ""
    assert lock.abort_hint(tmp_path, {"id": "rollout-20261207T174122Z-root"}) == ""
    assert lock.abort_hint(tmp_path, {"id": "../runs/20261207T181139Z-root-e1fb6e"}) == ""
    assert lock.abort_hint(tmp_path, {}) == ""
