"""Restarting the edge service on its node, under supervisor (the lab) or systemd (production): the
commands and how their answers are read. Standard library only.

Under supervisor, one `supervisorctl restart`: it stops, then starts, in one process. A stop of a process
that is not running (FATAL after a crash-on-start release, exactly the state a revert must recover) answers
ERROR (not running) and the start still runs, so only the start's answer, the last line, counts: its exit
status also carries a failed stop's, and supervisorctl 3 answers 0 even on a failed start. Under systemd,
reset-failed first: a crash-looping release may have brought the unit to its start limit
(Restart=on-failure), and systemd would then refuse the very restart that puts the known-good release back.
"""

from __future__ import annotations

MANAGERS = ("supervisor", "systemd")


def restart_steps(manager: str, name: str, supervisor_conf: str) -> list[list[str]]:
    """The commands of one restart, in order, each failing it (the tool's name first: the caller finds its
    path)."""
    if manager == "supervisor":
        return [["supervisorctl", "-c", supervisor_conf, "restart", name]]
    if manager == "systemd":
        unit = f"{name}.service"
        return [["systemctl", "reset-failed", unit], ["systemctl", "restart", unit]]
    raise ValueError(f"manager {manager!r} is not one of {', '.join(MANAGERS)}")


def step_failed(manager: str, rc: int, stdout: str) -> bool:
    """Whether a step failed: under supervisor, a last line (the start's answer) other than
    "<name>: started"; under systemd, a non-zero exit."""
    if manager == "supervisor":
        lines = stdout.strip().splitlines()
        return not lines or not lines[-1].endswith(": started")
    return rc != 0
