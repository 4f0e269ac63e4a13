"""service_restart: the commands of an edge service restart and how their answers are read."""

from __future__ import annotations

import pytest
from ansible_collections.edge.canary.plugins.module_utils.service_restart import restart_steps, step_failed


def test_supervisor_stops_then_starts_and_only_the_start_counts() -> None:
    steps = restart_steps("supervisor", "edge-2", "/lab/supervisord.conf")
    assert [(step.argv, step.counts) for step in steps] == [
        (["supervisorctl", "-c", "/lab/supervisord.conf", "stop", "edge-2"], False),
        (["supervisorctl", "-c", "/lab/supervisord.conf", "start", "edge-2"], True),
    ]


def test_systemd_resets_the_failed_state_before_the_restart() -> None:
    steps = restart_steps("systemd", "edge", "/unused")
    assert [(step.argv, step.counts) for step in steps] == [
        (["systemctl", "reset-failed", "edge.service"], True), (["systemctl", "restart", "edge.service"], True)]


def test_an_unknown_manager_is_refused() -> None:
    with pytest.raises(ValueError, match="'runit' is not one of supervisor, systemd"):
        restart_steps("runit", "edge", "")


@pytest.mark.parametrize(("manager", "rc", "stdout", "failed"), [
    ("supervisor", 0, "edge-2: started\n", False),
    ("supervisor", 0, "edge-2: ERROR (spawn error)\n", True),  # supervisorctl 3 answers 0 on this
    ("supervisor", 0, "", True),
    ("supervisor", 7, "edge-2: started\n", True),
    ("systemd", 0, "", False),
    ("systemd", 1, "", True),
])
def test_a_step_fails_on_its_exit_status_or_supervisors_error_line(manager: str, rc: int, stdout: str,
                                                                    failed: bool) -> None:
    assert step_failed(manager, rc, stdout) is failed
