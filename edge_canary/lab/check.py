"""Check the lab settings before `make lab-up` starts anything, and record them once the lab is up.

  lab-check          validate LAB_* settings and that every port is free (or held by this running lab)
  lab-check --record remember the settings the running lab was brought up with (.lab/settings.json)
"""

import errno
import os
import socket
import subprocess
import sys
from pathlib import Path

from edge_canary.lab.settings import LabSettings, SettingsError, load, recorded

PORT_NAMES = {
    "haproxy_port": "LAB_HAPROXY_PORT",
    "admin_tcp_port": "LAB_ADMIN_TCP_PORT",
    "exporter_port": "LAB_EXPORTER_PORT",
    "prom_port": "LAB_PROM_PORT",
}
# The setting each port of lb-2..lb-P is derived from (LoadBalancer.ports() names).
LB_PORT_SETTINGS = {"frontend": "LAB_HAPROXY_PORT", "admin TCP": "LAB_ADMIN_TCP_PORT", "exporter": "LAB_EXPORTER_PORT"}


def lab_running(settings: LabSettings) -> bool:
    conf = Path(settings.lab_dir) / "supervisord.conf"
    if not conf.exists():
        return False
    result = subprocess.run(["supervisorctl", "-c", str(conf), "pid"], capture_output=True, text=True)
    return result.returncode == 0 and result.stdout.strip().isdigit()


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def owned_ports(settings: LabSettings) -> set[int]:
    """Ports the running lab holds, as it recorded them."""
    if not lab_running(settings):
        return set()
    saved = recorded(Path(settings.lab_dir))
    if not saved:
        return set()
    try:
        before = LabSettings(**saved)
    except TypeError:
        return set()
    return before.fixed_ports | (set(before.edge_ports()) if before.mode == "loopback" else set())


def socket_too_long(settings: LabSettings) -> str | None:
    for path, limit in settings.unix_sockets().items():
        if (size := len(os.fsencode(path))) > limit:
            return (f"the lab folder {settings.lab_dir} is too deep: its socket {path} would be "
                    f"{size} bytes, over the {limit} a Unix socket path may have here; "
                    f"clone nearer the root, or set LAB_DIR to a shorter folder")
    return None


def check(settings: LabSettings) -> str | None:
    too_long = socket_too_long(settings)
    if too_long:
        return too_long
    saved = recorded(Path(settings.lab_dir))
    was = saved.get("mode", "loopback")
    if saved and was != settings.mode:
        return (f"the lab in {settings.lab_dir} was brought up in {was} mode, not {settings.mode}; "
                f"make lab-clean first (it removes that lab's state) or use another LAB_DIR")
    owned = owned_ports(settings)
    named = {getattr(settings, field): (env, env) for field, env in PORT_NAMES.items()}
    for lb in settings.load_balancers()[1:]:
        named.update({port: (f"{lb.name}'s {what}, from {LB_PORT_SETTINGS[what]}", LB_PORT_SETTINGS[what])
                      for what, port in lb.ports().items()})
    # In hosts mode the nodes serve on their own addresses, not on this machine's loopback.
    node_ports = settings.edge_ports() if settings.mode == "loopback" else []
    for port in sorted(settings.fixed_ports) + node_ports:
        if port in owned or port_free(port):
            continue
        what, env = named.get(port, (f"edge node port, from LAB_EDGE_BASE_PORT={settings.edge_base_port}",
                                     "LAB_EDGE_BASE_PORT"))
        return (f"port 127.0.0.1:{port} ({what}) is already in use by another program; "
                f"stop it or move the lab, e.g. {env}=<free port>")
    return None


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        settings = load()
    except SettingsError as err:
        print(f"lab-up: {err}", file=sys.stderr)
        return 2
    if args == ["--record"]:
        path = Path(settings.lab_dir) / "settings.json"
        path.write_text(settings.to_json() + "\n")
        return 0
    problem = check(settings)
    if problem:
        print(f"lab-up: {problem}", file=sys.stderr)
        return 2
    where = f" on {settings.subnet} over SSH" if settings.mode == "hosts" else ""
    if settings.pops > 1:
        where += f" in {settings.pops} PoPs"
    frontends = ", ".join(f"127.0.0.1:{lb.port}" for lb in settings.load_balancers())
    print(f"lab-up: {settings.nodes} node(s){where}, HAProxy {frontends}, "
          f"Prometheus 127.0.0.1:{settings.prom_port}, state in {settings.lab_dir}")
    if settings.noise_errors or settings.noise_latency or 0 < settings.traffic_rps < 10:
        print(f"lab-up: traffic {settings.traffic_rps:g} req/s; noise on every node: "
              f"{settings.noise_errors:.2%} background 5xx, heavy-tailed delay of median "
              f"{settings.noise_latency * 1000:g} ms")
    return 0

