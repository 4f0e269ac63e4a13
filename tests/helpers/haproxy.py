"""A throwaway real HAProxy for tests, with small HTTP servers behind it.

    with haproxy_instance(tmp_path, servers=("n1", "n2"), down=("down1",)) as lb:
        lb.cli("show info")
        lb.server_state("n1").admin_bits
        with lb.holding_session("n1"):  # a slow request stays open on n1
            ...

Everything binds to free ephemeral ports and lives in the given directory; HAProxy and the
HTTP servers are stopped when the context exits. The state readers here are deliberately
independent of the module under test (its parser is not used to check it).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.helpers.procs import free_port, read_text, running

HOLD_LIMIT = 60.0  # a held request never outlives this, even if a test forgets to release it


class NodeHttpServer(ThreadingHTTPServer):
    """A stand-in edge node: GET /health answers `health_status`, GET /hold waits for release()."""

    daemon_threads = True

    def __init__(self, name: str) -> None:
        super().__init__(("127.0.0.1", 0), _NodeHandler)
        self.name = name
        self.health_status = 200
        self.release_event = threading.Event()
        self._thread = threading.Thread(target=self.serve_forever, name=f"node-{name}", daemon=True)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/health"

    def start(self) -> NodeHttpServer:
        self._thread.start()
        return self

    def release(self) -> None:
        self.release_event.set()

    def handle_error(self, request: object, client_address: object) -> None:
        """Stay quiet: HAProxy's health checks hang up without reading the body."""

    def stop(self) -> None:
        self.release()
        self.shutdown()
        self.server_close()
        self._thread.join(10)


class _NodeHandler(BaseHTTPRequestHandler):
    server: NodeHttpServer
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        status = 200
        if self.path.startswith("/hold"):
            self.server.release_event.wait(HOLD_LIMIT)
        elif self.path.startswith("/health"):
            status = self.server.health_status
        body = f"{self.server.name}\n".encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@dataclass(frozen=True)
class RawServerState:
    op_state: int
    admin_bits: int
    weight: int


@dataclass
class Haproxy:
    """A running HAProxy: its sockets, frontend and the HTTP servers behind backend `backend`."""

    directory: Path
    backend: str
    frontend_port: int
    admin_socket: Path
    operator_socket: Path
    user_socket: Path
    tcp_admin: str | None
    nodes: dict[str, NodeHttpServer] = field(default_factory=dict)
    down: tuple[str, ...] = ()

    @property
    def log(self) -> str:
        return read_text(self.directory / "haproxy.log")

    def cli(self, command: str, sock: Path | None = None, timeout: float = 10.0) -> str:
        """One command over a unix socket (admin by default), whole answer as text."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(timeout)
            conn.connect(str(sock or self.admin_socket))
            conn.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := conn.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def server_states(self, backend: str | None = None) -> dict[str, RawServerState]:
        """The raw columns, read here and not by the haproxy_server module's parser: its tests check that module."""
        backend = backend or self.backend
        lines = self.cli(f"show servers state {backend}").splitlines()
        header_line = next(ln for ln in lines if ln.startswith("# be_id"))
        header = header_line[1:].split()
        states = {}
        for line in lines:
            if not line.strip() or line.startswith("#") or line.strip().isdigit():
                continue
            row = dict(zip(header, line.split(), strict=False))
            states[row["srv_name"]] = RawServerState(
                int(row["srv_op_state"]), int(row["srv_admin_state"]), int(row["srv_uweight"])
            )
        return states

    def server_state(self, server: str, backend: str | None = None) -> RawServerState:
        return self.server_states(backend)[server]

    def stat(self, server: str) -> dict[str, str]:
        lines = self.cli("show stat").splitlines()
        header = lines[0].lstrip("# ").split(",")
        for line in lines[1:]:
            row = dict(zip(header, line.split(","), strict=False))
            if row.get("pxname") == self.backend and row.get("svname") == server:
                return row
        raise KeyError(server)

    def version(self) -> str:
        for line in self.cli("show info").splitlines():
            if line.startswith("Version:"):
                return line.split(":", 1)[1].strip()
        raise AssertionError("no Version in show info")

    def wait_for(self, predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"HAProxy: {what} not reached after {timeout:g}s\n{self.log}")
            time.sleep(0.1)

    def bring_back_under_slowstart(self, server: str, node: NodeHttpServer) -> None:
        """HAProxy sees `server` fail its health check (as during a restart), then pass it again into the
        backend's slowstart: operational state 1, `starting`, routed to at a rising weight."""
        node.health_status = 503
        self.wait_for(lambda: self.server_state(server).op_state == 0, f"{server} seen down")
        node.health_status = 200
        self.wait_for(lambda: self.server_state(server).op_state == 1, f"{server} warming up (slowstart)")

    def wait_checks_settled(self, timeout: float = 30.0) -> None:
        """Until health checks have every node UP and every `down` server DOWN."""

        def settled() -> bool:
            states = self.server_states()
            return all(states[n].op_state == 2 for n in self.nodes) and all(
                states[d].op_state == 0 for d in self.down
            )

        self.wait_for(settled, "health checks settled", timeout)

    @contextlib.contextmanager
    def holding_session(self, server: str, timeout: float = 30.0) -> Iterator[threading.Thread]:
        """A slow request through the frontend pinned to `server`, open until the block ends.

        The block can call `self.nodes[server].release()` itself to close it earlier.
        """
        node = self.nodes[server]
        node.release_event.clear()
        outcome: list[object] = []

        def client() -> None:
            req = urllib.request.Request(
                f"http://127.0.0.1:{self.frontend_port}/hold",
                headers={"X-Server": server, "Connection": "close"},
            )
            try:
                with urllib.request.urlopen(req, timeout=HOLD_LIMIT + 5) as resp:
                    outcome.append(resp.status)
            except OSError as exc:
                outcome.append(exc)

        thread = threading.Thread(target=client, name=f"hold-{server}", daemon=True)
        thread.start()
        try:
            self.wait_for(
                lambda: int(self.stat(server)["scur"] or 0) >= 1,
                f"a session open on {server}",
                timeout,
            )
            yield thread
        finally:
            node.release()
            thread.join(HOLD_LIMIT + 10)


def _config(
    lb: Haproxy,
    server_ports: dict[str, int],
    extra_config: str,
) -> str:
    tcp_line = f"    stats socket {lb.tcp_admin} level admin\n" if lb.tcp_admin else ""
    use_server = "".join(
        f"    use-server {name} if {{ req.hdr(x-server) -m str {name} }}\n" for name in server_ports
    )
    servers = "".join(
        f"    server {name} 127.0.0.1:{port}\n" for name, port in server_ports.items()
    )
    return (
        "global\n"
        f"    stats socket {lb.admin_socket} mode 600 level admin\n"
        f"    stats socket {lb.operator_socket} mode 600 level operator\n"
        f"    stats socket {lb.user_socket} mode 600 level user\n"
        f"{tcp_line}"
        "defaults\n"
        "    mode http\n"
        "    timeout connect 2s\n"
        "    timeout client 90s\n"
        "    timeout server 90s\n"
        "    timeout queue 10s\n"
        "frontend fe\n"
        f"    bind 127.0.0.1:{lb.frontend_port}\n"
        f"    default_backend {lb.backend}\n"
        f"backend {lb.backend}\n"
        "    option httpchk GET /health\n"
        "    default-server check inter 200ms fall 1 rise 1\n"
        f"{use_server}{servers}{extra_config}"
    )


@contextlib.contextmanager
def haproxy_instance(
    directory: Path,
    servers: Sequence[str] = ("n1", "n2"),
    down: Sequence[str] = ("down1",),
    backend: str = "edge",
    tcp_admin: bool = False,
    extra_config: str = "",
    nodes: dict[str, NodeHttpServer] | None = None,
) -> Iterator[Haproxy]:
    """Start HAProxy in `directory` (a pytest tmp_path) and stop it, and its nodes, on exit.

    `servers` get a NodeHttpServer each (or the one given in `nodes`, shared between
    instances if wanted); `down` servers point at a closed port so their checks fail.
    """
    haproxy_bin = shutil.which("haproxy") or "/usr/sbin/haproxy"
    directory.mkdir(parents=True, exist_ok=True)
    # Unix socket paths are limited to 108 bytes; pytest's tmp_path can be longer.
    sockets = Path(tempfile.mkdtemp(prefix="hap-"))
    lb = Haproxy(
        directory=directory,
        backend=backend,
        frontend_port=free_port(),
        admin_socket=sockets / "admin.sock",
        operator_socket=sockets / "operator.sock",
        user_socket=sockets / "user.sock",
        tcp_admin=f"127.0.0.1:{free_port()}" if tcp_admin else None,
        down=tuple(down),
    )
    given = nodes or {}
    owned: list[NodeHttpServer] = []
    try:
        for name in servers:
            if name in given:
                lb.nodes[name] = given[name]
            else:
                lb.nodes[name] = NodeHttpServer(name).start()
                owned.append(lb.nodes[name])
        ports = {name: node.port for name, node in lb.nodes.items()}
        ports.update({name: free_port() for name in down})  # nothing listens there
        cfg = directory / "haproxy.cfg"
        cfg.write_text(_config(lb, ports, extra_config))
        with running([haproxy_bin, "-db", "-f", cfg], log_path=directory / "haproxy.log") as proc:
            deadline = time.monotonic() + 30
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"haproxy exited with {proc.returncode}:\n{lb.log}")
                with contextlib.suppress(OSError):
                    if "Version:" in lb.cli("show info", timeout=2):
                        break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"haproxy admin socket never answered:\n{lb.log}")
                time.sleep(0.1)
            lb.wait_checks_settled()
            yield lb
    finally:
        for node in owned:
            node.stop()
        shutil.rmtree(sockets, ignore_errors=True)


@contextlib.contextmanager
def hung_unix_socket(path: Path) -> Iterator[Path]:
    """A unix socket that accepts connections (kernel backlog) and never answers."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(path))
        listener.listen(16)
        yield path


@contextlib.contextmanager
def recording_unix_socket(path: Path) -> Iterator[list[bytes]]:
    """A unix socket that records every connection's bytes (one list entry per connection)."""
    received: list[bytes] = []
    stop = threading.Event()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(16)
    listener.settimeout(0.2)

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                data = b""
                with contextlib.suppress(OSError):
                    while chunk := conn.recv(65536):
                        data += chunk
                        if b"\n" in data:
                            break
                received.append(data)

    thread = threading.Thread(target=serve, name="recording-socket", daemon=True)
    thread.start()
    try:
        yield received
    finally:
        stop.set()
        thread.join(10)
        listener.close()

