"""http_health: the one HTTP health GET that haproxy_server and edge_service_health share, against a
stand-in node on 127.0.0.1 (the modules through Ansible: tests/integration/plugins)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from ansible_collections.edge.canary.plugins.module_utils.http_health import (
    get,
    health_problem,
    served_version,
    wait_healthy,
)

from tests.helpers.health_node import HealthNode, health_node
from tests.helpers.paths import REPO


@pytest.fixture
def node() -> Iterator[HealthNode]:
    with health_node() as server:
        yield server


def test_get_returns_status_and_body(node: HealthNode) -> None:
    assert get(node.url("/version"), 2) == (200, b'{"version": "v2"}', "")


def test_an_error_status_is_a_status_and_a_reason(node: HealthNode) -> None:
    node.healthy_at = time.monotonic() + 3600
    assert get(node.url("/health"), 2) == (503, b"", "HTTP 503")
    assert health_problem(node.url("/health"), 2) == "HTTP 503"


def test_no_answer_is_status_0_with_the_reason() -> None:
    status, body, error = get("http://127.0.0.1:9/health", 2)  # discard port: nothing listens
    assert (status, body) == (0, b"") and error
    assert health_problem("not a url", 2)


def test_health_problem_is_none_on_200(node: HealthNode) -> None:
    assert health_problem(node.url("/health"), 2) is None


def test_wait_healthy_polls_until_200(node: HealthNode) -> None:
    node.unhealthy_requests = 2
    wait = wait_healthy(node.url("/health"), timeout=30, interval=0.05, request_timeout=5)
    assert wait.healthy and wait.status == 200
    assert wait.attempts == node.health_requests == 3


def test_wait_healthy_gives_up_at_the_timeout_with_the_last_reason(node: HealthNode) -> None:
    node.healthy_at = time.monotonic() + 3600
    wait = wait_healthy(node.url("/health"), timeout=0.3, interval=0.05, request_timeout=2)
    assert not wait.healthy and wait.status == 503 and wait.error == "HTTP 503"
    # How many polls fit in 0.3 s depends on the machine's load; that it polls at all is the test above.
    assert wait.attempts == node.health_requests >= 1 and wait.waited >= 0.3


def test_served_version_reads_the_json_key(node: HealthNode) -> None:
    assert served_version(node.url("/version"), 2) == ("v2", "")
    node.version_body = b"<html>"
    version, error = served_version(node.url("/version"), 2)
    assert version is None and "not JSON" in error


def test_modules_load_ansible_urls_only_when_they_make_a_request() -> None:
    # module_utils.urls (http.client, email, cryptography) is ~70 ms of every module run that imports it,
    # compiled from the AnsiballZ zip: a read, a push or a drain makes no request and must not pay it.
    modules = ("edge_release", "haproxy_server", "edge_service_health")
    script = ("import sys\n"
              + "".join(f"import ansible_collections.edge.canary.plugins.modules.{name}\n" for name in modules)
              + "before = 'ansible.module_utils.urls' in sys.modules\n"
              + "from ansible_collections.edge.canary.plugins.module_utils.http_health import get\n"
              + "get('http://127.0.0.1:9/', 0.5)\n"
              + "print(before, 'ansible.module_utils.urls' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": f"{REPO}:{REPO / 'collections'}"})
    assert (done.returncode, done.stdout, done.stderr) == (0, "False True\n", "")


def test_requests_share_one_tls_context(node: HealthNode, monkeypatch: pytest.MonkeyPatch) -> None:
    """open_url built a TLS context (the CA store loaded, ~33 ms of CPU) for every request, even to an
    http:// URL: a health wait polls every half second. One context now serves a module run's requests."""
    import ssl

    from ansible_collections.edge.canary.plugins.module_utils import http_health

    built = []
    real = ssl.create_default_context

    def counted(*args: object, **kwargs: object) -> ssl.SSLContext:
        built.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ssl, "create_default_context", counted)
    http_health._requests.cache_clear()
    node.unhealthy_requests = 3
    assert wait_healthy(node.url("/health"), timeout=30, interval=0.01, request_timeout=5).attempts == 4
    assert served_version(node.url("/version"), 2) == ("v2", "")
    assert len(built) == 1
