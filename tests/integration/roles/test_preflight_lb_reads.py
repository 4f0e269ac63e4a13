"""Preflight reads each load balancer once (issue 16): admin-socket connections counted through a
proxy socket in front of the lab's HAProxy, for every node of the run."""

from __future__ import annotations

import json
import socket
import socketserver
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.lab import REPO, VENV_BIN, Lab

PLAYBOOK = """
- name: Preflight's checks of the targets (where it reads the load balancers), without the artifact's
  hosts: localhost
  gather_facts: false
  tasks:
    - name: The artifact's sha256
      ansible.builtin.set_fact:
        preflight_sha256: none
    - name: Check the targets
      ansible.builtin.include_role:
        name: edge.canary.preflight
        tasks_from: targets
- name: The node checks of preflight
  hosts: edge
  gather_facts: false
  vars:
    preflight_rollback_binary: ""
  tasks:
    - name: Check the node
      ansible.builtin.include_role:
        name: edge.canary.preflight
        tasks_from: node
"""


class CountingProxy(socketserver.ThreadingUnixStreamServer):
    """A unix socket in front of HAProxy's admin socket that counts the connections it relays."""

    daemon_threads = True

    def __init__(self, path: Path, upstream: Path) -> None:
        self.upstream, self.count, self.lock = upstream, 0, threading.Lock()
        super().__init__(str(path), _Relay)


class _Relay(socketserver.BaseRequestHandler):
    server: CountingProxy

    def handle(self) -> None:
        with self.server.lock:
            self.server.count += 1
        command = b""
        while not command.endswith(b"\n"):
            chunk = self.request.recv(4096)
            if not chunk:
                return
            command += chunk
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as up:
            up.settimeout(10)
            up.connect(str(self.server.upstream))
            up.sendall(command)
            while chunk := up.recv(65536):
                self.request.sendall(chunk)


@pytest.fixture
def proxy(lab: Lab, tmp_path: Path) -> Iterator[CountingProxy]:
    server = CountingProxy(tmp_path / "admin-proxy.sock", lab.admin_socket)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def preflight(lab: Lab, tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    playbook = tmp_path / "preflight-nodes.yml"
    playbook.write_text(PLAYBOOK)
    return subprocess.run([str(VENV_BIN / "ansible-playbook"), str(playbook), "-e", json.dumps(extra)],
                          cwd=REPO, env=lab.env, capture_output=True, text=True, timeout=300)  # fmt: skip


def test_preflight_reads_each_load_balancer_once(fleet: Lab, proxy: CountingProxy, tmp_path: Path) -> None:
    nodes = fleet.settings.node_names()
    assert len(nodes) >= 3
    result = preflight(fleet, tmp_path, haproxy_server_socket=proxy.server_address)  # type: ignore[arg-type]
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    # show cli level + show servers state, on the one load balancer: not one read per node
    assert proxy.count == 2, f"{proxy.count} admin-socket connections for {len(nodes)} nodes"


def test_preflight_still_refuses_a_node_a_load_balancer_does_not_know(fleet: Lab, proxy: CountingProxy,
                                                                     tmp_path: Path) -> None:  # fmt: skip
    result = preflight(fleet, tmp_path, haproxy_server_socket=proxy.server_address,  # type: ignore[arg-type]
                       haproxy_server_name="edge-99")
    assert result.returncode == 2
    assert "server edge-99 not found in backend edge on lb-1" in result.stdout, result.stdout[-4000:]
    assert proxy.count == 2
