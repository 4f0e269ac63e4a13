#!/usr/bin/python
"""Ansible module edge_service_health: the shell (documentation, arguments, messages).

The GETs and the wait are module_utils.http_health's, shared with haproxy_server's check before ready.
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: edge_service_health
short_description: Wait until the edge node answers its health check, then check its version
description:
  - GETs I(health_url) every I(interval) seconds until it answers 200, for at most I(timeout)
    seconds, then, when I(expected_version) is given, GETs I(version_url) once and requires its
    JSON C(version) to be that.
  - One module run polls as often as it likes, where a C(uri) task with retries starts a new
    Python process per attempt.
attributes:
  check_mode:
    support: full
    description: Read-only, so it runs the same in check mode.
  diff_mode:
    support: none
    description: Changes nothing, so there is no diff.
  platform:
    support: full
    platforms: posix
    description: Runs where the URLs are reachable (the node itself in the roles); Python standard
      library only.
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
  - edge-canary maintainers (@edge-canary)
"""

EXAMPLES = r"""
- name: Wait for the node's health check, then check it serves v2
  edge.canary.edge_service_health:
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

# Imports after the documentation: validate-modules (ansible-test sanity) asks for that order.
from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.edge.canary.plugins.module_utils.http_health import served_version, wait_healthy  # noqa: E402


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
    result: dict[str, Any] = {"changed": False, "status": health.status, "attempts": health.attempts,
                              "waited": health.waited}
    if not health.healthy:
        module.fail_json(msg=f"the node did not answer 200 at {p['health_url']} within {p['timeout']:g} s "
                             f"({health.error} after {health.attempts} attempts); see its service log",
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
    module.exit_json(msg=f"healthy after {health.waited:g} s", **result)


if __name__ == "__main__":
    main()
