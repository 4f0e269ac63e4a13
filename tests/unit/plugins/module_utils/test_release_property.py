"""Property test of the release state machine (issue 15), on the module_utils layer with a real temp dir.

Any sequence of push / config change / failed health / probation / promote / rollback, each possibly
cut at any I/O point (a kill right after any step, or a full disk at any rename), keeps the rule:
`.previous` is the last release that served healthily whenever the node runs anything else, it never
holds a release that never served, and a rollback lands on it. After every cut, a re-run of the same
step or a rollback brings the node back to a state the rule holds for.
"""

from __future__ import annotations

import errno
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any
from unittest import mock

from ansible_collections.edge.canary.plugins.module_utils import release_actions, release_status
from ansible_collections.edge.canary.plugins.module_utils.release_files import read_record
from ansible_collections.edge.canary.plugins.module_utils.release_plan import ReleaseError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ARTIFACTS = [f"#!/bin/sh\necho v{n}\n".encode() for n in range(4)]
SHAS = [hashlib.sha256(a).hexdigest() for a in ARTIFACTS]
REAL_REPLACE = os.replace
# Every write is fsynced: on a RAM-backed folder that costs nothing, so the examples stay quick.
FAST_TMP = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


class Killed(BaseException):
    """The module process died right after a step (what the SIGKILL test hook does)."""


@contextmanager
def cut(fault: tuple[str, int] | None) -> Iterator[None]:
    """Run one module call, killed after its n-th step or with a full disk at its n-th rename."""
    if fault is None:
        yield
        return
    kind, nth = fault
    calls = {"n": 0}

    def hit() -> bool:
        calls["n"] += 1
        return calls["n"] == nth

    def checkpoint(_step: str) -> None:
        if kind == "kill" and hit():
            raise Killed

    def replace(src: Any, dst: Any) -> None:
        if kind == "enospc" and hit():
            raise OSError(errno.ENOSPC, "No space left on device")
        REAL_REPLACE(src, dst)

    with mock.patch.object(release_actions, "checkpoint", checkpoint), mock.patch("os.replace", replace):
        yield


class World:
    """One node in a temp dir, and what the test knows happened to it."""

    def __init__(self, root: Path) -> None:
        self.install = root / "opt"
        self.staging = root / "staging"
        self.staging.mkdir()
        self.params: dict[str, Any] = {"install_dir": str(self.install), "binary_name": "edge", "record_path": None,
                       "config_path": str(root / "etc" / "edge.conf"), "secret_config_keys": []}
        self.paths = release_actions.Paths.from_params(self.params)
        self.ever_good: set[str] = set()
        self.last_good: str | None = None

    def call(self, fn: Callable[..., dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return fn({**self.params, **extra}, self.paths, False)

    def push(self, n: int, pct: int | None) -> None:
        staged = self.staging / f"v{n}"
        staged.write_bytes(ARTIFACTS[n])
        self.call(release_actions.push, staged=str(staged), sha256=SHAS[n], version=f"v{n}",
                  config={} if pct is None else {"rollout_pct": pct}, deploy_id=None)

    def serve(self, good: bool) -> None:
        record = read_record(self.paths.record)
        if record.get("pending") or record.get("pending_rollback"):
            return  # the play never gets to its health check with a step unfinished
        self.call(release_status.serving, serving_sha256=None, good=good)
        sha = self.binary()
        if good and sha is not None:
            self.last_good = sha
            self.ever_good.add(sha)

    def rollback(self) -> None:
        """make rollback: revert, restart, health passes, serving recorded."""
        self.call(release_actions.revert, rollback_binary=None, sha256=None, version=None, deploy_id=None)
        self.serve(True)

    def configure(self, pct: int) -> None:
        self.call(release_actions.configure, config={"rollout_pct": pct}, deploy_id=None)

    def binary(self) -> str | None:
        return release_actions.file_sha256(self.paths.binary)

    def previous(self) -> str | None:
        return release_actions.file_sha256(self.paths.previous)

    def record(self) -> dict[str, Any]:
        return read_record(self.paths.record)

    def rollback_target(self) -> str | None:
        """Where a rollback must land: an unfinished rollback's target; the last-known-good when the
        node runs anything else (or a push replacing it is unfinished); else .previous, the one before."""
        record = self.record()
        if record.get("pending_rollback"):
            return str(record["pending_rollback"]["target_sha256"])
        if self.rolled_back():
            return self.binary()  # a finished rollback, its health check not run yet: a no-op
        pending = record.get("pending") or {}
        if pending.get("from_good") or self.binary() != self.last_good:
            return self.last_good  # a push cut short while replacing it holds it as binary or .previous
        return self.previous()  # a config-only change, finished or not, is no new release

    def rolled_back(self) -> bool:
        """A rollback finished (current equals .previous, both served before), health not yet checked."""
        record = self.record()
        return (record.get("action") == "rollback" and not record.get("pending")
                and not record.get("pending_rollback") and self.binary() == self.previous())

    def check_rule(self) -> None:
        previous = self.previous()
        if previous is not None:
            assert previous in self.ever_good, "a release that never served is .previous"
        if self.record().get("pending_rollback") or self.rolled_back():
            return  # a rollback cut short, or not yet health-checked: its re-run finishes it
        if self.last_good is not None and self.binary() != self.last_good:
            assert previous == self.last_good, ".previous is not the last release that served healthily"


OPS = st.one_of(
    st.tuples(st.just("push"), st.integers(0, 3), st.one_of(st.none(), st.integers(0, 100))),
    st.tuples(st.just("configure"), st.integers(0, 100), st.none()),
    st.tuples(st.just("probation"), st.none(), st.none()),  # canary serves, SLI gate not passed
    st.tuples(st.just("failed-health"), st.none(), st.none()),  # nothing recorded
    st.tuples(st.just("promote"), st.none(), st.none()),
    st.tuples(st.just("rollback"), st.none(), st.none()),
)
FAULTS = st.one_of(st.none(), st.tuples(st.sampled_from(["kill", "enospc"]), st.integers(1, 8)))
RECOVERY = st.sampled_from(["rerun", "rollback"])


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(st.tuples(OPS, FAULTS, RECOVERY), min_size=1, max_size=10))
def test_previous_is_always_the_last_release_that_served_healthily(steps: list[Any]) -> None:
    with tempfile.TemporaryDirectory(dir=FAST_TMP) as tmp:
        world = World(Path(tmp))
        world.push(0, 0)  # a first deploy, then a second one, each served healthily
        world.serve(True)
        world.push(1, 0)
        world.serve(True)
        for (op, a, b), fault, recovery in steps:
            run = step(world, op, a, b)
            try:
                with cut(fault):
                    run()
            except (Killed, OSError):
                world.check_rule()
                if recovery == "rerun":
                    run()
                else:
                    land_on_lkg(world)
            except ReleaseError as exc:
                assert "interrupted" in str(exc), exc  # config change or push during an unfinished step
                land_on_lkg(world)
            world.check_rule()
        land_on_lkg(world)


def step(world: World, op: str, a: Any, b: Any) -> Callable[[], None]:
    steps: dict[str, Callable[[], None]] = {
        "push": partial(world.push, a, b),
        "configure": partial(world.configure, a),
        "probation": partial(world.serve, False),
        "failed-health": lambda: None,
        "promote": partial(world.serve, True),
        "rollback": world.rollback,
    }
    return steps[op]


def land_on_lkg(world: World) -> None:
    """A rollback lands on the last-known-good (or, from a node on it, on .previous before it)."""
    expected = world.rollback_target()
    world.rollback()
    if expected is not None:
        assert world.binary() == expected
    assert world.previous() == world.binary()
    world.check_rule()
