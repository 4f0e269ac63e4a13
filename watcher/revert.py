"""Revert actions: the rollback playbook through ansible-runner, a command, or none (shadow); and
the fast path in front of them (FastPathRevert: drain the canary on every load balancer first).

Each returns a RevertOutcome instead of raising: a failed revert is a verdict (exit 3), and
the on-call needs its detail in the decision log. The rollback play is idempotent, so a failed
run is tried again with a backoff while its time limit lasts. Its ansible-playbook runs under
watcher.owned: killed with the watcher, never left beside the deploy's own revert.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from watcher import drain as fastpath
from watcher import owned
from watcher.settings import Settings

_TAIL = 2000
# Backoff between two runs of a failed rollback play: first pause, growth, longest pause.
RETRY_PAUSE, RETRY_GROWTH, RETRY_MAX_PAUSE = 2.0, 2.0, 30.0


@dataclass(frozen=True)
class RevertOutcome:
    action: str  # ansible | command | none
    ok: bool
    detail: str
    shadow: bool = False
    rc: int | None = None
    seconds: float = 0.0
    output_tail: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)


class Reverter(Protocol):
    action: str

    def describe(self) -> str: ...

    def revert(self, reason: str) -> RevertOutcome: ...


def _tail(text: str) -> str:
    return text[-_TAIL:]


class CommandRevert:
    """Run an argv (no shell) with a time limit; the canary node is in EDGE_CANARY_NODE."""

    action = "command"

    def __init__(self, argv: Sequence[str], node: str | None, timeout: float) -> None:
        self.argv = list(argv)
        self.node = node
        self.timeout = timeout

    def describe(self) -> str:
        command = f"the command `{shlex.join(self.argv)}`"
        return f"{command} with EDGE_CANARY_NODE={self.node}" if self.node else command  # a rollout has no node

    def revert(self, reason: str) -> RevertOutcome:
        env = {**os.environ, "EDGE_CANARY_NODE": self.node or "", "EDGE_CANARY_REASON": reason}
        started = time.monotonic()
        try:
            done = subprocess.run(
                self.argv,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=self.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout if isinstance(exc.stdout, str) else ""
            return RevertOutcome(
                self.action,
                False,
                f"revert command timed out after {self.timeout:g}s",
                seconds=round(time.monotonic() - started, 3),
                output_tail=_tail(out),
            )
        except OSError as exc:
            return RevertOutcome(
                self.action,
                False,
                f"revert command could not start: {exc.strerror or exc}",
                seconds=round(time.monotonic() - started, 3),
            )
        ok = done.returncode == 0
        return RevertOutcome(
            self.action,
            ok,
            "revert command succeeded" if ok else f"revert command exited {done.returncode}",
            rc=done.returncode,
            seconds=round(time.monotonic() - started, 3),
            output_tail=_tail(done.stdout + done.stderr),
        )


def _path_with_our_ansible() -> str:
    """PATH with this interpreter's bin dir first, so ansible-runner finds the ansible-playbook
    installed beside it (a virtualenv's bin is usually not on PATH when the role starts us)."""
    current = os.environ.get("PATH", os.defpath)
    ours = str(Path(sys.executable).parent)
    if not (Path(ours) / "ansible-playbook").exists():
        return current
    return os.pathsep.join([ours, *(p for p in current.split(os.pathsep) if p != ours)])


def _project_dir(playbook: Path) -> Path:
    """The nearest directory above the playbook holding ansible.cfg (Ansible reads it from cwd)."""
    for parent in playbook.resolve().parents:
        if (parent / "ansible.cfg").is_file():
            return parent
    return playbook.resolve().parent


class AnsibleRevert:
    """The rollback playbook through ansible-runner, limited to the canary node."""

    action = "ansible"

    def __init__(
        self,
        playbook: str,
        node: str,
        inventory: str | None,
        extravars: Mapping[str, Any],
        timeout: float,
        runner: Callable[..., Any] | None = None,
        attempts: int = 3,
        command: Sequence[str] = ("ansible-playbook",),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.playbook = Path(playbook)
        self.node = node
        self.inventory = inventory
        self.extravars = dict(extravars)
        self.timeout = timeout
        self._runner = runner
        self.attempts = max(1, attempts)
        self.command = list(command)  # what watcher.owned runs; a stand-in in tests
        self._sleep = sleep

    def describe(self) -> str:
        inv = f" with inventory {self.inventory}" if self.inventory else ""
        return f"the rollback playbook {self.playbook}{inv} limited to {self.node} (ansible-runner)"

    def run_kwargs(self, private_data_dir: str, timeout: float | None = None) -> dict[str, Any]:
        playbook = str(self.playbook.resolve())
        kwargs: dict[str, Any] = {
            "private_data_dir": private_data_dir,
            "project_dir": str(_project_dir(self.playbook)),
            "playbook": playbook,
            # ansible-playbook runs under watcher.owned, the playbook its first argument.
            "binary": owned.executable(Path(private_data_dir), self.command),
            "cmdline": shlex.quote(playbook),
            "limit": self.node,
            "extravars": dict(self.extravars),
            "quiet": True,
            "timeout": max(1, round(self.timeout if timeout is None else timeout)),
            "suppress_env_files": True,  # keep extravars off the disk
            "envvars": {"PATH": _path_with_our_ansible(), owned.OWNER_ENV: str(os.getpid())},
        }
        if self.inventory is not None:
            kwargs["inventory"] = str(Path(self.inventory).resolve())
        return kwargs

    def revert(self, reason: str) -> RevertOutcome:
        """Run the rollback play; a failed run again after a backoff, within the time limit."""
        started = time.monotonic()
        pause = RETRY_PAUSE
        failures: list[str] = []
        for attempt in range(1, self.attempts + 1):
            left = self.timeout - (time.monotonic() - started)
            outcome = self._attempt(max(1.0, left))
            if outcome.ok or attempt == self.attempts:
                break
            left = self.timeout - (time.monotonic() - started)
            if left <= pause + 1:
                break
            failures.append(outcome.detail)
            print(f"revert attempt {attempt} failed ({outcome.detail}); again in {pause:g}s", flush=True)
            self._sleep(pause)
            pause = min(pause * RETRY_GROWTH, RETRY_MAX_PAUSE)
        return replace(
            outcome,
            seconds=round(time.monotonic() - started, 3),
            extra={**outcome.extra, "attempts": len(failures) + 1, "earlier_failures": failures},
        )

    def _attempt(self, timeout: float) -> RevertOutcome:
        runner = self._runner
        if runner is None:
            import ansible_runner  # deferred: only the ansible action needs it

            runner = ansible_runner.run
            forget_outer_runner_job(os.environ)
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="edge-canary-revert-") as tmp:
            kwargs = self.run_kwargs(tmp, timeout)
            try:
                result = runner(**kwargs)
            except Exception as exc:  # ansible-runner raises for bad setups; still a verdict
                return RevertOutcome(
                    self.action,
                    False,
                    f"ansible-runner failed to start the rollback: {type(exc).__name__}: {exc}",
                    seconds=round(time.monotonic() - started, 3),
                )
            status, rc = getattr(result, "status", "unknown"), getattr(result, "rc", None)
            try:
                output = result.stdout.read()
            except Exception:  # the stdout artifact may be missing when the run never started
                output = ""
        ok = status == "successful" and rc == 0
        detail = (
            f"rollback playbook succeeded on {self.node}"
            if ok
            else f"rollback playbook on {self.node} ended {status} (rc {rc})"
        )
        return RevertOutcome(
            self.action,
            ok,
            detail,
            rc=rc,
            seconds=round(time.monotonic() - started, 3),
            output_tail=_tail(output),
            extra={"status": status},
        )


# What an outer ansible-runner job (the deploy's driver, AWX) sets for its own display: inherited by the
# detached watcher, it would make the revert's ansible-runner load awx_display as its own "original"
# callback, and ansible-playbook dies at start (rc 250).
OUTER_RUNNER_ENV = ("ANSIBLE_STDOUT_CALLBACK", "ANSIBLE_CALLBACK_PLUGINS", "ORIGINAL_STDOUT_CALLBACK",
                    "AWX_ISOLATED_DATA_DIR", "RUNNER_OMIT_EVENTS", "RUNNER_ONLY_FAILED_EVENTS")


def forget_outer_runner_job(env: MutableMapping[str, str]) -> None:
    """Drop an outer ansible-runner job's display settings (only when they are its: awx_display)."""
    if env.get("ANSIBLE_STDOUT_CALLBACK") != "awx_display":
        return
    original = env.get("ORIGINAL_STDOUT_CALLBACK", "")
    for name in OUTER_RUNNER_ENV:
        env.pop(name, None)
    if original and original != "awx_display":
        env["ANSIBLE_STDOUT_CALLBACK"] = original


class FastPathRevert:
    """Drain the canary on every load balancer from this process, then the revert behind it.

    A drain that fails (after its retries) is logged and the revert still runs: the rollback play
    drains again and restores `.previous`."""

    def __init__(
        self,
        plan: fastpath.Plan,
        inner: Reverter,
        drainer: Callable[[fastpath.Plan, Callable[[str], None]], fastpath.DrainOutcome] = fastpath.drain,
    ) -> None:
        self.plan = plan
        self.inner = inner
        self.action = inner.action
        self._drain = drainer

    def describe(self) -> str:
        lbs = ", ".join(t.lb for t in self.plan.targets)
        return f"a drain of {self.plan.targets[0].server} on {lbs} (admin socket), then {self.inner.describe()}"

    def revert(self, reason: str) -> RevertOutcome:
        print(f"fast path: draining {self.plan.targets[0].server} on every load balancer", flush=True)
        try:
            drained = self._drain(self.plan, lambda line: print(line, flush=True))
        except Exception as exc:  # the restore must run whatever happened here
            drained = fastpath.DrainOutcome(False, f"fast-path drain crashed: {type(exc).__name__}: {exc}", 0.0, [])
        print(("fast path: " if drained.ok else "FAST PATH FAILED: ") + drained.detail, flush=True)
        outcome = self.inner.revert(reason)
        return replace(outcome, extra={**outcome.extra, "drain": drained.record()})


class ShadowRevert:
    """Shadow mode: record what would have been done, touch nothing."""

    action = "none"

    def __init__(self, would: Reverter | None, node: str | None) -> None:
        self.would = would
        self.node = node

    def _would(self) -> str:
        if self.would is not None:
            return f"run {self.would.describe()}"
        return f"reverted {self.node or 'the canary'}"

    def describe(self) -> str:
        return f"nothing (shadow mode: it would have {self._would()})"

    def revert(self, reason: str) -> RevertOutcome:
        return RevertOutcome(
            self.action,
            True,
            f"shadow mode: would have {self._would()}; nothing was changed",
            shadow=True,
        )


def build_reverter(settings: Settings) -> Reverter:
    """The revert action; with a drain plan (not in shadow mode) the fast path in front of it."""
    reverter = _build_action(settings)
    plan = fastpath.parse_plan(settings.drain) if settings.drain else None
    if plan is None or isinstance(reverter, ShadowRevert):
        return reverter
    return FastPathRevert(plan, reverter)


def _build_action(settings: Settings) -> Reverter:
    command = (
        CommandRevert(settings.revert_command, settings.canary_node, settings.revert_timeout)
        if settings.revert_command
        else None
    )
    if settings.revert_action == "command":
        assert command is not None  # config validation guarantees it
        return command
    if settings.revert_action == "ansible":
        assert settings.canary_node is not None
        return AnsibleRevert(
            settings.playbook,
            settings.canary_node,
            settings.inventory,
            settings.revert_extravars,
            settings.revert_timeout,
        )
    would: Reverter | None = command
    if would is None and settings.canary_node and Path(settings.playbook).is_file():
        would = AnsibleRevert(
            settings.playbook,
            settings.canary_node,
            settings.inventory,
            settings.revert_extravars,
            settings.revert_timeout,
        )
    return ShadowRevert(would, settings.canary_node)
