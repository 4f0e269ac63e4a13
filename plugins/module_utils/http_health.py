"""The HTTP health GET, written once: haproxy_server's check before ready and edge_service_health's wait
both go through get()."""

from __future__ import annotations

import functools
import json
import urllib.error
from dataclasses import dataclass
from typing import Any

from ansible_collections.edge.canary.plugins.module_utils.polling import poll_until


@functools.lru_cache(maxsize=1)
def _requests() -> Any:
    """open_url's defaults, with the TLS context built once per module run: open_url builds one for every
    request (even to an http:// URL), loading the CA store, ~33 ms of CPU each, 2 ms with this one, and a
    health wait makes a request every half second."""
    # Imported here, not at the top: module_utils.urls brings http.client, email and cryptography, ~70 ms
    # of a module run compiled from the AnsiballZ zip, and most runs of the modules that share this file
    # (a read, a push, a drain) make no request.
    from ansible.module_utils.urls import Request, make_context

    return Request(context=make_context())


def get(url: str, timeout: float) -> tuple[int, bytes, str]:
    """(status, body, error): status 0 and the error when there was no HTTP answer."""
    from ansible.module_utils.urls import ConnectionError as UrlsConnectionError

    try:
        with _requests().open("GET", url, timeout=timeout) as answer:
            return answer.status, answer.read(), ""
    except urllib.error.HTTPError as exc:
        return exc.code, b"", f"HTTP {exc.code}"
    except (OSError, ValueError, UrlsConnectionError) as exc:  # no answer: refused, timed out, TLS, bad URL
        return 0, b"", str(getattr(exc, "reason", None) or exc)


def health_problem(url: str, timeout: float) -> str | None:
    """None when the URL answers 200, else why not (status or error)."""
    status, _body, error = get(url, timeout)
    return None if status == 200 else error or f"HTTP {status}"


@dataclass(frozen=True)
class HealthWait:
    status: int  # of the last attempt, 0 when there was no answer
    attempts: int
    waited: float
    error: str  # why the last attempt was not a 200

    @property
    def healthy(self) -> bool:
        return self.status == 200


def wait_healthy(url: str, timeout: float, interval: float, request_timeout: float) -> HealthWait:
    """GET `url` every `interval` seconds until it answers 200, for at most `timeout` seconds."""
    attempts = 0

    def attempt() -> tuple[int, str]:
        nonlocal attempts
        attempts += 1
        status, _body, error = get(url, request_timeout)
        return status, error

    outcome = poll_until(attempt, lambda answer: answer[0] == 200, timeout, interval)
    status, error = outcome.last
    return HealthWait(status, attempts, round(outcome.waited, 3), error or f"HTTP {status}")


def served_version(url: str, request_timeout: float) -> tuple[str | None, str]:
    """(version, error): the JSON `version` key the URL answers, or None and why not."""
    status, body, error = get(url, request_timeout)
    if status != 200:
        return None, error or f"HTTP {status}"
    try:
        return str(json.loads(body).get("version", "")), ""
    except (ValueError, AttributeError):
        return None, f"not JSON with a version key: {body[:80]!r}"
