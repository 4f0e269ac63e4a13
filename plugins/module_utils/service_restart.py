"""Restarting the edge service on its node, under supervisor (the lab) or systemd (production): the
commands and how their answers are read. Standard library only.

Under supervisor, stop then start rather than restart: its restart gives up on a process that is not
running (FATAL after a crash-on-start release), which is exactly the state a revert must recover; a stop
of a process that is not running answers ERROR (not running), which the start then fixes, so only the
start's answer counts. Under systemd, reset-failed first: a crash-looping release may have brought the
unit to its start limit (Restart=on-failure), and systemd would then refuse the very restart that puts
the known-good release back.
"""

from __future__ import annotations

from dataclasses import dataclass

MANAGERS = ("supervisor", "systemd")


@dataclass(frozen=True)
class Step:
    argv: list[str]
    counts: bool  # its failure fails the restart


def restart_steps(manager: str, name: str, supervisor_conf: str) -> list[Step]:
    """The commands of one restart, in order (the tool's name first: the caller finds its path)."""
    if manager == "supervisor":
        base = ["supervisorctl", "-c", supervisor_conf]
        return [Step([*base, "stop", name], counts=False), Step([*base, "start", name], counts=True)]
    if manager == "systemd":
        unit = f"{name}.service"
        return [Step(["systemctl", "reset-failed", unit], counts=True),
                Step(["systemctl", "restart", unit], counts=True)]
    raise ValueError(f"manager {manager!r} is not one of {', '.join(MANAGERS)}")


def step_failed(manager: str, rc: int, stdout: str) -> bool:
    """Whether a counting step failed: a non-zero exit, or (supervisorctl answers 0 on some failures) an
    ERROR in supervisor's last line."""
    if rc != 0:
        return True
    if manager == "supervisor":
        lines = stdout.strip().splitlines()
        return not lines or "ERROR" in lines[-1]
    return False
