"""Approval, abort, the time limit and resume (issue 19), on the real lab: make deploy-canary APPROVE=1
stops after a promoted canary until make approve / make abort, the watcher judging on meanwhile; make
resume finishes a held deploy. Each canary push costs minutes on a busy box, so few deploys, each asserting
all it honestly can: a held deploy resumed with APPROVE=1 checks the resume, then the approval (the peers
stay put while it waits, the events, the progress lines, idempotence); the abort deploy checks the
APPROVAL_TIMEOUT it was given too (the time limit firing is tests/unit/watcher/test_awaiting.py's)."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from edge_canary.ops import approval_state
from tests.helpers.fleet import fleet_versions, node_pids, sha256
from tests.helpers.lab import REPO, Lab
from tests.helpers.summary import record_dir, run_summary
from tests.helpers.watch_window import PROMOTING_WINDOW
from tests.integration.watcher.test_noise import FLEET_WIDE_ERRORS, set_noise
from tests.integration.watcher.test_notify import Webhook, wait_for
from tests.integration.watcher.test_notify import webhook as webhook  # noqa: F401  (the fixture)

DEPLOY_ENV = {**PROMOTING_WINDOW, "CANARY_NODE": "edge-1", "BATCH": "1"}


class Deploy:
    """make deploy-canary in the background: its output, its record folder, its approval record."""

    def __init__(self, lab: Lab, artifact: Path | None, target: str = "deploy-canary", **env: str) -> None:
        self.lab = lab
        self.runs = lab.lab_dir / "control" / "runs"
        self.before = set(self.runs.iterdir()) if self.runs.exists() else set()
        self.proc = subprocess.Popen(
            ["make", "--no-print-directory", target],
            cwd=REPO,
            text=True,
            env={**lab.env, **({"ARTIFACT": str(artifact)} if artifact else {}), **DEPLOY_ENV, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.stdout = ""

    @property
    def run_dir(self) -> Path:
        new = sorted(set(self.runs.iterdir()) - self.before)
        assert len(new) == 1, new
        return new[0]

    @property
    def deploy_id(self) -> str:
        return self.run_dir.name

    def approval(self) -> dict[str, Any] | None:
        new = set(self.runs.iterdir()) - self.before if self.runs.exists() else set()
        return approval_state.read(next(iter(new))) if len(new) == 1 else None

    def wait_awaiting(self, timeout: float = 240) -> dict[str, Any]:
        wait_for(
            lambda: (self.approval() or {}).get("state") == "waiting" or self.proc.poll() is not None,
            timeout,
            "the deploy to await approval",
        )
        record = self.approval()
        assert record is not None and record["state"] == "waiting", self.finish()
        return record

    def finish(self, timeout: float = 600) -> str:
        self.stdout, _ = self.proc.communicate(timeout=timeout)
        return self.stdout


def decide(lab: Lab, action: str, deploy_id: str) -> subprocess.CompletedProcess[str]:
    return lab.make(action, extra_env={"DEPLOY_ID": deploy_id, "USER": "alice"}, timeout=120)


MAKE_SAID = re.compile(r"make(\[\d+\])?: ")


def said(result: subprocess.CompletedProcess[str]) -> str:
    """What the tool wrote to stderr, without make's own `make: *** … Error N` line (`make[1]: …` when the
    tests themselves run under make, as `make test` runs them)."""
    return "".join(line for line in result.stderr.splitlines(keepends=True) if not MAKE_SAID.match(line))


@pytest.fixture
def deploys() -> Iterator[list[Deploy]]:
    started: list[Deploy] = []
    yield started
    for d in started:  # a failed test never leaves a deploy behind
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.communicate()


def test_abort_reverts_the_canary_and_fails_the_deploy_and_the_time_limit_is_the_one_asked(
    fleet: Lab, artifacts: dict[str, Path], webhook: Webhook, deploys: list[Deploy]
) -> None:  # noqa: F811
    run = Deploy(fleet, artifacts["v2"], APPROVE="1", APPROVAL_TIMEOUT="900")
    deploys.append(run)
    waiting = run.wait_awaiting()
    # APPROVAL_TIMEOUT reached the watcher: its time limit (what it does then: tests/unit/watcher/test_awaiting.py).
    opened, deadline = (datetime.fromisoformat(waiting[k]) for k in ("opened_at", "deadline_at"))
    assert waiting["timeout"] == 900 and abs((deadline - opened).total_seconds() - 900) <= 1, waiting
    aborted = decide(fleet, "abort", run.deploy_id)
    assert aborted.returncode == 0 and "aborted by alice" in aborted.stdout, aborted
    out = run.finish()
    assert run.proc.returncode != 0
    assert "SLI gate: ABORTED" in out and "aborted by alice (make abort)" in out, out[-4000:]
    assert fleet_versions(fleet) == {"edge-1": "v1", "edge-2": "v1", "edge-3": "v1"}
    assert set(fleet.lb_states().values()) == {"READY"}
    record = approval_state.read(run.run_dir)
    assert record is not None and record["state"] == "aborted" and record["done"] and record["revert"]["ok"]
    wait_for(lambda: webhook.notifications(run.deploy_id, "aborted"), 30, "the aborted event")
    again = decide(fleet, "approve", run.deploy_id)
    assert again.returncode != 0 and "was aborted (by alice" in said(again), again

    # Bad or unknown ids: one line, exit 64, nothing changed.
    for bad in ("../runs", "no-such-deploy", ""):
        refused = decide(fleet, "approve", bad)
        assert refused.returncode != 0 and said(refused).strip().count("\n") == 0, refused
        assert "DEPLOY_ID" in said(refused) and "nothing was changed" in said(refused)


def test_abort_in_the_sli_window_reverts_the_canary_at_once(
    fleet: Lab, artifacts: dict[str, Path], deploys: list[Deploy]
) -> None:
    """No APPROVE: an on-call who sees the canary hurt before its verdict aborts the window. Before, make abort
    said the deploy was not waiting and make rollback was refused by the deploy's lock until the window ended."""
    run = Deploy(fleet, artifacts["v2"], SLI_WINDOW="600")
    deploys.append(run)
    wait_for(lambda: probed(run) or run.proc.poll() is not None, 300, "the window's first probe")
    aborted = decide(fleet, "abort", run.deploy_id)
    assert aborted.returncode == 0 and "aborted by alice in its SLI window" in aborted.stdout, aborted
    out = run.finish(timeout=300)  # the window was 600 s: it ended at the abort
    assert run.proc.returncode != 0
    assert "SLI gate: REVERTED — aborted by alice (make abort); the peers were not touched" in out, out[-4000:]
    assert "reverted by the SLI watcher: aborted by alice (make abort)" in out, out[-4000:]
    assert fleet_versions(fleet) == {"edge-1": "v1", "edge-2": "v1", "edge-3": "v1"}
    assert set(fleet.lb_states().values()) == {"READY"}
    verdict = json.loads((run.run_dir / "verdict.json").read_text())
    assert (verdict["verdict"], verdict["reason"]) == ("reverted", "aborted by alice (make abort)")
    again = decide(fleet, "abort", run.deploy_id)
    assert again.returncode == 0 and "already aborted by alice" in again.stdout, again


def probed(run: Deploy) -> bool:
    """The deploy's watcher has judged a probe of its window (its record folder may not exist yet)."""
    try:
        return '"event": "probe"' in (run.run_dir / "decisions.jsonl").read_text()
    except (OSError, AssertionError):
        return False


def test_a_canary_red_while_awaiting_approval_is_reverted(
    fleet: Lab, artifacts: dict[str, Path], deploys: list[Deploy]
) -> None:
    run = Deploy(fleet, artifacts["v2"], APPROVE="1")
    deploys.append(run)
    run.wait_awaiting()
    # The canary alone turns bad: a third of its answers 503 (the lab's noise, read live).
    conf = fleet.node_dir("edge-1") / "edge.conf"
    conf.write_text(conf.read_text() + "noise_errors=0.3\n")
    out = run.finish()
    assert run.proc.returncode != 0 and "SLI gate: REVERTED" in out, out[-4000:]
    assert fleet_versions(fleet) == {"edge-1": "v1", "edge-2": "v1", "edge-3": "v1"}
    record = approval_state.read(run.run_dir)
    assert record is not None and (record["state"], record["decided_by"]) == ("reverted", "watcher")
    verdict = json.loads((run.run_dir / "verdict.json").read_text())
    assert (verdict["verdict"], verdict["window_verdict"]) == ("reverted", "promote")
    assert "canary red" in verdict["reason"]


def test_a_peer_put_in_maintenance_while_the_deploy_waits_is_left_alone(
    fleet: Lab, artifacts: dict[str, Path], deploys: list[Deploy]
) -> None:
    """Preflight leaves out the nodes in maintenance, but one put there later (a long deploy waiting for
    approval) was drained, rolled and put back in rotation by its batch. The roll leaves it alone, and
    the rest of its batch rolls."""
    run = Deploy(fleet, artifacts["v2"], APPROVE="1", BATCH="2")
    deploys.append(run)
    run.wait_awaiting()
    home = fleet.node_dir("edge-3")
    files, pid = {name: sha256(home / name) for name in ("edge", "edge.previous")}, node_pids(fleet)["edge-3"]
    fleet.haproxy("set server edge/edge-3 state maint")
    try:
        approved = decide(fleet, "approve", run.deploy_id)
        assert approved.returncode == 0, approved
        out = run.finish()
        assert run.proc.returncode == 0, out[-4000:]
        assert fleet_versions(fleet) == {"edge-1": "v2", "edge-2": "v2", "edge-3": "v1"}
        assert {name: sha256(home / name) for name in files} == files and node_pids(fleet)["edge-3"] == pid
        assert fleet.lb_states() == {"edge-1": "READY", "edge-2": "READY", "edge-3": "MAINT"}
        rows = {row["node"]: row["result"] for row in run_summary(out)["nodes"]}
        assert rows == {"edge-1": "ok", "edge-2": "ok",
                        "edge-3": "left alone: put in maintenance on lb-1 during the deploy (not rolled)"}, rows
        # Noted on it, so that a rollback after this deploy leaves it on v1 rather than its .previous.
        assert json.loads((home / "release.json").read_text())["not_reached"]["deploy_id"] == run.deploy_id
    finally:
        fleet.haproxy("set server edge/edge-3 state ready")


def test_a_held_deploy_resumed_with_approve_waits_for_make_approve_then_rolls_the_peers_not_the_canary(
    fleet: Lab,
    artifacts: dict[str, Path],
    webhook: Webhook,  # noqa: F811
    deploys: list[Deploy],
) -> None:
    set_noise(fleet, FLEET_WIDE_ERRORS, "0.02")  # every node over the SLO: a fleet-wide breach, the canary not blamed
    held = fleet.make(
        "deploy-canary",
        extra_env={"ARTIFACT": str(artifacts["v2"]), **DEPLOY_ENV, "SLI_WINDOW": "21", "CANARY_NODE": "edge-2"},
    )
    assert held.returncode != 0 and "SLI verdict: HOLD" in held.stdout, held.stdout[-4000:]
    held_id = record_dir(held.stdout).name
    assert (f"Held: edge-2 stays on v2, in rotation, and nothing after it rolled. Decide: make resume "
            f"DEPLOY_ID={held_id} (a fresh SLI gate, then the rest) or make rollback NODES=edge-2") in held.stdout
    assert fleet_versions(fleet) == {"edge-1": "v1", "edge-2": "v2", "edge-3": "v1"}
    # make status names the held deploy until it is decided, with both ways to decide it.
    status = fleet.make("status", extra_env={"JSON": ""})
    shown = " ".join(status.stdout.split())
    assert status.returncode != 0 and f"deploy {held_id} is held (its SLI gate said HOLD: " in shown, \
        status.stdout[-3000:]
    assert (f"edge-2 runs v2, edge-1, edge-3 not yet. Decide: make resume DEPLOY_ID={held_id} (a fresh SLI gate, "
            "then the rest) or make rollback NODES=edge-2") in shown, status.stdout[-3000:]
    pid_before = fleet.node_version("edge-2").get("pid")
    set_noise(fleet, "0", "0")

    # A copy of the held record naming another release: the canary does not run it, refused.
    other = fleet.lab_dir / "control" / "runs" / f"{held_id}-other"
    other.mkdir()
    asked = json.loads((fleet.lab_dir / "control" / "runs" / held_id / "deploy.json").read_text())
    (other / "deploy.json").write_text(
        json.dumps({**asked, "artifact": str(artifacts["v2-slow"]), "sha256": sha256(artifacts["v2-slow"])})
    )
    (other / "verdict.json").write_text(json.dumps({"verdict": "hold"}))
    refused = fleet.make("resume", extra_env={"DEPLOY_ID": other.name})
    assert refused.returncode != 0, refused.stdout[-4000:]
    printed = " ".join(refused.stdout.split())  # Ansible's output folds long messages
    assert f"resume refused: canary edge-2 no longer runs v2-slow of deploy {other.name} (it runs v2)" in printed, \
        refused.stdout[-4000:]
    assert fleet_versions(fleet) == {"edge-1": "v1", "edge-2": "v2", "edge-3": "v1"}

    # The held deploy resumed with APPROVE=1: a fresh SLI gate on the canary, then the wait for make approve.
    run = Deploy(fleet, None, "resume", DEPLOY_ID=held_id, APPROVE="1", SLI_WINDOW="9")
    deploys.append(run)
    record = run.wait_awaiting()
    deploy_id = run.deploy_id
    assert record["canary"] == "edge-2" and record["on_timeout"] == "abort"
    # While it waits the peers stay where they were, and the watcher goes on judging the canary.
    samples = []
    for _ in range(5):
        samples.append(fleet_versions(fleet))
        time.sleep(1)
    assert all(s == {"edge-1": "v1", "edge-2": "v2", "edge-3": "v1"} for s in samples), samples
    # make status names the deploy holding the lock beside the mixed versions it is in the middle of.
    status = fleet.make("status", extra_env={"JSON": ""})
    assert status.returncode != 0 and f"IN PROGRESS: deploy {deploy_id} by " in status.stdout, status.stdout[-3000:]
    assert "mixed versions" in status.stdout, status.stdout[-3000:]
    wait_for(
        lambda: '"phase": "awaiting_approval"' in (run.run_dir / "decisions.jsonl").read_text(),
        30,
        "a probe while awaiting approval",
    )

    approved = decide(fleet, "approve", deploy_id)
    assert approved.returncode == 0 and f"deploy {deploy_id} approved by alice" in approved.stdout, approved
    again = decide(fleet, "approve", deploy_id)
    assert again.returncode == 0 and "already approved by alice" in again.stdout, again
    out = run.finish()
    assert run.proc.returncode == 0, out[-4000:]
    assert f"resumes held deploy {held_id}" in out and "SLI verdict: PROMOTE" in out
    assert "Approval: approved by alice (make approve) at " in out, out[-4000:]
    assert fleet_versions(fleet) == {"edge-1": "v2", "edge-2": "v2", "edge-3": "v2"}
    assert fleet.node_version("edge-2").get("pid") == pid_before  # not pushed (or restarted) again
    assert json.loads((run.run_dir / "deploy.json").read_text())["resumed_from"] == held_id
    assert "is held" not in fleet.make("status", extra_env={"JSON": ""}).stdout  # decided: resumed to the end
    # Progress while waiting: who to ask, the exact commands.
    assert f"make approve DEPLOY_ID={deploy_id}" in out and f"make abort DEPLOY_ID={deploy_id}" in out
    assert "ask the release owner or the edge on-call" in out
    # Too late to abort: said so, in one line, nothing changed.
    late = decide(fleet, "abort", deploy_id)
    assert late.returncode != 0 and "is not waiting for approval" in said(late), late
    assert (said(late).strip().count("\n"), fleet_versions(fleet)["edge-2"]) == (0, "v2")
    # The events, each through Alertmanager: awaiting, approved, then one wave done per peer batch.
    for event, count in (("awaiting_approval", 1), ("approved", 1), ("wave_done", 2)):
        wait_for(lambda e=event, c=count: len(webhook.notifications(deploy_id, e)) >= c, 30, f"{count} {event}")
    [awaiting] = webhook.notifications(deploy_id, "awaiting_approval")
    assert awaiting["annotations"]["reason"].startswith(f"AWAITING APPROVAL of deploy {deploy_id}, canary edge-2 (")
    assert f"make approve DEPLOY_ID={deploy_id}" in awaiting["annotations"]["reason"]
    waves = {(a["labels"]["wave"], a["annotations"]["reason"]) for a in webhook.notifications(deploy_id, "wave_done")}
    assert waves == {("1/2", "wave 1/2 done: edge-1 on v2"), ("2/2", "wave 2/2 done: edge-3 on v2")}

    # Only a held deploy resumes: the promoted one is refused, in one line.
    again = fleet.make("resume", extra_env={"DEPLOY_ID": deploy_id})
    assert again.returncode != 0 and "was not held (its SLI verdict: promote)" in said(again), again
    assert said(again).strip().count("\n") == 0
