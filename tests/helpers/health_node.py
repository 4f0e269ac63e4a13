"""A stand-in edge node for the health checks: GET /health answers 503 until `healthy_at` (monotonic
time) and for its first `unhealthy_requests` requests, then 200; GET /version answers 503 to its first
`unanswered_version_requests` requests (a node too busy to answer), then JSON {"version": `version`}, or
`version_body` when set.

    with health_node() as node:
        node.healthy_at = time.monotonic() + 3
        wait_healthy(node.url("/health"), ...)
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class HealthNode(ThreadingHTTPServer):
    daemon_threads = True
    healthy_at = 0.0
    version = "v2"
    version_body: bytes | None = None
    health_requests = 0
    unhealthy_requests = 0  # counted, not timed: a busy machine cannot make a poll look early or late
    version_requests = 0
    unanswered_version_requests = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


class _Handler(BaseHTTPRequestHandler):
    server: HealthNode

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        node = self.server
        if self.path == "/health":
            node.health_requests += 1
            healthy = time.monotonic() >= node.healthy_at and node.health_requests > node.unhealthy_requests
            status, body = (200 if healthy else 503), b"ok"
        else:
            node.version_requests += 1
            if node.version_requests > node.unanswered_version_requests:
                status, body = 200, node.version_body or json.dumps({"version": node.version}).encode()
            else:
                status, body = 503, b"busy"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@contextlib.contextmanager
def health_node() -> Iterator[HealthNode]:
    server = HealthNode(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, name="health-node", daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
