"""The lab's settings: environment first, then what the running lab was brought up with, then defaults.

Shared by the lab inventory (lab.hosts.py), edge-canary lab-check and lab-status so that every tool
agrees on the node count and ports of the lab that is actually up.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
MAX_NODES = 200
MODES = ("loopback", "hosts")
DEFAULT_SUBNET = "10.213.0.0/24"
# In hosts mode every node is its own host: the same port on each node's own address.
HOSTS_EDGE_PORT = 8080

# env name -> (field, default)
PORT_SETTINGS = {
    "LAB_HAPROXY_PORT": ("haproxy_port", 18080),
    "LAB_ADMIN_TCP_PORT": ("admin_tcp_port", 18099),
    "LAB_EXPORTER_PORT": ("exporter_port", 18404),
    "LAB_PROM_PORT": ("prom_port", 19090),
    "LAB_EDGE_BASE_PORT": ("edge_base_port", 18081),
}


class SettingsError(ValueError):
    """A lab setting that cannot be used; the message is one line saying what to do."""


@dataclass(frozen=True)
class LabSettings:
    lab_dir: str
    nodes: int
    haproxy_port: int
    admin_tcp_port: int
    exporter_port: int
    prom_port: int
    edge_base_port: int
    traffic_rps: float
    mode: str = "loopback"
    subnet: str = DEFAULT_SUBNET
    # Noise every node meets, so tests and game days meet what the judge must survive (issue 14):
    # a background share of 5xx answers and the median of a heavy-tailed (lognormal) added delay.
    noise_errors: float = 0.0
    noise_latency: float = 0.0

    @property
    def fixed_ports(self) -> set[int]:
        return {self.haproxy_port, self.admin_tcp_port, self.exporter_port, self.prom_port}

    def edge_ports(self) -> list[int]:
        """Node ports from the base upwards, skipping the lab's other ports (18099 sits in the range).
        In hosts mode each node has its own address, and every node serves on HOSTS_EDGE_PORT."""
        if self.mode == "hosts":
            return [HOSTS_EDGE_PORT] * self.nodes
        ports: list[int] = []
        port = self.edge_base_port
        while len(ports) < self.nodes:
            if port > 65535:
                raise SettingsError(f"LAB_EDGE_BASE_PORT={self.edge_base_port} leaves no room for "
                                    f"{self.nodes} nodes; choose a lower base port")
            if port not in self.fixed_ports:
                ports.append(port)
            port += 1
        return ports

    def node_names(self) -> list[str]:
        return [f"edge-{i}" for i in range(1, self.nodes + 1)]

    # --- hosts mode: a network namespace per node on a bridge, addresses from `subnet` -----------
    def host_address(self) -> str:
        """The machine's own address on the lab's bridge (the subnet's first address)."""
        return str(next(ipaddress.ip_network(self.subnet).hosts()))

    def node_addresses(self) -> list[str]:
        """edge-1.. get the addresses after the machine's own, in order."""
        hosts = ipaddress.ip_network(self.subnet).hosts()
        next(hosts)
        return [str(next(hosts)) for _ in range(self.nodes)]

    def endpoints(self) -> dict[str, tuple[str, int]]:
        """Where each node serves: (address, port), in either mode."""
        addresses = self.node_addresses() if self.mode == "hosts" else ["127.0.0.1"] * self.nodes
        return dict(zip(self.node_names(), zip(addresses, self.edge_ports(), strict=True), strict=True))

    def supervisor_conf(self, node: str) -> Path:
        """The supervisord configuration that runs the node's edge program: the node's own in hosts mode."""
        lab = Path(self.lab_dir)
        return lab / "hosts" / node / "supervisord.conf" if self.mode == "hosts" else lab / "supervisord.conf"

    def link_prefix(self) -> str:
        """Prefix of every namespace, bridge and veth of this lab, from its folder: two labs never share a
        link. Short, since Linux interface names have at most 15 characters (prefix + '-h200' is 12)."""
        return "ec" + hashlib.sha256(self.lab_dir.encode()).hexdigest()[:5]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)


def _int_setting(name: str, raw: object, low: int, high: int, hint: str) -> int:
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number; {hint}") from None
    if not low <= value <= high:
        raise SettingsError(f"{name}={value} is out of range; {hint}")
    return value


def _float_setting(name: str, raw: object, low: float, high: float, hint: str) -> float:
    try:
        value = float(str(raw).strip())
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number; {hint}") from None
    if not low <= value <= high:  # also refuses nan
        raise SettingsError(f"{name}={value:g} is out of range; {hint}")
    return value


def _subnet_setting(raw: str, nodes: int) -> str:
    hint = "use a private IPv4 subnet that nothing else on this machine uses, e.g. LAB_SUBNET=10.213.0.0/24"
    try:
        net = ipaddress.ip_network(raw.strip(), strict=True)
    except ValueError:
        raise SettingsError(f"LAB_SUBNET={raw!r} is not a subnet in CIDR form; {hint}") from None
    if net.version != 4 or not net.is_private or net.is_loopback or net.is_link_local:
        raise SettingsError(f"LAB_SUBNET={raw} is not a private IPv4 subnet; {hint}")
    if net.num_addresses - 2 < nodes + 1:
        raise SettingsError(f"LAB_SUBNET={raw} has no room for the machine and {nodes} nodes; "
                            "use a larger subnet, e.g. a /24")
    return str(net)


def default_lab_dir() -> Path:
    return Path(os.environ.get("LAB_DIR") or REPO / ".lab").resolve()


def recorded(lab_dir: Path) -> dict[str, Any]:
    """What `make lab-up` recorded for the lab in lab_dir, or {} if it was never brought up."""
    try:
        data = json.loads((lab_dir / "settings.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def load(env: dict[str, str] | None = None) -> LabSettings:
    env = dict(os.environ if env is None else env)
    lab_dir = Path(env.get("LAB_DIR") or REPO / ".lab").resolve()
    saved = recorded(lab_dir)

    def pick(env_name: str, field: str, default: object) -> object:
        if env.get(env_name, "") != "":
            return env[env_name]
        return saved.get(field, default)

    nodes = _int_setting("LAB_NODES", pick("LAB_NODES", "nodes", 3), 1, MAX_NODES,
                         f"use a node count from 1 to {MAX_NODES}, e.g. LAB_NODES=3")
    ports = {
        field: _int_setting(env_name, pick(env_name, field, default), 1024, 65535,
                            "use a port from 1024 to 65535")
        for env_name, (field, default) in PORT_SETTINGS.items()
    }
    if len(set(ports.values())) != len(ports):
        raise SettingsError(f"two lab ports are the same ({ports}); give each its own port")
    rps = _float_setting("LAB_TRAFFIC_RPS", pick("LAB_TRAFFIC_RPS", "traffic_rps", 50), 0, 2000,
                         "use 0 (off) to 2000 requests/s; 1.5 is the low-traffic mode (0.5 per node of 3)")
    if 0 < rps < 0.1:
        raise SettingsError(f"LAB_TRAFFIC_RPS={rps:g} is below 0.1 requests/s; use 0 (off) or 0.1 to 2000")
    rps = int(rps) if rps.is_integer() else rps
    noise_errors = _float_setting("LAB_NOISE_ERRORS", pick("LAB_NOISE_ERRORS", "noise_errors", 0), 0, 0.5,
                                  "use a share of requests from 0 to 0.5, e.g. LAB_NOISE_ERRORS=0.002 (0.2 %)")
    noise_latency = _float_setting("LAB_NOISE_LATENCY", pick("LAB_NOISE_LATENCY", "noise_latency", 0), 0, 5,
                                   "use a median delay from 0 to 5 seconds, e.g. LAB_NOISE_LATENCY=0.02")
    mode = str(pick("LAB_MODE", "mode", "loopback")).strip()
    if mode not in MODES:
        raise SettingsError(f"LAB_MODE={mode!r} is not a lab mode; use LAB_MODE=loopback (one machine, loopback "
                            "ports) or LAB_MODE=hosts (a network namespace and sshd per node)")
    subnet = _subnet_setting(str(pick("LAB_SUBNET", "subnet", DEFAULT_SUBNET)), nodes)
    settings = LabSettings(lab_dir=str(lab_dir), nodes=nodes, traffic_rps=rps, mode=mode, subnet=subnet,
                           noise_errors=noise_errors, noise_latency=noise_latency, **ports)
    settings.edge_ports()  # validates the range
    return settings
