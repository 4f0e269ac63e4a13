#!/usr/bin/python
"""Ansible module: wait for the edge node's health check, then check the version it serves.

One module run polls as often as it likes (a uri task with retries starts a new Python process per
attempt). Runs on the node with only the standard library and ansible-core's module_utils.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
---
module: edge_service_health
short_description: Wait until the edge node answers its health check, then check its version
description:
  - GETs I(health_url) every I(interval) seconds until it answers 200, for at most I(timeout)
    seconds, then, when I(expected_version) is given, GETs I(version_url) once and requires its
    JSON C(version) to be that. Read-only: it runs the same in check mode.
options:
  health_url:
    description: The node's health URL.
    type: str
    required: true
  timeout:
    description: Longest wait for a 200 from I(health_url), in seconds.
    type: float
    default: 60
  interval:
    description: Seconds between two health attempts.
    type: float
    default: 0.5
  request_timeout:
    description: Timeout of one request, in seconds.
    type: float
    default: 2
  version_url:
    description: The node's version URL (JSON with a C(version) key).
    type: str
  expected_version:
    description: Version the node must report; omitted or empty means the version is not checked.
    type: str
author:
  - edge-canary
"""

EXAMPLES = r"""
- name: Wait for the node's health check, then check it serves v2
  edge_service_health:
    health_url: http://127.0.0.1:8080/health
    version_url: http://127.0.0.1:8080/version
    expected_version: v2
    timeout: 60
"""

RETURN = r"""
status:
  description: HTTP status of the last health attempt (0 when there was no answer).
  returned: always
  type: int
attempts:
  description: Health attempts made.
  returned: always
  type: int
waited:
  description: Seconds spent waiting for the health check.
  returned: always
  type: float
version:
  description: Version the node reported (only when I(expected_version) is given).
  returned: when checked
  type: str
"""


def get(url: str, timeout: float) -> tuple[int, bytes, str]:
    """(status, body, error): status 0 and the error when there was no HTTP answer."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:  # noqa: S310 (the operator's URL)
            return answer.status, answer.read(), ""
    except urllib.error.HTTPError as exc:
        return exc.code, b"", f"HTTP {exc.code}"
    except (OSError, ValueError) as exc:
        return 0, b"", str(getattr(exc, "reason", None) or exc)


def wait_healthy(url: str, timeout: float, interval: float, request_timeout: float) -> dict[str, Any]:
    start = time.monotonic()
    attempts, status, error = 0, 0, ""
    while True:
        attempts += 1
        status, _, error = get(url, request_timeout)
        waited = time.monotonic() - start
        if status == 200 or waited >= timeout:
            return {"status": status, "attempts": attempts, "waited": round(waited, 3),
                    "error": error or f"HTTP {status}"}
        time.sleep(max(0.0, min(interval, timeout - waited)))


def served_version(url: str, request_timeout: float) -> tuple[str | None, str]:
    status, body, error = get(url, request_timeout)
    if status != 200:
        return None, error or f"HTTP {status}"
    try:
        return str(json.loads(body).get("version", "")), ""
    except (ValueError, AttributeError):
        return None, f"not JSON with a version key: {body[:80]!r}"


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "health_url": {"type": "str", "required": True},
            "timeout": {"type": "float", "default": 60.0},
            "interval": {"type": "float", "default": 0.5},
            "request_timeout": {"type": "float", "default": 2.0},
            "version_url": {"type": "str"},
            "expected_version": {"type": "str"},
        },
        supports_check_mode=True,
    )
    p = module.params
    if p["timeout"] < 0 or p["interval"] <= 0 or p["request_timeout"] <= 0:
        module.fail_json(msg="timeout must be 0 or more, interval and request_timeout above 0 (seconds)")
    health = wait_healthy(p["health_url"], p["timeout"], p["interval"], p["request_timeout"])
    result: dict[str, Any] = {"changed": False, **{k: health[k] for k in ("status", "attempts", "waited")}}
    if health["status"] != 200:
        module.fail_json(msg=f"the node did not answer 200 at {p['health_url']} within {p['timeout']:g} s "
                             f"({health['error']} after {health['attempts']} attempts); see its service log",
                         **result)
    expected = p["expected_version"] or ""
    if expected:
        if not p["version_url"]:
            module.fail_json(msg="expected_version needs version_url", **result)
        version, error = served_version(p["version_url"], p["request_timeout"])
        result["version"] = version
        if version != expected:
            module.fail_json(msg=f"the node serves {version or '?'} at {p['version_url']}, not {expected}"
                                 + (f" ({error})" if error else "") + "; the new binary is not the one running",
                             **result)
    module.exit_json(msg=f"healthy after {health['waited']:g} s", **result)


if __name__ == "__main__":
    main()
