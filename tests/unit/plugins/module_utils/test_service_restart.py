"""service_restart: the commands of an edge service restart and how their answers are read."""

from __future__ import annotations

import pytest
from ansible_collections.edge.canary.plugins.module_utils.service_restart import restart_steps, step_failed


def test_supervisor_restarts_in_one_supervisorctl_run() -> None:
    assert restart_steps("supervisor", "edge-2", "/lab/supervisord.conf") == [
        ["supervisorctl", "-c", "/lab/supervisord.conf", "restart", "edge-2"]]


def test_systemd_resets_the_failed_state_before_the_restart() -> None:
    assert restart_steps("systemd", "edge", "/unused") == [
        ["systemctl", "reset-failed", "edge.service"], ["systemctl", "restart", "edge.service"]]


def test_an_unknown_manager_is_refused() -> None:
    with pytest.raises(ValueError, match="'runit' is not one of supervisor, systemd"):
        restart_steps("runit", "edge", "")


@pytest.mark.parametrize(("manager", "rc", "stdout", "failed"), [
    ("supervisor", 0, "edge-2: stopped\nedge-2: started\n", False),
    # A stop of a FATAL process fails, the start that follows puts it back: only the start counts.
    ("supervisor", 0, "edge-2: ERROR (not running)\nedge-2: started\n", False),
    ("supervisor", 1, "edge-2: ERROR (abnormal termination)\nedge-2: started\n", False),
    ("supervisor", 7, "edge-2: stopped\nedge-2: ERROR (spawn error)\n", True),
    ("supervisor", 0, "edge-2: stopped\nedge-2: ERROR (spawn error)\n", True),  # supervisorctl 3 answers 0 on this
    ("supervisor", 1, "edge-2: ERROR (no such process)\nedge-2: ERROR (no such process)\n", True),
    ("supervisor", 0, "", True),
    ("supervisor", 2, "unix:///lab/supervisor.sock no such file\n", True),
    ("systemd", 0, "", False),
    ("systemd", 1, "", True),
])
def test_a_step_fails_on_supervisors_last_line_or_systemds_exit_status(manager: str, rc: int, stdout: str,
                                                                        failed: bool) -> None:
    assert step_failed(manager, rc, stdout) is failed
