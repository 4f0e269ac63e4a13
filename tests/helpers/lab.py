"""The local lab as the integration tests drive it: bring it up once, talk to its parts directly.

Tests use their own lab folder (.lab-test) so they never touch a lab a developer has running,
and read the fleet's state independently of the tool under test (HAProxy socket, files, HTTP).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from edge_canary.gameday.fleet import parse_servers_state
from edge_canary.lab.settings import LabSettings, LoadBalancer, load
from edge_canary.lab.settings import SettingsError as SettingsError  # re-exported for the tests of the settings
from tests.helpers.paths import REPO  # noqa: E402  (re-exported for the tests)

VENV_BIN = Path(sys.executable).parent
T = TypeVar("T")


def run(argv: list[str], env: dict[str, str], timeout: float = 600, check: bool = False,
        **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True,
                            timeout=timeout, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f"{argv} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def lab_env(lab_dir: Path, **overrides: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "LAB_DIR": str(lab_dir),
        "PY": sys.executable,
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "PATH": f"{VENV_BIN}:{env.get('PATH', '')}",
        "ANSIBLE_NOCOLOR": "1",
    })
    env.update(overrides)
    return env


def admin_command(sock_path: str | Path, command: str, timeout: float = 5.0) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(sock_path))
        sock.sendall(command.encode() + b"\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data.decode()


def lab_processes(lab_dir: Path) -> list[str]:
    needle = str(lab_dir).rstrip("/") + "/"
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle in args:
            found.append(f"{entry.name}: {args}")
    return found


def net_leftovers(prefix: str) -> list[str]:
    """Network namespaces and links whose names start with the lab's prefix."""
    found = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
    found += [line.split(":")[1].strip() for line in
              subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout.splitlines()]
    return [name.split("@")[0] for name in found if name.startswith(prefix + "-")]


@dataclass
class Lab:
    lab_dir: Path
    overrides: dict[str, str] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        return lab_env(self.lab_dir, **self.overrides)

    @property
    def settings(self) -> LabSettings:
        return load(self.env)

    def up(self) -> subprocess.CompletedProcess[str]:
        return run(["bash", str(REPO / "scripts/lab-up.sh")], self.env)

    def down(self) -> subprocess.CompletedProcess[str]:
        return run(["bash", str(REPO / "scripts/lab-down.sh")], self.env)

    def playbook(self, playbook: str, *args: str, timeout: float = 600,
                 extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        env = {**self.env, **(extra_env or {})}
        return run([str(VENV_BIN / "ansible-playbook"), str(REPO / "playbooks" / playbook), *args],
                   env, timeout=timeout)

    def make(self, *args: str, timeout: float = 900,
             extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        env = {**self.env, **(extra_env or {})}
        return run(["make", "--no-print-directory", *args], env, timeout=timeout)

    # --- reading the fleet's state directly -------------------------------------------------------
    # A lab with PoPs has an HAProxy per PoP (lb-1, lb-2, ...): `lb` names one; lb-1 is the lab's only one
    # otherwise. Reads without an `lb` show each node as its own PoP's LB sees it.
    @property
    def admin_socket(self) -> Path:
        return self.admin_socket_of("lb-1")

    def admin_socket_of(self, lb: str) -> Path:
        return self.lab_dir / self.load_balancer(lb).dir_name / "admin.sock"

    def load_balancer(self, lb: str) -> LoadBalancer:
        return next(each for each in self.settings.load_balancers() if each.name == lb)

    def lb_of(self, node: str) -> str:
        return self.settings.load_balancer_of(node).name

    def haproxy(self, command: str, lb: str = "lb-1") -> str:
        return admin_command(self.admin_socket_of(lb), command)

    def server_stats(self, lb: str | None = None) -> dict[str, dict[str, str]]:
        if lb is None:
            return self._own_lbs_view(self.server_stats)
        rows = csv.DictReader(io.StringIO(self.haproxy("show stat", lb).lstrip("# ")))
        return {r["svname"]: r for r in rows
                if r["pxname"] == "edge" and r["svname"] not in ("FRONTEND", "BACKEND")}

    def lb_states(self, lb: str | None = None) -> dict[str, str]:
        """Admin view per node: READY, DRAIN or MAINT, from `show servers state` (the game days' reading)."""
        if lb is None:
            return self._own_lbs_view(self.lb_states)
        servers = parse_servers_state(self.haproxy("show servers state edge", lb), "edge")
        return {name: state.admin for name, state in servers.items()}

    def _own_lbs_view(self, read: Callable[[str], dict[str, T]]) -> dict[str, T]:
        """What each LB says of the nodes of its own PoP, merged."""
        merged: dict[str, T] = {}
        for lb in self.settings.load_balancers():
            merged.update({node: row for node, row in read(lb.name).items() if node in lb.nodes})
        return merged

    def node_dir(self, node: str) -> Path:
        return self.lab_dir / "nodes" / node

    def node_port(self, node: str) -> int:
        s = self.settings
        return dict(zip(s.node_names(), s.edge_ports(), strict=True))[node]

    def node_url(self, node: str, path: str) -> str:
        address, port = self.settings.endpoints()[node]
        return f"http://{address}:{port}{path}"

    def node_version(self, node: str, timeout: float = 5) -> dict[str, Any]:
        with urllib.request.urlopen(self.node_url(node, "/version"), timeout=timeout) as resp:
            return dict(json.loads(resp.read()))

    def supervisorctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run(["supervisorctl", "-c", str(self.lab_dir / "supervisord.conf"), *args], self.env)

    def prom_query(self, query: str) -> list[dict[str, Any]]:
        url = (f"http://127.0.0.1:{self.settings.prom_port}/api/v1/query?"
               + urllib.parse.urlencode({"query": query}))
        with urllib.request.urlopen(url, timeout=10) as resp:
            return list(json.loads(resp.read())["data"]["result"])

    def frontend_url(self, path: str = "/", lb: str = "lb-1") -> str:
        return f"http://127.0.0.1:{self.load_balancer(lb).port}{path}"

    def install(self, node: str, artifact: Path, config: str | None = None) -> None:
        """Put an artifact on a node by hand (no deploy tool) and restart it: test set-up only."""
        target = self.node_dir(node) / "edge"
        tmp = target.with_suffix(".tmp")
        shutil.copy2(artifact, tmp)
        os.replace(tmp, target)
        if config is not None:
            (self.node_dir(node) / "edge.conf").write_text(config)
        run(["supervisorctl", "-c", str(self.settings.supervisor_conf(node)), "restart", node], self.env)

    def wait_until(self, predicate: Any, timeout: float = 60, what: str = "condition",
                   interval: float = 0.25) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            time.sleep(interval)
