"""A watch host for the hosts-mode lab (inventory group edge_canary_watch): its own sshd on the lab bridge's
address, reached over real SSH with the lab's key and its own known_hosts, its own supervisord (the lab's
supervisor, where the watcher runs as a program), its own state folder (deploy lock and records).

It runs in the machine's own network namespace, not a node's: the lab's Prometheus, Alertmanager and HAProxy
admin socket listen on 127.0.0.1 only, as a production watch host reaches them over its network. Everything
of the controller's reaches it through SSH; nothing the watcher does is a child of the controller."""

from __future__ import annotations

import contextlib
import json
import shlex
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from edge_canary.lab.netns import keys_dir
from edge_canary.lab.settings import known_hosts_option, ssh_path
from tests.helpers.lab import REPO, VENV_BIN, Lab, run

NAME = "watch-1"


@dataclass
class WatchHost:
    lab: Lab

    @property
    def dir(self) -> Path:
        return self.lab.lab_dir / "watch"

    @property
    def state(self) -> Path:
        # A blank and a % in the path the watcher's program file names (supervisor expands % in it).
        return self.dir / "state 100%"

    @property
    def address(self) -> str:
        return self.lab.settings.host_address()

    @property
    def env(self) -> dict[str, str]:
        """The lab's environment with the watch host's inventory beside the lab's (ansible.cfg's)."""
        return {**self.lab.env, "ANSIBLE_INVENTORY": f"{REPO / 'lab.hosts.py'},{self.dir / 'watch.yml'}"}

    def supervisorctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run(["supervisorctl", "-c", str(self.dir / "supervisord.conf"), *args], self.lab.env)

    @property
    def key(self) -> Path:
        """The lab's key, copied where its path holds a blank and a % (ssh expands %-tokens in a key's path)."""
        return self.dir / "key 100%" / "id_ed25519"

    def inventory(self) -> dict[str, object]:
        host = {
            "ansible_host": self.address, "ansible_connection": "ssh", "ansible_user": "root",
            "ansible_python_interpreter": "/usr/bin/python3",
            "ansible_ssh_private_key_file": ssh_path(self.key),
            # Shell words with a quoted one, as an inventory may give them (the deploy lock's ssh splits so).
            "ansible_ssh_common_args": (f"-o {shlex.quote(known_hosts_option(self.dir / 'known_hosts'))} "
                                        "-o StrictHostKeyChecking=yes -o IdentitiesOnly=yes"),
            "edge_canary_state_dir": str(self.state),
            "edge_canary_watch_python": str(VENV_BIN / "python"),
            "edge_canary_watch_manager": "supervisor",
            "edge_canary_watch_supervisor_conf": str(self.dir / "supervisord.conf"),
            "edge_canary_watch_programs_dir": str(self.dir / "supervisor.d"),
        }
        return {"all": {"children": {"edge_canary_watch": {"hosts": {NAME: host}}}}}

    def up(self) -> None:
        d = self.dir
        for sub in ("logs", "supervisor.d", self.state.name, self.key.parent.name):
            (d / sub).mkdir(parents=True, exist_ok=True)
        shutil.copy2(self.lab.lab_dir / "ssh" / "id_ed25519", self.key)
        key = d / "ssh_host_ed25519_key"
        if not key.exists():
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", NAME, "-f", str(key)], self.lab.env, check=True)
        (d / "sshd_config").write_text(
            f"ListenAddress {self.address}:22\nHostKey \"{key}\"\nPidFile \"{d / 'sshd.pid'}\"\n"
            f"AuthorizedKeysFile {keys_dir(self.lab.settings) / 'authorized_keys'}\n"
            "AuthenticationMethods publickey\nPubkeyAuthentication yes\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nUsePAM no\n"
            "AllowTcpForwarding no\nX11Forwarding no\nPrintMotd no\n")
        (d / "sshd_config").chmod(0o600)
        run(["/usr/sbin/sshd", "-t", "-f", str(d / "sshd_config")], self.lab.env, check=True)
        (d / "supervisord.conf").write_text(
            f"[unix_http_server]\nfile={d / 'supervisor.sock'}\nchmod=0700\n\n"
            f"[supervisord]\npidfile={d / 'supervisord.pid'}\nlogfile={d / 'logs/supervisord.log'}\n"
            f"childlogdir={d / 'logs'}\ndirectory={d}\n\n"
            "[rpcinterface:supervisor]\n"
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n"
            f"[supervisorctl]\nserverurl=unix://{d / 'supervisor.sock'}\n\n"
            "[include]\nfiles=supervisor.d/*.conf\n")  # relative: supervisor splits the list at blanks
        (d / "supervisor.d" / "sshd.conf").write_text(
            f"[program:sshd]\ncommand=/usr/sbin/sshd -D -e -f {shlex.quote(str(d / 'sshd_config'))}\nautorestart=true\n"
            f"redirect_stderr=true\nstdout_logfile={d / 'logs/sshd.log'}\n")
        run(["supervisord", "-c", str(d / "supervisord.conf")], self.lab.env, check=True)
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection((self.address, 22), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        kind, pub = (d / "ssh_host_ed25519_key.pub").read_text().split()[:2]
        (d / "known_hosts").write_text(f"{self.address} {kind} {pub}\n")
        (d / "watch.yml").write_text(json.dumps(self.inventory(), indent=2) + "\n")  # JSON is YAML

    def down(self) -> None:
        pid_file = self.dir / "supervisord.pid"
        if pid_file.exists():
            self.supervisorctl("shutdown")
            deadline = time.monotonic() + 30
            while pid_file.exists() and time.monotonic() < deadline:
                time.sleep(0.2)
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def running_watch_host(lab: Lab) -> Iterator[WatchHost]:
    """A watch host beside the lab's nodes for the block, down afterwards (a crashed run's leftovers first)."""
    watch = WatchHost(lab)
    watch.down()
    watch.up()
    try:
        yield watch
    finally:
        watch.down()
