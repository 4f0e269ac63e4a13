"""The Prometheus client against a small local HTTP server that records what it is sent."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.helpers.procs import free_port
from watcher.prom import PromClient, PromError


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a handler still sleeping must not hold up the teardown

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the client hung up first (the timeout test): expected, not worth a traceback


class Recorder:
    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []
        self.paths: list[str] = []
        self.status = 200
        self.body: bytes = json.dumps(
            {"status": "success", "data": {"resultType": "vector", "result": []}}
        ).encode()
        self.delay = 0.0


@pytest.fixture
def server() -> Iterator[tuple[str, Recorder]]:
    rec = Recorder()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            rec.headers.append(dict(self.headers))
            rec.paths.append(self.path)
            if rec.delay:
                time.sleep(rec.delay)
            self.send_response(rec.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(rec.body)))
            self.end_headers()
            self.wfile.write(rec.body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = QuietServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", rec
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_bearer_token_goes_in_the_authorization_header(server: tuple[str, Recorder]) -> None:
    url, rec = server
    PromClient(url, token="t0ken-abc").query("up")
    assert rec.headers[0]["Authorization"] == "Bearer t0ken-abc"
    assert rec.paths[0].startswith("/api/v1/query?query=up")
    assert "t0ken" not in rec.paths[0]


def test_basic_auth_from_the_url_is_sent_but_kept_out_of_the_url(
    server: tuple[str, Recorder],
) -> None:
    url, rec = server
    client = PromClient(url.replace("http://", "http://alice:s%40cret@"))
    client.query("up")
    expected = base64.b64encode(b"alice:s@cret").decode()
    assert rec.headers[0]["Authorization"] == f"Basic {expected}"
    assert "alice" not in client.base_url and "cret" not in client.base_url


def test_no_auth_sends_no_authorization_header(server: tuple[str, Recorder]) -> None:
    url, rec = server
    PromClient(url).query("up")
    assert "Authorization" not in rec.headers[0]


def test_api_error_with_http_status_names_the_error(server: tuple[str, Recorder]) -> None:
    url, rec = server
    rec.status = 400
    rec.body = json.dumps({"status": "error", "errorType": "bad_data", "error": "bad"}).encode()
    with pytest.raises(PromError, match=r"query 'sum\(': Prometheus bad_data: bad"):
        PromClient(url).query("sum(")


def test_http_error_without_json(server: tuple[str, Recorder]) -> None:
    url, rec = server
    rec.status = 502
    rec.body = b"<html>bad gateway</html>"
    with pytest.raises(PromError, match="HTTP 502: <html>bad gateway"):
        PromClient(url).query("up")


def test_invalid_json_with_200(server: tuple[str, Recorder]) -> None:
    url, rec = server
    rec.body = b"not json"
    with pytest.raises(PromError, match="invalid JSON"):
        PromClient(url).query("up")


def test_timeout_is_a_prom_error(server: tuple[str, Recorder]) -> None:
    url, rec = server
    rec.delay = 1.5
    with pytest.raises(PromError, match="did not answer within 0.3s"):
        PromClient(url, timeout=0.3).query("up")


def test_unreachable_is_a_prom_error_without_secrets() -> None:
    url = f"http://bob:hunter2@127.0.0.1:{free_port()}"
    with pytest.raises(PromError) as err:
        PromClient(url, timeout=2).query("up")
    assert "cannot reach Prometheus at http://127.0.0.1:" in str(err.value)
    assert "Connection refused" in str(err.value)
    assert "hunter2" not in str(err.value) and "bob" not in str(err.value)


def test_the_evaluation_time_is_pinned_when_given(server: tuple[str, Recorder]) -> None:
    url, rec = server
    client = PromClient(url)
    client.query("up", time=1_700_000_000.25)
    client.query("up")
    assert "time=1700000000.250" in rec.paths[0]
    assert "time=" not in rec.paths[1]


def test_warnings_mean_a_partial_answer_and_are_never_data(server: tuple[str, Recorder]) -> None:
    url, rec = server
    rec.body = json.dumps(
        {"status": "success", "warnings": ["store eu-1 unreachable"],
         "data": {"resultType": "vector", "result": []}}
    ).encode()  # fmt: skip
    with pytest.raises(PromError, match="warnings \\(partial data\\): store eu-1 unreachable"):
        PromClient(url).query("up")
