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
# Points of presence (LAB_POPS): edge-1..N split into contiguous PoPs pop1..popP, each behind its own
# HAProxy lb-K. lb-1 is the single-PoP lab's HAProxy as it always was (its folder, program, ports);
# lb-K (K >= 2) takes each of LAB_HAPROXY_PORT, LAB_ADMIN_TCP_PORT and LAB_EXPORTER_PORT minus K-1
# (defaults: 18079/18098/18403 for lb-2 .. 18077/18096/18401 for lb-4). Downwards, so that nothing
# lands on the node ports above LAB_EDGE_BASE_PORT, Prometheus's neighbours (+1 watcher, +3/+4
# Alertmanager) or the next test slot's ports (+500, +1000); the loopback node ports skip the LB ports
# like every other lab port (18096..18098 sit in a 30-node lab's range).
MAX_POPS = 4
MODES = ("loopback", "hosts")
DEFAULT_SUBNET = "10.213.0.0/24"
# In hosts mode every node is its own host: the same port on each node's own address.
HOSTS_EDGE_PORT = 8080
# The longest path a Unix socket may have: the kernel's 108-byte sun_path less its NUL; HAProxy keeps room
# for the name it binds first, "<path>.<pid>.tmp", and refuses more than 97 ("too long (max 97)").
SOCKET_PATH_MAX = 107
HAPROXY_SOCKET_PATH_MAX = 97

# env name -> (field, default)
PORT_SETTINGS = {
    "LAB_HAPROXY_PORT": ("haproxy_port", 18080),
    "LAB_ADMIN_TCP_PORT": ("admin_tcp_port", 18099),
    "LAB_EXPORTER_PORT": ("exporter_port", 18404),
    "LAB_PROM_PORT": ("prom_port", 19090),
    "LAB_EDGE_BASE_PORT": ("edge_base_port", 18081),
}


@dataclass(frozen=True)
class LoadBalancer:
    """One lab HAProxy: lb-K, serving popK's nodes (every node in a single-PoP lab)."""

    name: str
    pop: str
    nodes: tuple[str, ...]
    port: int
    admin_tcp_port: int
    exporter_port: int
    # Beside lb-1's own names (haproxy/, lab-haproxy, lab-traffic): "" for lb-1, "-lb-K" for the others.
    suffix: str

    @property
    def dir_name(self) -> str:
        return f"haproxy{self.suffix}"

    @property
    def program(self) -> str:
        return f"lab-haproxy{self.suffix}"

    @property
    def traffic_program(self) -> str:
        return f"lab-traffic{self.suffix}"

    def ports(self) -> dict[str, int]:
        return {"frontend": self.port, "admin TCP": self.admin_tcp_port, "exporter": self.exporter_port}


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
    pops: int = 1

    @property
    def fixed_ports(self) -> set[int]:
        lbs = {port for lb in self.load_balancers() for port in lb.ports().values()}
        return lbs | {self.prom_port}

    def pop_names(self) -> list[str]:
        return [f"pop{k}" for k in range(1, self.pops + 1)]

    def pop_nodes(self) -> dict[str, list[str]]:
        """The nodes of each PoP: contiguous runs, as even as can be (the first PoPs take one more)."""
        names, (size, extra) = self.node_names(), divmod(self.nodes, self.pops)
        runs, start = {}, 0
        for k, pop in enumerate(self.pop_names()):
            end = start + size + (1 if k < extra else 0)
            runs[pop] = names[start:end]
            start = end
        return runs

    def load_balancers(self) -> list[LoadBalancer]:
        return [
            LoadBalancer(name=f"lb-{k}", pop=pop, nodes=tuple(nodes), port=self.haproxy_port - (k - 1),
                         admin_tcp_port=self.admin_tcp_port - (k - 1), exporter_port=self.exporter_port - (k - 1),
                         suffix="" if k == 1 else f"-lb-{k}")
            for k, (pop, nodes) in enumerate(self.pop_nodes().items(), start=1)
        ]

    def load_balancer_of(self, node: str) -> LoadBalancer:
        return next(lb for lb in self.load_balancers() if node in lb.nodes)

    def edge_ports(self) -> list[int]:
        """Node ports from the base upwards, skipping the lab's other ports (18099 sits in the range).
        In hosts mode each node has its own address, and every node serves on HOSTS_EDGE_PORT."""
        if self.mode == "hosts":
            return [HOSTS_EDGE_PORT] * self.nodes
        ports: list[int] = []
        port, fixed = self.edge_base_port, self.fixed_ports
        while len(ports) < self.nodes:
            if port > 65535:
                raise SettingsError(f"LAB_EDGE_BASE_PORT={self.edge_base_port} leaves no room for "
                                    f"{self.nodes} nodes; choose a lower base port")
            if port not in fixed:
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

    def unix_sockets(self) -> dict[Path, int]:
        """Every Unix socket the lab listens on in its folder, with the longest path it may have."""
        lab = Path(self.lab_dir)
        supervisors = {lab} | {self.supervisor_conf(node).parent for node in self.node_names()}
        return {**{folder / "supervisor.sock": SOCKET_PATH_MAX for folder in sorted(supervisors)},
                **{lab / lb.dir_name / "admin.sock": HAPROXY_SOCKET_PATH_MAX for lb in self.load_balancers()}}

    def link_prefix(self) -> str:
        """Prefix of every namespace, bridge and veth of this lab, from its folder: two labs never share a
        link. Short, since Linux interface names have at most 15 characters (prefix + '-h200' is 12)."""
        return "ec" + hashlib.sha256(self.lab_dir.encode()).hexdigest()[:5]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)


def ssh_path(path: Path | str) -> str:
    """A file's path as ssh takes it in an IdentityFile or UserKnownHostsFile option (-o; Ansible passes a key
    so): % doubled, as ssh expands %-tokens in those paths and a lab folder's name may hold a %."""
    return str(path).replace("%", "%%")


def known_hosts_option(path: Path | str) -> str:
    """ssh's -o value for a known_hosts file: in double quotes, as ssh splits that option's list of files at blanks
    and a lab folder may hold one."""
    return f'UserKnownHostsFile="{ssh_path(path)}"'


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
    most_pops = min(MAX_POPS, nodes)
    pops = _int_setting("LAB_POPS", pick("LAB_POPS", "pops", 1), 1, most_pops,
                        f"use 1 to {most_pops} PoPs (at most {MAX_POPS}, and at most LAB_NODES={nodes}), "
                        "e.g. LAB_POPS=1")
    settings = LabSettings(lab_dir=str(lab_dir), nodes=nodes, traffic_rps=rps, mode=mode, subnet=subnet,
                           noise_errors=noise_errors, noise_latency=noise_latency, pops=pops, **ports)
    _check_lb_ports(settings)
    settings.edge_ports()  # validates the range
    return settings


def _check_lb_ports(settings: LabSettings) -> None:
    """lb-2..lb-P's ports are derived (settings' ports minus K-1): they must be ports, and nobody else's."""
    taken = {settings.prom_port: "LAB_PROM_PORT"}
    for lb in settings.load_balancers():
        for what, port in lb.ports().items():
            if port < 1024:
                raise SettingsError(f"LAB_POPS={settings.pops} puts {lb.name}'s {what} port at {port}, below 1024 "
                                    "(lb-K takes each LB port setting minus K-1); use higher LAB_*_PORT values")
            if port in taken:
                raise SettingsError(f"LAB_POPS={settings.pops} gives {lb.name}'s {what} port {port}, which is "
                                    f"{taken[port]}'s too (lb-K takes each LB port setting minus K-1); "
                                    "use LAB_*_PORT values further apart")
            taken[port] = f"{lb.name}'s {what}"
