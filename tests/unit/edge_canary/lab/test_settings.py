"""edge_canary/lab/settings.py: the hosts-mode settings (LAB_MODE, LAB_SUBNET) and the names and addresses
derived from them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from edge_canary.lab import check
from tests.helpers.lab import LabSettings, SettingsError, load


def settings(tmp_path: Path, **env: str) -> LabSettings:
    return load({"LAB_DIR": str(tmp_path), **env})


def test_loopback_is_the_default_with_a_port_per_node(tmp_path: Path) -> None:
    s = settings(tmp_path, LAB_NODES="3")
    assert s.mode == "loopback" and s.subnet == "10.213.0.0/24"
    assert s.endpoints() == {"edge-1": ("127.0.0.1", 18081), "edge-2": ("127.0.0.1", 18082),
                             "edge-3": ("127.0.0.1", 18083)}


def test_hosts_mode_gives_each_node_an_address_after_the_machines_own(tmp_path: Path) -> None:
    s = settings(tmp_path, LAB_NODES="3", LAB_MODE="hosts", LAB_SUBNET="10.213.4.0/24")
    assert s.host_address() == "10.213.4.1"
    assert s.endpoints() == {"edge-1": ("10.213.4.2", 8080), "edge-2": ("10.213.4.3", 8080),
                             "edge-3": ("10.213.4.4", 8080)}
    assert str(s.supervisor_conf("edge-2")).endswith("/hosts/edge-2/supervisord.conf")


def test_link_names_are_per_lab_and_fit_linux_interface_names(tmp_path: Path) -> None:
    a = settings(tmp_path / "a", LAB_MODE="hosts")
    b = settings(tmp_path / "b", LAB_MODE="hosts")
    assert a.link_prefix() != b.link_prefix()
    assert len(f"{a.link_prefix()}-h{200}") <= 15


@pytest.mark.parametrize(("env", "message"), [
    ({"LAB_MODE": "vm"}, "LAB_MODE='vm' is not a lab mode"),
    ({"LAB_SUBNET": "10.213.0.0/33"}, "is not a subnet in CIDR form"),
    ({"LAB_SUBNET": "10.213.0.1/24"}, "is not a subnet in CIDR form"),
    ({"LAB_SUBNET": "8.8.8.0/24"}, "is not a private IPv4 subnet"),
    ({"LAB_SUBNET": "127.0.0.0/24"}, "is not a private IPv4 subnet"),
    ({"LAB_SUBNET": "10.213.0.0/30", "LAB_NODES": "3"}, "has no room for the machine and 3 nodes"),
])
def test_bad_hosts_settings_are_refused_with_what_to_do(tmp_path: Path, env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message) as err:
        settings(tmp_path, **env)
    assert "\n" not in str(err.value) and ("use" in str(err.value) or "choose" in str(err.value))


def test_noise_and_low_traffic_are_settings_the_lab_remembers(tmp_path: Path) -> None:
    s = settings(tmp_path, LAB_NOISE_ERRORS="0.002", LAB_NOISE_LATENCY="0.02", LAB_TRAFFIC_RPS="1.5")
    assert (s.noise_errors, s.noise_latency, s.traffic_rps) == (0.002, 0.02, 1.5)
    (tmp_path / "settings.json").write_text(s.to_json())
    again = settings(tmp_path)
    assert (again.noise_errors, again.noise_latency, again.traffic_rps) == (0.002, 0.02, 1.5)
    plain = settings(tmp_path / "fresh")
    assert (plain.noise_errors, plain.noise_latency, plain.traffic_rps) == (0.0, 0.0, 50)


@pytest.mark.parametrize(("env", "message"), [
    ({"LAB_NOISE_ERRORS": "0.6"}, "LAB_NOISE_ERRORS=0.6 is out of range"),
    ({"LAB_NOISE_ERRORS": "lots"}, "LAB_NOISE_ERRORS='lots' is not a number"),
    ({"LAB_NOISE_ERRORS": "nan"}, "LAB_NOISE_ERRORS=nan is out of range"),
    ({"LAB_NOISE_LATENCY": "-1"}, "LAB_NOISE_LATENCY=-1 is out of range"),
    ({"LAB_TRAFFIC_RPS": "0.01"}, "below 0.1 requests/s"),
])
def test_bad_noise_settings_are_refused_with_what_to_do(tmp_path: Path, env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message) as err:
        settings(tmp_path, **env)
    assert "\n" not in str(err.value) and "use" in str(err.value)


def test_the_inventory_gives_the_nodes_their_noise(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from tests.helpers.lab import REPO
    spec = importlib.util.spec_from_file_location("lab_hosts", REPO / "lab.hosts.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setenv("LAB_DIR", str(tmp_path))
    monkeypatch.setenv("LAB_NOISE_ERRORS", "0.004")
    monkeypatch.setenv("LAB_NOISE_LATENCY", "0.05")
    lab_vars = module.inventory()["lab"]["vars"]
    assert (lab_vars["lab_noise_errors"], lab_vars["lab_noise_latency"]) == (0.004, 0.05)


# --- LAB_POPS: points of presence, each behind its own load balancer ------------------------------


def lab_inventory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, Any]:
    import importlib.util

    from tests.helpers.lab import REPO
    spec = importlib.util.spec_from_file_location("lab_hosts", REPO / "lab.hosts.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name in [n for n in os.environ if n.startswith("LAB_")]:  # a second lab's LAB_*_PORT in the shell
        monkeypatch.delenv(name)
    monkeypatch.setenv("LAB_DIR", str(tmp_path))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return dict(module.inventory())


def test_six_nodes_in_two_pops_are_split_in_two_contiguous_halves_each_behind_its_own_lb(tmp_path: Path) -> None:
    s = settings(tmp_path, LAB_NODES="6", LAB_POPS="2")
    assert s.pop_nodes() == {"pop1": ["edge-1", "edge-2", "edge-3"], "pop2": ["edge-4", "edge-5", "edge-6"]}
    lb1, lb2 = s.load_balancers()
    assert (lb1.name, lb1.port, lb1.admin_tcp_port, lb1.exporter_port, lb1.dir_name, lb1.program) == (
        "lb-1", 18080, 18099, 18404, "haproxy", "lab-haproxy")
    assert (lb2.name, lb2.port, lb2.admin_tcp_port, lb2.exporter_port, lb2.dir_name, lb2.program) == (
        "lb-2", 18079, 18098, 18403, "haproxy-lb-2", "lab-haproxy-lb-2")
    assert s.load_balancer_of("edge-5") == lb2
    uneven = settings(tmp_path / "uneven", LAB_NODES="7", LAB_POPS="3").pop_nodes()
    assert [len(nodes) for nodes in uneven.values()] == [3, 2, 2]


def test_the_node_ports_of_a_big_loopback_lab_skip_every_lbs_ports(tmp_path: Path) -> None:
    s = settings(tmp_path, LAB_NODES="30", LAB_POPS="4")
    lb_ports = {port for lb in s.load_balancers() for port in lb.ports().values()}
    assert len(lb_ports) == 12 and not lb_ports & set(s.edge_ports())
    assert len(set(s.edge_ports())) == 30


@pytest.mark.parametrize(("env", "message"), [
    ({"LAB_POPS": "5", "LAB_NODES": "6"}, "LAB_POPS=5 is out of range; use 1 to 4 PoPs"),
    ({"LAB_POPS": "3", "LAB_NODES": "2"}, r"LAB_POPS=3 is out of range; use 1 to 2 PoPs .*at most LAB_NODES=2"),
    ({"LAB_POPS": "0"}, "LAB_POPS=0 is out of range"),
    ({"LAB_POPS": "two"}, "LAB_POPS='two' is not a whole number"),
    ({"LAB_POPS": "2", "LAB_HAPROXY_PORT": "1024"}, "puts lb-2's frontend port at 1023, below 1024"),
    ({"LAB_POPS": "2", "LAB_EXPORTER_PORT": "19091", "LAB_PROM_PORT": "19090"},
     "gives lb-2's exporter port 19090, which is LAB_PROM_PORT's too"),
])
def test_bad_pops_are_refused_in_one_line_with_what_to_do(tmp_path: Path, env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message) as err:
        settings(tmp_path, **env)
    assert "\n" not in str(err.value) and "use" in str(err.value)


def test_the_lab_remembers_its_pops(tmp_path: Path) -> None:
    s = settings(tmp_path, LAB_NODES="6", LAB_POPS="2")
    (tmp_path / "settings.json").write_text(s.to_json())
    assert settings(tmp_path).pops == 2
    assert settings(tmp_path / "fresh").pops == 1


def test_one_pop_is_the_lab_inventory_as_it_always_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inv = lab_inventory(tmp_path, monkeypatch, LAB_NODES="6", LAB_POPS="1")
    assert set(inv) == {"all", "lab", "edge", "haproxy", "control", "_meta"}
    assert inv["edge"] == {"hosts": [f"edge-{i}" for i in range(1, 7)]} and inv["haproxy"] == {"hosts": ["lb-1"]}
    assert inv["_meta"]["hostvars"]["lb-1"] == inv["_meta"]["hostvars"]["localhost"]
    assert not any("pop" in name for host in inv["_meta"]["hostvars"].values() for name in host)


def test_two_pops_give_each_pop_its_group_and_its_own_lb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inv = lab_inventory(tmp_path, monkeypatch, LAB_NODES="6", LAB_POPS="2")
    assert inv["edge"]["children"] == ["edge_pop1", "edge_pop2"]
    assert inv["haproxy"] == {"hosts": ["lb-1", "lb-2"], "children": ["haproxy_pop1", "haproxy_pop2"]}
    assert inv["edge_pop1"] == {"hosts": ["edge-1", "edge-2", "edge-3"],
                                "vars": {"edge_pop": "pop1", "haproxy_server_group": "haproxy_pop1"}}
    assert inv["edge_pop2"] == {"hosts": ["edge-4", "edge-5", "edge-6"],
                                "vars": {"edge_pop": "pop2", "haproxy_server_group": "haproxy_pop2"}}
    assert (inv["haproxy_pop1"], inv["haproxy_pop2"]) == ({"hosts": ["lb-1"]}, {"hosts": ["lb-2"]})
    lbs = inv["_meta"]["hostvars"]
    assert lbs["lb-1"]["haproxy_server_socket"] == f"{tmp_path}/haproxy/admin.sock"
    assert {key: lbs["lb-2"][key] for key in ("edge_pop", "haproxy_server_socket", "lab_haproxy_port",
                                              "lab_haproxy_admin_tcp_port", "lab_haproxy_exporter_port")} == {
        "edge_pop": "pop2", "haproxy_server_socket": f"{tmp_path}/haproxy-lb-2/admin.sock",
        "lab_haproxy_port": 18079, "lab_haproxy_admin_tcp_port": 18098, "lab_haproxy_exporter_port": 18403}


def test_unix_sockets_are_every_supervisord_and_haproxy_socket_with_its_limit(tmp_path: Path) -> None:
    s = settings(tmp_path, LAB_NODES="2", LAB_MODE="hosts", LAB_POPS="2")
    assert s.unix_sockets() == {
        tmp_path / "supervisor.sock": 107,
        tmp_path / "hosts" / "edge-1" / "supervisor.sock": 107,
        tmp_path / "hosts" / "edge-2" / "supervisor.sock": 107,
        tmp_path / "haproxy" / "admin.sock": 97,
        tmp_path / "haproxy-lb-2" / "admin.sock": 97,
    }


def test_a_lab_folder_is_refused_once_a_socket_in_it_passes_its_limit() -> None:
    def lab_at(length: int) -> LabSettings:  # lab-1's admin socket, <dir>/haproxy/admin.sock, `length` bytes
        folder = "/" + "d" * (length - len("//haproxy/admin.sock"))
        return load({"LAB_DIR": folder})

    assert check.socket_too_long(lab_at(97)) is None
    refused = check.socket_too_long(lab_at(98))
    assert refused is not None and refused.startswith(f"the lab folder /{'d' * 78} is too deep: its socket ")
    assert "admin.sock would be 98 bytes, over the 97 a Unix socket path may have here" in refused
    assert refused.endswith("clone nearer the root, or set LAB_DIR to a shorter folder")
