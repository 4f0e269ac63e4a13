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
