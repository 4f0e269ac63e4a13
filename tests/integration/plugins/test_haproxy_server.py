"""The haproxy_server module run by real Ansible against a real HAProxy.

Every call goes through Ansible: `ansible localhost -m haproxy_server` for single calls, a
small ansible-playbook looping over cases where several calls need no check in between (one
Ansible start-up instead of many). States are checked through the admin socket by the
fixture's own reader, not by the module.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.edge.canary.plugins.module_utils.haproxy_api import RuntimeApi
from ansible_collections.edge.canary.plugins.module_utils.haproxy_state import UnixAddress

from tests.helpers.haproxy import (
    Haproxy,
    NodeHttpServer,
    haproxy_instance,
    hung_unix_socket,
    recording_unix_socket,
)
from tests.helpers.paths import REPO

ROOT = REPO
ANSIBLE = Path(sys.executable).with_name("ansible")
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
ENV = {
    "ANSIBLE_STDOUT_CALLBACK": "default",
    "ANSIBLE_CALLBACK_RESULT_FORMAT": "json",
    "ANSIBLE_LOCALHOST_WARNING": "false",
    "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
    "ANSIBLE_NOCOLOR": "1",
    # edge.canary from this checkout (the link points back at the repository), whatever the cwd.
    "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "collections"),
}

FMAINT, FDRAIN = 0x01, 0x08


@pytest.fixture
def lb(tmp_path: Path) -> Iterator[Haproxy]:
    with haproxy_instance(tmp_path / "lb", tcp_admin=True) as instance:
        yield instance


@dataclass
class Run:
    """One module run: Ansible's exit code and status word, the module's result, the time."""

    rc: int
    status: str
    result: dict[str, Any]
    elapsed: float
    output: str

    @property
    def failed(self) -> bool:
        return self.status == "FAILED!"

    @property
    def msg(self) -> str:
        return str(self.result.get("msg", ""))


_STATUS = re.compile(r"^localhost \| (?P<status>[A-Z]+!?) => ", re.MULTILINE)


def run_module(tmp_path: Path, check: bool = False, **args: Any) -> Run:
    cmd = [
        str(ANSIBLE), "localhost", "-m", "edge.canary.haproxy_server",
        "-a", json.dumps(args), "-e", json.dumps({"ansible_python_interpreter": sys.executable}),
    ]  # fmt: skip
    if check:
        cmd.append("--check")
    start = time.monotonic()
    # cwd=tmp_path: no project ansible.cfg changes how the result is printed.
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env={**os.environ, **ENV}, cwd=tmp_path, timeout=300
    )
    elapsed = time.monotonic() - start
    output = proc.stdout + proc.stderr
    match = _STATUS.search(proc.stdout)
    assert match, f"no result line from ansible (rc {proc.returncode}):\n{output}"
    result, _ = json.JSONDecoder().raw_decode(proc.stdout, match.end())
    return Run(proc.returncode, match.group("status"), result, elapsed, output)


BATCH_PLAYBOOK = """\
- name: Run haproxy_server once per case
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Run the module for this case
      edge.canary.haproxy_server:
        socket: "{{ item.socket }}"
        backend: "{{ item.backend }}"
        server: "{{ item.server }}"
        state: "{{ item.state }}"
        weight: "{{ item.weight | default(omit) }}"
        wait: "{{ item.wait | default(omit) }}"
        wait_timeout: "{{ item.wait_timeout | default(omit) }}"
        socket_timeout: "{{ item.socket_timeout | default(omit) }}"
      check_mode: "{{ item.check_mode | default(ansible_check_mode) }}"
      loop: "{{ cases }}"
      register: batch
      ignore_errors: true
    - name: Save the results for the test
      ansible.builtin.copy:
        content: "{{ batch.results | to_json }}"
        dest: "{{ results_path }}"
        mode: "0600"
      check_mode: false
"""


def run_batch(tmp_path: Path, cases: list[dict[str, Any]], check: bool = False) -> list[Run]:
    """Run the module once per case, in order, in one ansible-playbook run."""
    work = tmp_path / f"batch-{len(list(tmp_path.glob('batch-*')))}"
    work.mkdir()
    (work / "batch.yml").write_text(BATCH_PLAYBOOK)
    results_path = work / "results.json"
    (work / "vars.json").write_text(json.dumps({"cases": cases, "results_path": str(results_path)}))
    cmd = [
        str(ANSIBLE_PLAYBOOK), "batch.yml", "-e", "@vars.json",
        "-e", json.dumps({"ansible_python_interpreter": sys.executable}),
    ]  # fmt: skip
    if check:
        cmd.append("--check")
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env={**os.environ, **ENV}, cwd=work, timeout=600
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0 and results_path.exists(), output
    results = json.loads(results_path.read_text())
    assert len(results) == len(cases), output
    return [
        Run(1 if r.get("failed") else 0, "FAILED!" if r.get("failed") else "OK", r, 0.0, output)
        for r in results
    ]


def ok(run: Run) -> dict[str, Any]:
    assert run.rc == 0 and not run.failed, run.output
    return run.result


def failed(run: Run) -> str:
    assert run.rc != 0 and run.failed, run.output
    assert "\n" not in run.msg.strip(), f"error message is not one line: {run.msg!r}"
    return run.msg


def base(lb: Haproxy, server: str = "n1", **extra: Any) -> dict[str, Any]:
    return {"socket": str(lb.admin_socket), "backend": "edge", "server": server, **extra}


def test_ready_drain_maint_ready_cycle_is_seen_through_the_socket(lb: Haproxy, tmp_path: Path):
    steps = [
        ("drain", lambda s: s.admin_bits & FDRAIN and not s.admin_bits & FMAINT),
        ("maint", lambda s: s.admin_bits & FMAINT and s.op_state == 0),
        ("ready", lambda s: s.admin_bits == 0),
    ]
    for state, holds in steps:
        result = ok(run_module(tmp_path, **base(lb, state=state)))
        assert result["changed"] is True
        assert result["after"]["admin_state"] == state
        assert result["commands"] == [f"set server edge/n1 state {state}"]
        raw = lb.server_state("n1")
        assert holds(raw), f"after {state}: {raw}"
        assert lb.server_state("n2").admin_bits == 0, "another server was touched"
        if state == "drain":  # what every result carries
            assert result["before"]["admin_state"] == "ready"
            assert result["before"]["operational_state"] == "up"
            assert result["after"]["weight"] == 1
            assert result["sessions"] == 0 and result["queue"] == 0
            assert result["haproxy_version"] == lb.version()
    lb.wait_for(lambda: lb.server_state("n1").op_state == 2, "n1 back up after ready")


def test_second_identical_call_reports_unchanged(lb: Haproxy, tmp_path: Path):
    states = ["drain", "drain", "maint", "maint", "ready", "ready"]
    runs = run_batch(tmp_path, [base(lb, state=s, wait=True, wait_timeout=30) for s in states])
    results = [ok(r) for r in runs]
    assert [r["changed"] for r in results] == [True, False] * 3
    for second in results[1::2]:
        assert second["commands"] == [] and second["before"] == second["after"]
    assert lb.server_state("n1").admin_bits == 0


def test_weight_is_set_once_then_unchanged_and_out_of_range_refused(lb: Haproxy, tmp_path: Path):
    first, second, bad = run_batch(
        tmp_path, [base(lb, state="ready", weight=w) for w in (42, 42, 300)]
    )
    assert ok(first)["changed"] is True
    assert first.result["commands"] == ["set server edge/n1 weight 42"]
    assert ok(second)["changed"] is False
    msg = failed(bad)
    assert "weight 300" in msg and "0 to 256" in msg
    assert lb.server_state("n1").weight == 42


def test_check_mode_sends_nothing_and_reports_what_would_change(lb: Haproxy, tmp_path: Path):
    lb.cli("set server edge/n2 state drain")
    before = lb.server_states()
    would, same = run_batch(
        tmp_path,
        [base(lb, state="maint", weight=9), base(lb, "n2", state="drain", wait=True)],
        check=True,
    )
    result = ok(would)
    assert result["changed"] is True
    assert result["commands"] == ["set server edge/n1 weight 9", "set server edge/n1 state maint"]
    assert result["before"]["admin_state"] == "ready"
    assert result["after"]["admin_state"] == "maint" and result["after"]["weight"] == 9
    assert ok(same)["changed"] is False and same.result["commands"] == []
    assert lb.server_states() == before


def test_drain_waits_for_an_open_session_and_succeeds_when_it_ends(lb: Haproxy, tmp_path: Path):
    with lb.holding_session("n1"):
        runs: list[Run] = []
        args = base(lb, state="drain", wait=True, wait_timeout=120)
        worker = threading.Thread(target=lambda: runs.append(run_module(tmp_path, **args)))
        worker.start()
        # The module drains first, then waits; only then is the session allowed to end.
        lb.wait_for(lambda: bool(lb.server_state("n1").admin_bits & FDRAIN), "n1 drained", 120)
        time.sleep(1.0)  # let it poll at least once with the session still open
        assert worker.is_alive(), "the module returned while a session was still open"
        lb.nodes["n1"].release()
        worker.join(180)
    result = ok(runs[0])
    assert result["changed"] is True
    assert result["sessions"] == 0 and result["queue"] == 0
    assert result["waited"] > 0


def test_drain_wait_times_out_naming_the_open_session(lb: Haproxy, tmp_path: Path):
    with lb.holding_session("n1"):
        run = run_module(tmp_path, **base(lb, state="drain", wait=True, wait_timeout=2))
        msg = failed(run)
        assert lb.server_state("n1").admin_bits & FDRAIN, "drain itself must stay in place"
    assert "edge/n1" in msg and "1 session(s)" in msg
    assert "src=127.0.0.1:" in msg and "fe=fe" in msg
    assert "wait_timeout" in msg
    assert run.result["changed"] is True and run.result["sessions"] == 1


def test_drain_and_ready_of_a_down_server_never_wait(lb: Haproxy, tmp_path: Path):
    assert lb.server_state("down1").op_state == 0
    wait = {"wait": True, "wait_timeout": 240}
    drained, again, ready = run_batch(
        tmp_path,
        [
            base(lb, "down1", state="drain", **wait),
            base(lb, "down1", state="drain", **wait),
            base(lb, "down1", state="ready"),
        ],
    )
    assert ok(drained)["changed"] is True
    assert drained.result["before"]["operational_state"] == "down"
    assert drained.result["waited"] < 240 and drained.result["sessions"] == 0
    assert ok(again)["changed"] is False
    assert ok(ready)["changed"] is True
    assert lb.server_state("down1").admin_bits == 0


BAD_SERVER_NAMES = [
    "n1;set server edge/n2 state maint",
    "n1\nset server edge/n2 state maint",
    "n1 <<",
    "<<",
    "n1 x",
    "n1\tx",
    "n1\\",
    "edge/n2",
    "",
]
BAD_BACKEND_NAMES = ["edge;show info", "edge\nshow info", "ed ge", "edge<<", "edge\\"]


def test_bad_names_are_refused_before_anything_is_sent(lb: Haproxy, tmp_path: Path):
    recorder = tmp_path / "rec.sock"
    before = lb.server_states()
    with recording_unix_socket(recorder) as received:
        cases = [
            {"socket": str(recorder), "backend": "edge", "server": bad, "state": "drain"}
            for bad in BAD_SERVER_NAMES
        ] + [
            {"socket": str(recorder), "backend": bad, "server": "n1", "state": "ready"}
            for bad in BAD_BACKEND_NAMES
        ]
        # The same injections against the real HAProxy, too.
        cases += [base(lb, bad, state="drain") for bad in BAD_SERVER_NAMES[:3]]
        runs = run_batch(tmp_path, cases)
        assert received == [], "a connection was made for a refused name"
    for case, run in zip(cases, runs, strict=True):
        msg = failed(run)
        kind = "server" if case["backend"] == "edge" else "backend"
        assert f"invalid {kind} name" in msg and "nothing was sent" in msg, case
    assert lb.server_states() == before


def test_missing_closed_and_hung_sockets_fail_clearly(tmp_path: Path):
    from tests.helpers.procs import free_port

    missing = tmp_path / "nowhere" / "admin.sock"
    closed = f"127.0.0.1:{free_port()}"
    with hung_unix_socket(tmp_path / "hung.sock") as hung:
        start = time.monotonic()
        runs = run_batch(
            tmp_path,
            [
                {"socket": str(missing), "backend": "edge", "server": "n1", "state": "drain"},
                {"socket": closed, "backend": "edge", "server": "n1", "state": "drain"},
                {"socket": str(hung), "backend": "edge", "server": "n1", "state": "drain",
                 "socket_timeout": 2},
            ],
        )  # fmt: skip
        elapsed = time.monotonic() - start
    missing_msg, closed_msg, hung_msg = (failed(r) for r in runs)
    assert str(missing) in missing_msg and "cannot connect" in missing_msg
    assert "stats socket" in missing_msg
    assert closed in closed_msg and "cannot connect" in closed_msg
    assert "did not answer" in hung_msg and "within 2 s" in hung_msg
    assert "socket_timeout" in hung_msg
    # Generous bound: Ansible's start-up dominates; without a timeout the run would hang.
    assert elapsed < 120


def test_socket_below_level_admin_is_refused_even_in_check_mode(lb: Haproxy, tmp_path: Path):
    levels = {"operator": lb.operator_socket, "user": lb.user_socket}
    cases = [
        {**base(lb, state="drain"), "socket": str(sock), "check_mode": check}
        for check in (False, True)
        for sock in levels.values()
    ]
    # Control case: proves the check_mode items really ran in check mode.
    cases.append(base(lb, "n2", state="drain", check_mode=True))
    *refused, control = run_batch(tmp_path, cases)
    for level, run in zip(list(levels) * 2, refused, strict=True):
        msg = failed(run)
        assert f"level {level}" in msg and "add `level admin`" in msg and "stats socket" in msg
    assert ok(control)["changed"] is True
    assert lb.server_state("n1").admin_bits == 0 and lb.server_state("n2").admin_bits == 0


def test_unknown_backend_and_unknown_server_fail_naming_them(lb: Haproxy, tmp_path: Path):
    no_backend, no_server = run_batch(
        tmp_path,
        [
            {"socket": str(lb.admin_socket), "backend": "nope", "server": "n1", "state": "drain"},
            base(lb, "ghost", state="drain"),
        ],
    )
    assert "backend 'nope' not found" in failed(no_backend)
    msg = failed(no_server)
    assert "server 'ghost' not found in backend 'edge'" in msg
    assert "n1" in msg and "down1" in msg


def test_tcp_admin_socket_drains(lb: Haproxy, tmp_path: Path):
    # Ready through a TCP socket runs in test_haproxy_tasks (its lb-b has a TCP admin socket).
    assert lb.tcp_admin
    args: dict[str, Any] = {"socket": lb.tcp_admin, "backend": "edge", "server": "n2"}
    drained = ok(run_module(tmp_path, **args, state="drain", wait=True, wait_timeout=30))
    assert drained["changed"] is True and drained["socket"] == lb.tcp_admin
    assert lb.server_state("n2").admin_bits & FDRAIN
    assert drained["haproxy_version"] == lb.version()


def test_ready_refused_while_the_tracked_server_holds_maintenance(tmp_path: Path):
    extra = "backend tracking\n    server t1 127.0.0.1:9 track edge/n1\n"
    with haproxy_instance(tmp_path / "lb", extra_config=extra) as lb:
        lb.cli("set server edge/n1 state maint")
        lb.wait_for(
            lambda: bool(lb.server_state("t1", "tracking").admin_bits & 0x02), "t1 inherits"
        )
        msg = failed(run_module(tmp_path, socket=str(lb.admin_socket), backend="tracking",
                                server="t1", state="ready"))  # fmt: skip
        assert "inherits maintenance" in msg and "tracking/t1" in msg
        assert lb.server_state("n1").admin_bits & FMAINT, "the tracked server was touched"


def test_ready_checks_the_health_url_first_and_sends_nothing_when_it_fails(lb: Haproxy, tmp_path: Path):
    lb.cli("set server edge/n1 state drain")
    node = lb.nodes["n1"]
    node.health_status = 503
    health: dict[str, Any] = {"health_url": node.health_url, "health_retries": 1, "health_delay": 0.1}
    msg = failed(run_module(tmp_path, **base(lb, state="ready", **health)))
    assert f"n1 failed its health check at {node.health_url}" in msg and "HTTP 503" in msg
    assert "nothing was sent to HAProxy" in msg
    assert lb.server_state("n1").admin_bits == FDRAIN

    node.health_status = 200
    result = ok(run_module(tmp_path, **base(lb, state="ready", wait_up=True, wait_up_timeout=30, **health)))
    assert result["changed"] is True
    assert result["after"]["operational_state"] == "up" and result["after"]["admin_state"] == "ready"
    assert lb.server_state("n1").admin_bits == 0


def test_ready_wait_up_fails_naming_the_state_haproxy_sees(lb: Haproxy, tmp_path: Path):
    lb.cli("set server edge/down1 state drain")
    msg = failed(run_module(tmp_path, **base(lb, "down1", state="ready", wait_up=True, wait_up_timeout=1)))
    assert "edge/down1" in msg and "still down" in msg and "1 s after ready" in msg
    assert lb.server_state("down1").admin_bits == 0, "ready itself was set; only HAProxy's own check fails"


def test_ready_takes_a_server_warming_up_under_slowstart_as_up(tmp_path: Path):
    """A node HAProxy saw down while drained (a restart) comes back through its health check into slowstart:
    operational state `starting`, routed to at a rising weight. Ready takes it as up at once; waiting for the
    end of the slowstart (30-60 s in production) held a whole batch for it, and failed a healthy node when
    the slowstart outlasted wait_up_timeout."""
    node = NodeHttpServer("slow1").start()
    try:
        extra = f"    server slow1 127.0.0.1:{node.port} weight 100 slowstart 60s\n"
        with haproxy_instance(tmp_path / "lb", extra_config=extra) as lb:
            lb.cli("set server edge/slow1 state drain")
            lb.bring_back_under_slowstart("slow1", node)
            result = ok(run_module(tmp_path, **base(lb, "slow1", state="ready", wait_up=True, wait_up_timeout=5,
                                                    ramp=1)))
            assert result["after"]["operational_state"] == "starting", result
            assert result["after"]["admin_state"] == "ready" and result["waited_up"] < 5, result
            state = lb.server_state("slow1")
            assert (state.op_state, state.admin_bits, state.weight) == (1, 0, 100), state
    finally:
        node.stop()


def hold_admin_connections(path: Path, count: int) -> list[socket.socket]:
    """Open idle connections until HAProxy's admin socket queues no more (EAGAIN), as a big fleet's forks do."""
    held: list[socket.socket] = []
    for _ in range(count):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.connect(str(path))
        except BlockingIOError:
            sock.close()
            break
        held.append(sock)
    return held


def close_all(socks: list[socket.socket]) -> None:
    for sock in socks:
        sock.close()


def test_a_busy_admin_socket_is_waited_for_not_failed(lb: Haproxy):
    api = RuntimeApi(UnixAddress(str(lb.admin_socket)), timeout=10.0)
    held = hold_admin_connections(lb.admin_socket, 500)
    try:
        # The socket is full: a plain connect is refused at once (what failed a 30-node deploy's preflight).
        # On a starved machine HAProxy may still take one from its backlog (a held connection timed out
        # meanwhile): fill it again until a plain connect is refused.
        for _ in range(5):
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            probe.setblocking(False)
            try:
                probe.connect(str(lb.admin_socket))
            except BlockingIOError:
                probe.close()
                break
            held += [probe, *hold_admin_connections(lb.admin_socket, 500)]
        else:
            pytest.fail("the admin socket still took connections after 5 rounds of filling it")
        release = threading.Timer(1.5, close_all, args=(held,))
        release.start()
        start = time.monotonic()
        answer = api.run("show info")
        waited = time.monotonic() - start
    finally:
        close_all(held)
    assert "Version:" in answer and waited >= 1.0, (waited, answer[:200])


def test_keep_maint_leaves_a_server_someone_put_in_maintenance(lb: Haproxy, tmp_path: Path):
    lb.cli("set server edge/n1 state maint")
    for state in ("drain", "ready"):
        result = ok(run_module(tmp_path, **base(lb, state=state, keep_maint=True, wait=True, wait_up=True)))
        assert result["kept_in_maint"] is True and result["changed"] is False and result["commands"] == []
        assert lb.server_state("n1").admin_bits == FMAINT, f"{state} took n1 out of its maintenance"
    lb.cli("set server edge/n1 state drain")
    result = ok(run_module(tmp_path, **base(lb, state="ready", keep_maint=True)))
    assert result["kept_in_maint"] is False and lb.server_state("n1").admin_bits == 0, "a drained server is put back"
