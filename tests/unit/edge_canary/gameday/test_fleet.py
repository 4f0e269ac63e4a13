"""Reading the fleet (edge_canary/gameday/fleet.py), the pure parts: HAProxy's server states, admin socket
addresses, the reader playbook's JSON."""

from __future__ import annotations

import base64
import hashlib
import socket
from pathlib import Path

import pytest

from edge_canary.gameday import fleet as gf
from tests.helpers.health_node import health_node

HEADER = ("# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight "
          "srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state "
          "srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord")


def row(name: str, op: int, admin: int) -> str:
    return f"3 edge 1 {name} 127.0.0.1 {op} {admin} 1 1 10 6 3 4 6 0 0 0 - 18081 -"


def test_servers_state_reads_admin_and_operational_state() -> None:
    text = "\n".join(["1", HEADER, row("edge-1", 2, 0), row("edge-2", 2, 0x08), row("edge-3", 0, 0x01),
                      row("edge-4", 0, 0x04), row("edge-5", 2, 0x10), row("edge-6", 0, 0), row("edge-7", 1, 0),
                      row("edge-8", 3, 0), ""])
    states = gf.parse_servers_state(text, "edge")
    assert states["edge-1"] == gf.ServerState("READY", True) and states["edge-1"].serving
    assert states["edge-2"].admin == "DRAIN"  # forced drain: not maintenance
    assert states["edge-3"].admin == "MAINT"
    # CMAINT alone ("disabled" in the config, since set ready) is no maintenance: HAProxy's SRV_ADMF_MAINT
    # leaves it out, as the haproxy_server module does
    assert states["edge-4"] == gf.ServerState("READY", False)
    assert states["edge-5"].admin == "DRAIN"
    assert states["edge-6"] == gf.ServerState("READY", False) and not states["edge-6"].serving
    # op state 1: up again, warming up under slowstart, routed to; 3: stopping
    assert states["edge-7"] == gf.ServerState("READY", True) and states["edge-7"].serving
    assert states["edge-8"] == gf.ServerState("READY", False)


def test_servers_state_refuses_an_answer_without_its_table() -> None:
    with pytest.raises(gf.FleetError, match="no server table in HAProxy's answer to 'show servers state edge'"):
        gf.parse_servers_state("Unknown command.\n", "edge")


@pytest.mark.parametrize("spec, expected", [
    ("/run/haproxy/admin.sock", (socket.AF_UNIX, "/run/haproxy/admin.sock")),
    ("127.0.0.1:9999", (socket.AF_INET, ("127.0.0.1", 9999))),
    ("ipv4@10.0.0.5:9999", (socket.AF_INET, ("10.0.0.5", 9999))),
    ("lb1.example:9999", (socket.AF_INET, ("lb1.example", 9999))),
])
def test_socket_address(spec: str, expected: tuple[int, object]) -> None:
    assert gf.socket_address(spec) == expected


def test_parse_fleet_reads_files_config_and_lbs() -> None:
    def stat(sha: str | None) -> dict[str, object]:
        return {"exists": True, "isreg": True, "checksum": sha, "mtime": 12.5} if sha else {"exists": False}

    data = {
        "control": {"state_dir": "/s", "production": False, "prom_url": "http://p", "window": 30.0, "interval": 3.0,
                    "p95_threshold": 0.3, "err_threshold": 0.01, "scrape_interval": 1.0, "watch_settings": {},
                    "lab_dir": "/lab", "lab_haproxy_port": 18080},
        "nodes": {"edge-1": {"version_url": "http://127.0.0.1:1/version",
                             "files": [stat("a"), stat("b"), stat(None), stat("c")],
                             "config": base64.b64encode(b"rollout_pct=10\n# x=1\nfeature = on\n").decode()}},
        "lbs": {"lb-1": {"socket": "/s.sock", "backend": "edge"}},
    }
    fleet = gf.parse_fleet(data)
    files = fleet.files["edge-1"]
    assert files.binary == gf.FileState("a", 12.5) and files.previous.sha256 == "b"
    assert not files.rolled_back.exists
    assert files.config_keys() == {"rollout_pct": "10", "feature": "on"}
    assert fleet.lbs == (gf.LoadBalancer("lb-1", "/s.sock", "edge"),)
    assert fleet.nodes == ["edge-1"] and fleet.control.lab_haproxy_port == 18080
    assert fleet.node_lbs == {"edge-1": ("lb-1",)}  # the reading did not say: every load balancer


def test_each_node_is_served_by_its_own_points_of_presence_load_balancers() -> None:
    node = {"version_url": "http://n/version", "files": [{"exists": False}] * 4}
    data = {
        "control": {"state_dir": "/s", "production": False, "prom_url": "http://p", "window": 30.0, "interval": 3.0,
                    "p95_threshold": 0.3, "err_threshold": 0.01, "scrape_interval": 1.0, "watch_settings": {},
                    "lab_dir": "/lab", "lab_haproxy_port": 18080},
        "nodes": {"edge-1": {**node, "lbs": ["lb-1"]}, "edge-4": {**node, "lbs": ["lb-2"]}},
        "lbs": {"lb-1": {"socket": "/1.sock", "backend": "edge"}, "lb-2": {"socket": "/2.sock", "backend": "edge"}},
    }
    fleet = gf.parse_fleet(data)
    assert fleet.node_lbs == {"edge-1": ("lb-1",), "edge-4": ("lb-2",)}
    assert fleet.lbs_of("edge-4") == (gf.LoadBalancer("lb-2", "/2.sock", "edge"),)


def test_admin_command_and_lb_states_over_a_real_unix_socket(tmp_path: Path) -> None:
    import threading

    path = str(tmp_path / "admin.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    asked: list[bytes] = []

    def answer() -> None:
        conn, _ = server.accept()
        with conn:
            asked.append(conn.recv(1024))
            conn.sendall(("1\n" + HEADER + "\n" + row("edge-1", 2, 0x08) + "\n").encode())

    thread = threading.Thread(target=answer)
    thread.start()
    try:
        states = gf.lb_states(gf.LoadBalancer("lb-1", path, "edge"))
    finally:
        thread.join(5)
        server.close()
    assert asked == [b"show servers state edge\n"]
    assert states == {"edge-1": gf.ServerState("DRAIN", True)}


def test_a_local_fleet_is_read_again_straight_from_its_files(tmp_path: Path) -> None:
    (tmp_path / "edge").write_bytes(b"binary")
    (tmp_path / "edge.previous").write_bytes(b"older")
    (tmp_path / "edge.conf").write_text("rollout_pct=5\n")
    (tmp_path / "edge.rolled-back").mkdir()  # not a regular file: counts as absent
    paths = [str(tmp_path / n) for n in ("edge", "edge.previous", "edge.rolled-back", "edge.conf")]
    node: dict[str, object] = {"version_url": "u", "files": [{"exists": False}] * 4, "config": "", "paths": paths,
                               "local": True}
    data: dict[str, object] = {
        "control": {"state_dir": "/s", "production": False, "prom_url": "http://p", "window": 30.0, "interval": 3.0,
                    "p95_threshold": 0.3, "err_threshold": 0.01, "scrape_interval": 1.0, "watch_settings": {},
                    "lab_dir": "", "lab_haproxy_port": 0},
        "nodes": {"edge-1": node},
        "lbs": {},
    }
    fleet = gf.parse_fleet(data)
    assert fleet.local
    again = gf.reread_local(fleet).files["edge-1"]
    assert again.binary.sha256 == hashlib.sha256(b"binary").hexdigest()
    assert again.binary.mtime == (tmp_path / "edge").stat().st_mtime
    assert again.previous.sha256 == hashlib.sha256(b"older").hexdigest()
    assert not again.rolled_back.exists
    assert again.config_keys() == {"rollout_pct": "5"}
    remote = gf.parse_fleet({**data, "nodes": {"edge-1": {**node, "local": False}}})
    assert not remote.local


@pytest.mark.parametrize(("patience", "version", "asked"), [(0.0, None, 1), (5.0, "v1", 3)])
def test_a_check_point_asks_a_node_that_does_not_answer_again(patience: float, version: str | None,
                                                               asked: int) -> None:
    with health_node() as node:
        node.version, node.unanswered_version_requests = "v1", 2  # a node busy under load
        control = gf.Control("/s", False, "http://p", 30.0, 3.0, 0.3, 0.01, 1.0, {}, "", 0)
        sample = gf.take_sample(gf.Fleet(control, {"edge-1": node.url("/version")}, {}, ()), patience)
    assert sample.versions == {"edge-1": version}
    assert node.version_requests == asked


@pytest.mark.parametrize(("body", "version"), [
    (b'{"version": "v2"}', "v2"),
    (b'{"pid": 12}', None),  # no version in it: unknown, never the string "None"
    (b'{"version": null}', None),
    (b'{"version": ""}', None),
    (b'["v2"]', None),  # JSON, but not the object /version answers
    (b"not json", None),
])
def test_a_node_version_is_what_its_version_body_says_or_none(body: bytes, version: str | None) -> None:
    with health_node() as node:
        node.version_body = body
        assert gf.node_version(node.url("/version")) == version
