"""haproxy_server with `servers`: several servers of a backend in one run (issue 16's batched rollback), run by
real Ansible against a real HAProxy. States are read back through the admin socket by the fixture."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from tests.helpers.haproxy import Haproxy
from tests.integration.plugins.test_haproxy_server import FDRAIN, FMAINT, failed, lb, ok, run_module

__all__ = ["lb"]  # the fixture, used by name


def servers_args(lb: Haproxy, *names: str, **extra: Any) -> dict[str, Any]:
    return {"socket": str(lb.admin_socket), "backend": "edge", "servers": [{"name": n} for n in names], **extra}


def test_drain_several_servers_in_one_run_and_ready_them_back(lb: Haproxy, tmp_path: Path) -> None:
    drained = ok(run_module(tmp_path, **servers_args(lb, "n1", "n2", state="drain", wait=True)))
    assert lb.server_state("n1").admin_bits & FDRAIN and lb.server_state("n2").admin_bits & FDRAIN
    assert lb.server_state("down1").admin_bits == 0, "a server not named was touched"
    assert drained["changed"] is True and drained["failed_servers"] == {}
    assert set(drained["servers"]) == {"n1", "n2"}
    assert drained["commands"] == ["set server edge/n1 state drain", "set server edge/n2 state drain"]
    assert all(one["after"]["admin_state"] == "drain" and one["sessions"] == 0 for one in drained["servers"].values())

    health = {name: lb.nodes[name].health_url for name in ("n1", "n2")}
    readied = ok(run_module(tmp_path, socket=str(lb.admin_socket), backend="edge", state="ready", wait_up=True,
                            servers=[{"name": name, "health_url": url} for name, url in health.items()]))
    assert lb.server_state("n1").admin_bits == 0 and lb.server_state("n2").admin_bits == 0
    assert all(one["after"]["operational_state"] == "up" for one in readied["servers"].values()), readied

    again = ok(run_module(tmp_path, **servers_args(lb, "n1", "n2", state="ready")))
    assert again["changed"] is False and again["commands"] == []


def test_ready_puts_back_the_healthy_servers_and_names_the_others(lb: Haproxy, tmp_path: Path) -> None:
    """One node failing its health check keeps only that node out of rotation: the run fails naming it, the
    other is put back."""
    for name in ("n1", "n2"):
        lb.cli(f"set server edge/{name} state drain")
    lb.nodes["n2"].health_status = 503
    run = run_module(tmp_path, socket=str(lb.admin_socket), backend="edge", state="ready", health_retries=0,
                     servers=[{"name": "n1", "health_url": lb.nodes["n1"].health_url},
                              {"name": "n2", "health_url": lb.nodes["n2"].health_url}])
    msg = failed(run)
    # Only n2 named (the message holds paths and URLs, which may contain "n1": look for the server's name).
    assert "n2 failed its health check" in msg and "n1 failed" not in msg and "edge/n1" not in msg, msg
    assert list(run.result["failed_servers"]) == ["n2"]
    assert lb.server_state("n1").admin_bits == 0, "the healthy server must go back in rotation"
    assert lb.server_state("n2").admin_bits & FDRAIN, "the unhealthy server must stay out of rotation"
    assert run.result["servers"]["n2"]["commands"] == []


def test_drain_waits_for_all_the_servers_at_once_and_names_the_busy_one(lb: Haproxy, tmp_path: Path) -> None:
    with lb.holding_session("n1"):
        run = run_module(tmp_path, **servers_args(lb, "n1", "n2", state="drain", wait=True, wait_timeout=3))
        assert lb.server_state("n1").admin_bits & FDRAIN and lb.server_state("n2").admin_bits & FDRAIN
    msg = failed(run)
    assert "edge/n1" in msg and "1 session(s)" in msg and "edge/n2" not in msg, msg
    assert list(run.result["failed_servers"]) == ["n1"]
    # The module's own clock: the run's wall time also holds Ansible's start-up, which a busy machine stretches.
    assert 3 <= run.result["waited"] < 3 * 2, "one wait for both, not one after the other"


def test_ramps_run_in_step(lb: Haproxy, tmp_path: Path) -> None:
    """Two servers put back with a ramp climb together: the run takes one ramp, not two."""
    for name in ("n1", "n2"):
        lb.cli(f"set server edge/{name} state drain")
    seen: list[tuple[int, int]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            seen.append((lb.server_state("n1").weight, lb.server_state("n2").weight))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        result = ok(run_module(tmp_path, **servers_args(lb, "n1", "n2", state="ready", weight=100, ramp=2,
                                                        wait_up=True)))
    finally:
        done.set()
        sampler.join(5)
    assert {one["ramp"]["weights"][-1] for one in result["servers"].values()} == {100}
    assert all(one["ramp"]["seconds"] < 4 for one in result["servers"].values()), result["servers"]
    climbing = [pair for pair in seen if 10 < pair[0] < 100]
    assert climbing and any(10 < second < 100 for _first, second in climbing), seen  # both mid-ramp at once


def test_check_mode_sends_nothing_and_bad_arguments_are_refused(lb: Haproxy, tmp_path: Path) -> None:
    would = ok(run_module(tmp_path, check=True, **servers_args(lb, "n1", "n2", state="drain")))
    assert would["changed"] is True and lb.server_state("n1").admin_bits == 0 and lb.server_state("n2").admin_bits == 0
    assert "mutually exclusive" in failed(run_module(tmp_path, **servers_args(lb, "n1", state="drain", server="n2")))
    assert "give each once" in failed(run_module(tmp_path, **servers_args(lb, "n1", "n1", state="drain")))
    assert "give at least one server" in failed(run_module(tmp_path, **servers_args(lb, state="drain")))
    assert "not found in backend" in failed(run_module(tmp_path, **servers_args(lb, "n1", "nope", state="drain")))
    assert lb.server_state("n1").admin_bits == 0, "a refused run must send nothing"


def test_keep_maint_leaves_a_server_in_maintenance_while_the_others_go_on(lb: Haproxy, tmp_path: Path) -> None:
    """An operator's maintenance outlives a rollback's drain and ready: keep_maint sends nothing for that server
    (no health check either: its node answers 503 here) and says so; the other server is drained and put back."""
    lb.cli("set server edge/n2 state maint")
    lb.nodes["n2"].health_status = 503
    drained = ok(run_module(tmp_path, **servers_args(lb, "n1", "n2", state="drain", wait=True, keep_maint=True)))
    assert drained["servers"]["n2"]["kept_in_maint"] is True and drained["servers"]["n2"]["commands"] == []
    assert drained["servers"]["n1"]["kept_in_maint"] is False
    assert lb.server_state("n2").admin_bits == FMAINT, "drain took the server out of its maintenance"
    assert lb.server_state("n1").admin_bits & FDRAIN

    readied = ok(run_module(tmp_path, socket=str(lb.admin_socket), backend="edge", state="ready", wait_up=True,
                            keep_maint=True, servers=[{"name": n, "health_url": lb.nodes[n].health_url}
                                                      for n in ("n1", "n2")]))
    assert readied["failed_servers"] == {} and readied["servers"]["n2"]["kept_in_maint"] is True
    assert "kept: someone put it in maintenance" in readied["servers"]["n2"]["msg"]
    assert lb.server_state("n2").admin_bits == FMAINT, "ready took the server out of its maintenance"
    assert lb.server_state("n1").admin_bits == 0

    plain = ok(run_module(tmp_path, **servers_args(lb, "n2", state="drain")))
    assert plain["servers"]["n2"]["kept_in_maint"] is False and lb.server_state("n2").admin_bits == FDRAIN, (
        "without keep_maint a drain must still do what it says")
