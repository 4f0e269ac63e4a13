"""Revert actions: the rollback playbook through ansible-runner, a command, or none (shadow).

Each returns a RevertOutcome instead of raising: a failed revert is a verdict (exit 3), and
the on-call needs its detail in the decision log.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from watcher.settings import Settings

_TAIL = 2000


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
        return f"the command `{shlex.join(self.argv)}` with EDGE_CANARY_NODE={self.node or ''}"

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
    ) -> None:
        self.playbook = Path(playbook)
        self.node = node
        self.inventory = inventory
        self.extravars = dict(extravars)
        self.timeout = timeout
        self._runner = runner

    def describe(self) -> str:
        inv = f" with inventory {self.inventory}" if self.inventory else ""
        return f"the rollback playbook {self.playbook}{inv} limited to {self.node} (ansible-runner)"

    def run_kwargs(self, private_data_dir: str) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "private_data_dir": private_data_dir,
            "project_dir": str(_project_dir(self.playbook)),
            "playbook": str(self.playbook.resolve()),
            "limit": self.node,
            "extravars": dict(self.extravars),
            "quiet": True,
            "timeout": max(1, int(self.timeout)),
            "suppress_env_files": True,  # keep extravars off the disk
            "envvars": {"PATH": _path_with_our_ansible()},
        }
        if self.inventory is not None:
            kwargs["inventory"] = str(Path(self.inventory).resolve())
        return kwargs

    def revert(self, reason: str) -> RevertOutcome:
        runner = self._runner
        if runner is None:
            import ansible_runner  # deferred: only the ansible action needs it

            runner = ansible_runner.run
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="edge-canary-revert-") as tmp:
            kwargs = self.run_kwargs(tmp)
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
