"""edge_canary/lab/settings.py: the hosts-mode settings (LAB_MODE, LAB_SUBNET) and the names and addresses
derived from them."""

from __future__ import annotations

from pathlib import Path

import pytest

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
