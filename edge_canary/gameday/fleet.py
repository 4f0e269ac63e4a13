"""Reading the fleet as it is, independently of the deploy tool's own records.

- the inventory's resolved settings and every node's files (binary, .previous, .rolled-back, config),
  through a small read-only playbook of ansible.builtin modules written for the occasion;
- every load balancer's view of every node, straight from its HAProxy admin socket;
- what each node serves, from its own /version;
- a sampler thread that records the last two over time, for the timeline and the figures.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import socket
import stat
import subprocess
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from watcher.drain import module_utils

module_utils("haproxy_state")  # the collection importable as Ansible names it
# The haproxy_server module's own reading of `show servers state`.
from ansible_collections.edge.canary.plugins.module_utils import haproxy_state  # noqa: E402
from ansible_collections.edge.canary.plugins.module_utils.polling import poll_until  # noqa: E402

READER_PLAYBOOK = """\
---
- name: Read every edge node's files
  hosts: edge
  gather_facts: false
  vars:
    gameday_paths:
      - "{{ edge_install_dir }}/{{ edge_binary_name }}"
      - "{{ edge_install_dir }}/{{ edge_binary_name }}.previous"
      - "{{ edge_install_dir }}/{{ edge_binary_name }}.rolled-back"
      - "{{ edge_config_path }}"
  tasks:
    - name: Look at the binary, its .previous and .rolled-back, and the config
      ansible.builtin.stat:
        path: "{{ item }}"
        checksum_algorithm: sha256
        get_checksum: true
        get_mime: false
        get_attributes: false
      loop: "{{ gameday_paths }}"
      register: gameday_stat

    - name: Read the config
      ansible.builtin.slurp:
        src: "{{ edge_config_path }}"
      register: gameday_config
      failed_when: false

    - name: Note what the drill needs about the node
      ansible.builtin.set_fact:
        gameday_node:
          version_url: "{{ edge_health_url | regex_replace('/health$', '/version') }}"
          files: "{{ gameday_stat.results | map(attribute='stat') | list }}"
          config: "{{ gameday_config.content | default('') }}"
          paths: "{{ gameday_paths }}"
          local: "{{ ansible_connection | default('ssh') == 'local' }}"
          # The load balancers that serve it: its PoP's (haproxy_server_group), as every deploy step uses.
          lbs: "{{ groups[haproxy_server_group | default('haproxy')] | default(groups['haproxy']) }}"

- name: Read every load balancer's admin socket address
  hosts: haproxy
  gather_facts: false
  tasks:
    - name: Note the admin socket and backend
      ansible.builtin.set_fact:
        gameday_lb:
          socket: "{{ haproxy_server_socket }}"
          backend: "{{ haproxy_server_backend }}"

- name: Write it all down on the control host
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Write the fleet's facts
      ansible.builtin.copy:
        dest: "{{ gameday_out }}"
        mode: "0600"
        content: >-
          {{ {'control': {'state_dir': edge_canary_state_dir,
                          'production': edge_canary_production | default(true) | bool,
                          'prom_url': prom_url,
                          'window': sli_window | float,
                          'interval': sli_probe_interval | float,
                          'p95_threshold': prom_p95_threshold_s | float,
                          'err_threshold': prom_err_rate_threshold | float,
                          'scrape_interval': sli_watch_scrape_interval | default(15) | float,
                          'watch_settings': sli_watch_settings | default({}),
                          'lab_dir': lab_dir | default(''),
                          'lab_haproxy_port': lab_haproxy_port | default(0) | int,
                          'lab_mode': lab_mode | default('')},
              'nodes': dict(groups['edge'] | zip(groups['edge'] | map('extract', hostvars, 'gameday_node'))),
              'lbs': dict(groups['haproxy'] | zip(groups['haproxy'] | map('extract', hostvars, 'gameday_lb')))}
             | to_json }}
"""


class FleetError(RuntimeError):
    """The fleet could not be read; the message says what to check."""


@dataclass(frozen=True)
class FileState:
    sha256: str | None  # None: the file does not exist
    mtime: float | None = None  # epoch seconds of its last change on the node

    @property
    def exists(self) -> bool:
        return self.sha256 is not None


@dataclass(frozen=True)
class NodeFiles:
    binary: FileState
    previous: FileState
    rolled_back: FileState
    config: FileState
    config_text: str

    def config_keys(self) -> dict[str, str]:
        keys = {}
        for line in self.config_text.splitlines():
            key, sep, value = line.partition("=")
            if sep and not line.lstrip().startswith("#"):
                keys[key.strip()] = value.strip()
        return keys


@dataclass(frozen=True)
class LoadBalancer:
    name: str
    socket: str
    backend: str


@dataclass(frozen=True)
class Control:
    state_dir: str
    production: bool
    prom_url: str
    window: float
    interval: float
    p95_threshold: float
    err_threshold: float
    scrape_interval: float
    watch_settings: dict[str, Any]
    lab_dir: str
    lab_haproxy_port: int
    lab_mode: str = ""  # the lab's mode (loopback, hosts); '' for an inventory that is not the lab


@dataclass(frozen=True)
class Fleet:
    """One reading: the settings, and each node's files."""

    control: Control
    version_urls: dict[str, str]
    files: dict[str, NodeFiles]
    lbs: tuple[LoadBalancer, ...]
    paths: dict[str, tuple[str, ...]] = field(default_factory=dict)  # binary, .previous, .rolled-back, config
    local: bool = False  # every node is on the control host itself (the lab): its files can be read directly
    served_by: dict[str, tuple[str, ...]] = field(default_factory=dict)  # node -> the LBs that serve it (its PoP's)

    @property
    def nodes(self) -> list[str]:
        return list(self.files)

    def lbs_of(self, node: str) -> tuple[LoadBalancer, ...]:
        """The load balancers that serve the node (every one when the reading did not say)."""
        names = self.served_by.get(node)
        return self.lbs if names is None else tuple(lb for lb in self.lbs if lb.name in names)

    @property
    def node_lbs(self) -> dict[str, tuple[str, ...]]:
        """Each node and the names of the load balancers that serve it: where it must be in rotation."""
        return {node: tuple(lb.name for lb in self.lbs_of(node)) for node in self.files}


@dataclass(frozen=True)
class ServerState:
    admin: str  # READY, DRAIN or MAINT
    up: bool  # HAProxy's own checks say the server runs (or warms up under slowstart)

    @property
    def serving(self) -> bool:
        return self.admin == "READY" and self.up


# --- parsing (pure) ---------------------------------------------------------------------------


def parse_fleet(data: dict[str, Any]) -> Fleet:
    control = Control(**data["control"])
    files, urls, paths = {}, {}, {}
    local = bool(data["nodes"])
    for node, facts in data["nodes"].items():
        paths[node] = tuple(facts.get("paths", ()))
        local = local and bool(facts.get("local")) and len(paths[node]) == 4
        stats = [FileState(s.get("checksum"), s.get("mtime")) if s.get("exists") and s.get("isreg", True)
                 else FileState(None) for s in facts["files"]]
        text = base64.b64decode(facts["config"]).decode(errors="replace") if facts.get("config") else ""
        binary, previous, rolled_back, config = stats
        files[node] = NodeFiles(binary, previous, rolled_back, config, text)
        urls[node] = facts["version_url"]
    lbs = tuple(LoadBalancer(name, lb["socket"], lb["backend"]) for name, lb in data["lbs"].items())
    served_by = {node: tuple(facts.get("lbs") or data["lbs"]) for node, facts in data["nodes"].items()}
    return Fleet(control, urls, files, lbs, paths, local, served_by)


def file_state(path: str) -> FileState:
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            return FileState(None)
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except FileNotFoundError:
        return FileState(None)
    return FileState(digest.hexdigest(), st.st_mtime)


def reread_local(fleet: Fleet) -> Fleet:
    """The same reading again, straight from the files, when every node is on the control host."""
    files = {}
    for node, (binary, previous, rolled_back, config) in fleet.paths.items():
        try:
            text = Path(config).read_text(errors="replace")
        except OSError:
            text = ""
        files[node] = NodeFiles(file_state(binary), file_state(previous), file_state(rolled_back), file_state(config),
                                text)
    return replace(fleet, files=files)


def parse_servers_state(text: str, backend: str) -> dict[str, ServerState]:
    """`show servers state <backend>`: admin state and whether checks see it running, per server."""
    try:
        servers = haproxy_state.parse_servers_state(text, backend)
    except haproxy_state.HaproxyError as exc:
        raise FleetError(str(exc)) from None
    # op state starting (1): up again, warming up under slowstart, routed to
    return {name: ServerState(server.admin_state.upper(), server.operational_state in ("starting", "up"))
            for name, server in servers.items()}


def socket_address(spec: str) -> tuple[int, Any]:
    """A unix path, or host:port, as socket family and address."""
    match = re.fullmatch(r"(?:ipv4@)?([A-Za-z0-9.\-]+):(\d+)", spec)
    if match and not spec.startswith("/"):
        return socket.AF_INET, (match.group(1), int(match.group(2)))
    return socket.AF_UNIX, spec


# --- reading (side effects) -------------------------------------------------------------------


def read_fleet(ansible_playbook: str, inventory: str | None, env: dict[str, str], timeout: float = 300) -> Fleet:
    with tempfile.TemporaryDirectory(prefix="gameday-read-") as tmp:
        playbook = Path(tmp) / "read-fleet.yml"
        out = Path(tmp) / "fleet.json"
        playbook.write_text(READER_PLAYBOOK)
        argv = [ansible_playbook, str(playbook), "-e", f"gameday_out={out}"]
        if inventory:
            argv += ["-i", inventory]
        try:
            done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise FleetError(f"reading the fleet took more than {timeout:g} s; is every node reachable?") from None
        if done.returncode != 0 or not out.exists():
            problem = next((line.strip() for line in done.stdout.splitlines() + done.stderr.splitlines()
                            if "fatal:" in line or "ERROR" in line or "msg" in line), "see ansible's output")
            raise FleetError(f"could not read the fleet from the inventory ({problem}); check INVENTORY and that "
                             "it has edge and haproxy groups")
        return parse_fleet(json.loads(out.read_text()))


def admin_command(spec: str, command: str, timeout: float = 5.0) -> str:
    family, address = socket_address(spec)
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(address)
        sock.sendall(command.encode() + b"\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data.decode(errors="replace")


def lb_states(lb: LoadBalancer) -> dict[str, ServerState]:
    return parse_servers_state(admin_command(lb.socket, f"show servers state {lb.backend}"), lb.backend)


def node_version(url: str, timeout: float = 2.0) -> str | None:
    """What the node says it runs, or None when it does not answer or its answer names no version."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            body = json.loads(resp.read())
    except (OSError, ValueError):
        return None
    version = body.get("version") if isinstance(body, dict) else None
    return str(version) if version else None


@dataclass(frozen=True)
class Sample:
    at: float  # epoch seconds
    versions: dict[str, str | None]  # node -> /version, None when it does not answer
    lbs: dict[str, dict[str, ServerState]]  # load balancer -> node -> state ({} when unreadable)
    read_s: dict[str, float] = field(default_factory=dict)  # node or LB -> seconds its direct read took


# How long a check point keeps asking a node that does not answer /version before it says it serves nothing.
CHECK_PATIENCE_S = 10.0


def take_sample(fleet: Fleet, patience: float = 0.0) -> Sample:
    """What every node serves and how every LB sees it. With `patience`, a node that does not answer is asked
    again for up to that many seconds, so a check point does not call a node that is only slow under load
    (a busy machine, a loaded node) one that serves nothing; the sampler's time series asks once."""
    versions: dict[str, str | None] = {}
    read_s: dict[str, float] = {}
    for node, url in fleet.version_urls.items():
        asked = poll_until(partial(node_version, url), lambda version: version is not None, patience)
        versions[node], read_s[node] = asked.last, asked.waited
    lbs: dict[str, dict[str, ServerState]] = {}
    for lb in fleet.lbs:
        began = time.monotonic()
        try:
            lbs[lb.name] = lb_states(lb)
        except (OSError, FleetError):
            lbs[lb.name] = {}
        read_s[lb.name] = time.monotonic() - began
    return Sample(time.time(), versions, lbs, read_s)


@dataclass
class Sampler:
    """Samples what the nodes serve and how every LB sees them, every `every` seconds, in a thread."""

    fleet: Fleet
    every: float = 1.0
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Sampler:
        self._thread = threading.Thread(target=self._run, name="gameday-sampler", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(take_sample(self.fleet))
            self._stop.wait(self.every)

    def stop(self) -> list[Sample]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        return list(self.samples)


def write_samples(samples: list[Sample], path: Path) -> None:
    with path.open("w") as out:
        for s in samples:
            out.write(json.dumps({"at": s.at, "versions": s.versions,
                                  "lbs": {lb: {n: [st.admin, st.up] for n, st in nodes.items()}
                                          for lb, nodes in s.lbs.items()},
                                  "read_s": {name: round(took, 3) for name, took in s.read_s.items()}}) + "\n")

