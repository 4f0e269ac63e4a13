"""A token- or password-protected Prometheus for tests: a local HTTP server that refuses (401) any
request without the expected bearer token or basic auth, and otherwise answers `vector(1)` itself or
forwards the query to a real Prometheus. It records the Authorization header of every request."""

from __future__ import annotations

import base64
import json
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Seen:
    authorizations: list[str] = field(default_factory=list)
    refused: int = 0


@contextmanager
def protected_prometheus(*, token: str | None = None, user: str | None = None, password: str | None = None,
                         upstream: str | None = None) -> Iterator[tuple[str, Seen]]:
    """Yields (base URL without credentials, what it saw)."""
    allowed = set()
    if token:
        allowed.add(f"Bearer {token}")
    if user is not None:
        allowed.add("Basic " + base64.b64encode(f"{user}:{password or ''}".encode()).decode())
    seen = Seen()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            header = self.headers.get("Authorization", "")
            seen.authorizations.append(header)
            if header not in allowed:
                seen.refused += 1
                self._send(401, b"unauthorized\n")
                return
            if upstream is None:
                body = json.dumps({"status": "success", "data": {"resultType": "scalar", "result": [0, "1"]}})
                self._send(200, body.encode())
                return
            try:
                with urllib.request.urlopen(upstream + self.path, timeout=10) as answer:  # noqa: S310 - test
                    self._send(answer.status, answer.read())
            except OSError as exc:
                self._send(502, str(exc).encode())

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
