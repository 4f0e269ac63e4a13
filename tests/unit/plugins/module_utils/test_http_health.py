"""http_health: the one HTTP health GET that haproxy_server and edge_service_health share, against a
stand-in node on 127.0.0.1 (the modules through Ansible: tests/integration/plugins)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from ansible_collections.edge.canary.plugins.module_utils.http_health import (
    get,
    health_problem,
    served_version,
    wait_healthy,
)


class Node(ThreadingHTTPServer):
    daemon_threads = True
    health = [200]  # status of each /health answer in turn; the last one repeats
    body = json.dumps({"version": "v2"}).encode()
    requests = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


class _Handler(BaseHTTPRequestHandler):
    server: Node

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        node = self.server
        node.requests += 1
        if self.path == "/health":
            status, body = node.health[min(node.requests, len(node.health)) - 1], b"ok"
        else:
            status, body = 200, node.body
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def node() -> Iterator[Node]:
    server = Node(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def test_get_returns_status_and_body(node: Node) -> None:
    assert get(node.url("/version"), 2) == (200, node.body, "")


def test_an_error_status_is_a_status_and_a_reason(node: Node) -> None:
    node.health = [503]
    assert get(node.url("/health"), 2) == (503, b"", "HTTP 503")
    assert health_problem(node.url("/health"), 2) == "HTTP 503"


def test_no_answer_is_status_0_with_the_reason() -> None:
    status, body, error = get("http://127.0.0.1:9/health", 2)  # discard port: nothing listens
    assert (status, body) == (0, b"") and error
    assert health_problem("not a url", 2)


def test_health_problem_is_none_on_200(node: Node) -> None:
    assert health_problem(node.url("/health"), 2) is None


def test_wait_healthy_polls_until_200(node: Node) -> None:
    node.health = [503, 503, 200]
    wait = wait_healthy(node.url("/health"), timeout=10, interval=0.05, request_timeout=2)
    assert wait.healthy and wait.attempts == 3 and wait.waited < 10


def test_wait_healthy_gives_up_at_the_timeout_with_the_last_reason(node: Node) -> None:
    node.health = [503]
    wait = wait_healthy(node.url("/health"), timeout=0.3, interval=0.05, request_timeout=2)
    assert not wait.healthy and wait.status == 503 and wait.error == "HTTP 503"
    assert wait.attempts >= 2 and 0.3 <= wait.waited < 3


def test_served_version_reads_the_json_key(node: Node) -> None:
    assert served_version(node.url("/version"), 2) == ("v2", "")
    node.body = b"<html>"
    version, error = served_version(node.url("/version"), 2)
    assert version is None and "not JSON" in error
