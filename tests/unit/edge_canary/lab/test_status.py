"""lab-status's verdict and what it prints when Prometheus cannot say which targets are up."""

from __future__ import annotations

from typing import Any

from edge_canary.lab.status import healthy, render


def status(targets: dict[str, str], problem: str = "") -> dict[str, Any]:
    return {
        "lab_dir": "/lab", "mode": "hosts", "supervisord": "running",
        "haproxy": [{"lb": "lb-1", "pop": "pop1", "process": "RUNNING", "frontend": "127.0.0.1:1",
                     "admin_socket": "answers"}],
        "prometheus": {"process": "RUNNING", "url": "http://127.0.0.1:2", "targets": targets,
                       "targets_problem": problem},
        "alertmanager": {"process": "RUNNING", "url": "http://127.0.0.1:5"},
        "traffic": {"process": "RUNNING", "rps": 50},
        "nodes": [{"node": "edge-1", "address": "10.0.0.2", "port": 8080, "process": "RUNNING", "version": "v1",
                   "health": 200, "haproxy": "UP", "sessions": 0}],
    }


def test_unreadable_targets_are_not_up_and_the_status_says_why() -> None:
    up = status({"edge-1": "up", "haproxy": "up"})
    assert healthy(up) and "targets edge-1=up, haproxy=up" in render(up)
    blind = status({}, "unreadable (timed out)")
    assert not healthy(blind)
    assert "http://127.0.0.1:2, targets unreadable (timed out)" in render(blind)
    assert not healthy(status({"edge-1": "up", "haproxy": "unknown"}))
