"""The edge binary's HTTP server, signal handling and command line."""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import socketserver
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NoReturn
from urllib.parse import urlsplit

from .build_info import BuildInfo, load_build_info
from .config import ConfigWatcher
from .faults import FaultProfile, added_latency, injected_error, noise_delay, noise_error, parse_fault_spec
from .fnv import bucket
from .metrics import CONTENT_TYPE, RequestMetrics, render

NON_REQUEST_PATHS = ("/health", "/version", "/metrics")
DEFAULT_DRAIN_TIMEOUT_S = 30.0
IDLE_SOCKET_TIMEOUT_S = 30.0


def client_ip(forwarded_for: str | None, peer: str) -> str:
    """First address of X-Forwarded-For (set by HAProxy or the load generator), else the peer."""
    if forwarded_for is not None:
        return forwarded_for.split(",")[0].strip()
    return peer


def choose_variant(ip: str, rollout_pct: int) -> str:
    return "new" if bucket(ip) < rollout_pct else "legacy"


@dataclass
class EdgeApp:
    """Everything a request handler needs; one per process."""

    build: BuildInfo
    profile: FaultProfile
    config: ConfigWatcher
    metrics: RequestMetrics
    rng: random.Random


class EdgeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "edge"
    timeout = IDLE_SOCKET_TIMEOUT_S  # a silent client must not hold a drain forever
    server: EdgeServer

    def do_GET(self) -> None:
        self._dispatch(send_body=True)

    def do_HEAD(self) -> None:
        self._dispatch(send_body=False)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # no access log: at canary rates it would only fill supervisor's log files

    def _dispatch(self, send_body: bool) -> None:
        app = self.server.app
        path = urlsplit(self.path).path
        if path == "/health":
            code = 503 if app.profile.health_fail else 200
            self._reply(code, b"ok\n" if code == 200 else b"unhealthy\n", send_body)
        elif path == "/version":
            body = {"version": app.build.version, "fault": app.build.fault, "pid": os.getpid()}
            self._reply(200, json.dumps(body).encode() + b"\n", send_body, "application/json")
        elif path == "/metrics":
            text = render(
                app.metrics.snapshot(),
                app.build.version,
                app.build.fault,
                app.config.current().rollout_pct,
            )
            self._reply(200, text.encode(), send_body, CONTENT_TYPE)
        else:
            self._serve_request(app, send_body)

    def _serve_request(self, app: EdgeApp, send_body: bool) -> None:
        started = time.monotonic()
        ip = client_ip(self.headers.get("X-Forwarded-For"), self.client_address[0])
        config = app.config.current()
        variant = choose_variant(ip, config.rollout_pct)
        delay = added_latency(app.profile, variant, app.rng) + noise_delay(config.noise_latency, app.rng)
        if delay:
            time.sleep(delay)
        code = injected_error(app.profile, variant, app.rng) or noise_error(config.noise_errors, app.rng) or 200
        body = f"edge {app.build.version} variant={variant}\n" if code == 200 else f"error {code}\n"
        # Count before answering so that a scrape right after the response already sees it.
        app.metrics.observe(code, variant, time.monotonic() - started)
        self._reply(code, body.encode(), send_body, variant=variant)

    def _reply(
        self,
        code: int,
        body: bytes,
        send_body: bool,
        content_type: str = "text/plain; charset=utf-8",
        variant: str | None = None,
    ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Edge-Version", self.server.app.build.version)
        if variant is not None:
            self.send_header("X-Edge-Variant", variant)
        # One request per connection: a drain then only has to wait for requests, not sockets.
        self.send_header("Connection", "close")
        self.end_headers()
        if send_body:
            self.wfile.write(body)


class EdgeServer(ThreadingHTTPServer):
    """A threading server that knows its in-flight requests, so that it can drain them."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 128  # the default 5 drops SYNs when the load balancer opens a burst

    def __init__(self, address: tuple[str, int], app: EdgeApp) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.app = app
        self._inflight: set[threading.Thread] = set()
        self._inflight_lock = threading.Lock()
        super().__init__(address, EdgeHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind() does a reverse DNS lookup (getfqdn) that can stall startup.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]

    def handle_error(self, request: Any, client_address: Any) -> None:
        # One line, not a traceback: a client giving up on a slow answer is routine.
        exc = sys.exc_info()[1]
        _log(f"request from {client_address[0]} failed: {type(exc).__name__}: {exc}")

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._run_request, args=(request, client_address), daemon=True
        )
        with self._inflight_lock:
            self._inflight.add(thread)
        thread.start()

    def _run_request(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self._inflight_lock:
                self._inflight.discard(threading.current_thread())

    def accept_backlog(self) -> int:
        """Serve connections the kernel already accepted, so that none is reset on exit."""
        self.socket.setblocking(False)
        served = 0
        while True:
            try:
                request, client_address = self.socket.accept()
            except OSError:  # BlockingIOError: the backlog is empty
                return served
            request.setblocking(True)
            self.process_request(request, client_address)
            served += 1

    def drain(self, timeout: float) -> int:
        """Wait for in-flight requests; returns how many were still running at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            with self._inflight_lock:
                pending = list(self._inflight)
            if not pending:
                return 0
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return len(pending)
            pending[0].join(min(remaining, 0.5))


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"edge: {message} (see --help)\n")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = _Parser(
        prog="edge",
        description="Sample edge binary: /health, /version, /metrics; any other path is a request.",
    )
    parser.add_argument("--version", action="store_true", help="print the baked version and exit")
    parser.add_argument("--port", type=int, help="TCP port to listen on")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--config", help="flat key=value config file (rollout_pct), re-read live")
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=DEFAULT_DRAIN_TIMEOUT_S,
        help="on SIGTERM/SIGINT, seconds to wait for in-flight requests (default %(default)s)",
    )
    args = parser.parse_args(argv)
    if not args.version:
        if args.port is None or args.config is None:
            parser.error("--port and --config are required to serve")
        if not 1 <= args.port <= 65535:
            parser.error(f"--port {args.port} must be between 1 and 65535")
        if args.drain_timeout <= 0:
            parser.error("--drain-timeout must be > 0")
    return args


def _log(message: str) -> None:
    print(f"edge: {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    build = load_build_info()
    if args.version:
        print(build.version)
        return 0
    profile = parse_fault_spec(build.fault)
    if profile.crash_start:
        _log(f"build {build.version} has the crash=start fault baked in: exiting (bad release)")
        return 1
    app = EdgeApp(build, profile, ConfigWatcher(args.config), RequestMetrics(), random.Random())
    try:
        server = EdgeServer((args.host, args.port), app)
    except OSError as exc:
        _log(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}")
        return 1

    stopping = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        if not stopping.is_set():
            stopping.set()
            _log(f"{signal.Signals(signum).name}: no longer accepting, draining in-flight requests")
            # shutdown() waits for serve_forever(), which runs in this (the main) thread.
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    _log(
        f"version {build.version} fault={build.fault} pid={os.getpid()} "
        f"listening on {args.host}:{args.port} config={args.config}"
    )
    with server:
        server.serve_forever(poll_interval=0.2)
        server.accept_backlog()
        server.socket.close()
        left = server.drain(args.drain_timeout)
    if left:
        _log(f"{left} request(s) still in flight after {args.drain_timeout:g}s: exiting anyway")
        return 1
    _log("drained, exiting")
    return 0
