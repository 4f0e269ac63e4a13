#!/usr/bin/python
"""Ansible module edge_service_health: the shell (documentation, arguments, messages).

The GETs and the wait are module_utils.http_health's, shared with haproxy_server's check before ready;
the restart's commands are module_utils.service_restart's; the record, module_utils.release_status's
(edge_release's own state=serving).
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: edge_service_health
short_description: Restart the edge service if asked, wait until it answers its health check, check its version
description:
  - With I(restart), first restarts the edge service under I(manager) (C(supervisorctl restart),
    or systemd reset-failed then restart; see module_utils/service_restart.py for why).
  - Then GETs I(health_url) every I(interval) seconds until it answers 200, for at most I(timeout)
    seconds, then, when I(expected_version) is given, GETs I(version_url) once and requires its
    JSON C(version) to be that.
  - With I(record_serving), once the node is healthy (and serves I(expected_version)), records in
    the node's release record that the service serves its current binary, as edge_release
    C(state=serving) does (same code), without a module run of its own.
  - One module run restarts and polls as often as it likes, where a C(command) task and a C(uri)
    task with retries start a new Python process each, per attempt.
attributes:
  check_mode:
    support: full
    description: The restart and the record are only reported (changed), not done; the health check
      runs as usual.
  diff_mode:
    support: none
    description: Changes nothing, so there is no diff.
  platform:
    support: full
    platforms: posix
    description: Runs where the URLs are reachable (the node itself in the roles); Python standard
      library only.
options:
  restart:
    description: Restart the service before the health check.
    type: bool
    default: false
  manager:
    description: Process manager that runs the edge binary (with I(restart)).
    type: str
    choices: [supervisor, systemd]
    default: systemd
  service_name:
    description: The supervisor program or systemd unit (without C(.service)) to restart; required with I(restart).
    type: str
  supervisor_conf:
    description: supervisord configuration file to talk to (I(manager=supervisor)).
    type: str
    default: /etc/supervisor/supervisord.conf
  health_url:
    description: The node's health URL; required unless I(restart) (then no health check when omitted).
    type: str
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
  record_serving:
    description:
      - After a passed health (and version) check, record in the release record that the service
        serves the binary at I(binary) (its sha256); nothing is recorded when the check fails.
      - Requires I(health_url).
    type: dict
    suboptions:
      binary:
        description: Absolute path of the edge binary the service runs.
        type: path
        required: true
      config:
        description: Absolute path of the edge config file, if the node has one.
        type: path
      record:
        description: Absolute path of the node's release record.
        type: path
        required: true
      good:
        description: The served release also becomes the node's last-known-good (a canary's only
          once promoted).
        type: bool
        default: true
author:
  - edge-canary maintainers (@edge-canary)
"""

EXAMPLES = r"""
- name: Restart the edge unit, wait for its health check, then check it serves v2
  edge.canary.edge_service_health:
    restart: true
    manager: systemd
    service_name: edge
    health_url: http://127.0.0.1:8080/health
    version_url: http://127.0.0.1:8080/version
    expected_version: v2

- name: Restart, check health and version, then record that the node serves its binary
  edge.canary.edge_service_health:
    restart: true
    service_name: edge
    health_url: http://127.0.0.1:8080/health
    version_url: http://127.0.0.1:8080/version
    expected_version: v2
    record_serving:
      binary: /opt/edge/edge
      record: /opt/edge/release.json

- name: Wait for the node's health check, then check it serves v2
  edge.canary.edge_service_health:
    health_url: http://127.0.0.1:8080/health
    version_url: http://127.0.0.1:8080/version
    expected_version: v2
    timeout: 60
"""

RETURN = r"""
restarted:
  description: The restart's commands and what each answered (only with I(restart), not in check mode).
  returned: with restart
  type: list
  elements: dict
status:
  description: HTTP status of the last health attempt (0 when there was no answer).
  returned: with health_url
  type: int
attempts:
  description: Health attempts made.
  returned: with health_url
  type: int
waited:
  description: Seconds spent waiting for the health check.
  returned: with health_url
  type: float
version:
  description: Version the node reported (only when I(expected_version) is given).
  returned: when checked
  type: str
serving:
  description: What the record step did (edge_release C(state=serving)'s C(action), C(msg) and C(record)).
  returned: with record_serving, once healthy
  type: dict
"""

# Imports after the documentation: validate-modules (ansible-test sanity) asks for that order.
import os  # noqa: E402
from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.edge.canary.plugins.module_utils.http_health import served_version, wait_healthy  # noqa: E402
from ansible_collections.edge.canary.plugins.module_utils.release_actions import Paths  # noqa: E402
from ansible_collections.edge.canary.plugins.module_utils.release_plan import ReleaseError  # noqa: E402
from ansible_collections.edge.canary.plugins.module_utils.release_status import serving  # noqa: E402
from ansible_collections.edge.canary.plugins.module_utils.service_restart import (  # noqa: E402
    MANAGERS,
    restart_steps,
    step_failed,
)


def restart(module: AnsibleModule) -> list[dict[str, Any]]:
    """Run the restart's commands (argv, no shell); fail the module on the first that failed."""
    p = module.params
    done = []
    for step in restart_steps(p["manager"], p["service_name"], p["supervisor_conf"]):
        argv = [module.get_bin_path(step[0], required=True), *step[1:]]
        rc, stdout, stderr = module.run_command(argv)
        done.append({"argv": argv, "rc": rc, "stdout": stdout.strip(), "stderr": stderr.strip()})
        if step_failed(p["manager"], rc, stdout):
            module.fail_json(msg=f"restarting {p['service_name']} under {p['manager']} failed: {' '.join(step)} "
                                 f"answered {(stdout.strip() or stderr.strip() or f'exit {rc}').splitlines()[-1]}; "
                                 "see the service's log", changed=True, restarted=done)
    return done


def record_serving(module: AnsibleModule, result: dict[str, Any]) -> None:
    """The node is healthy on its binary: record it as served (and last-known-good when `good`)."""
    rec = module.params["record_serving"]
    binary = rec["binary"]  # required by the argument spec
    try:
        paths = Paths.from_params({"install_dir": os.path.dirname(binary), "binary_name": os.path.basename(binary),
                                   "config_path": rec["config"], "record_path": rec["record"]})
        done = serving({"good": rec["good"]}, paths, module.check_mode)
    except (ReleaseError, OSError) as exc:
        module.fail_json(msg=f"the node is healthy, but recording that it serves {binary} failed: {exc}; "
                             "fix the node's files and re-run (safe)", **result)
    result["serving"] = {key: done[key] for key in ("action", "msg", "record")}
    result["changed"] = result["changed"] or done["changed"]


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "restart": {"type": "bool", "default": False},
            "manager": {"type": "str", "choices": list(MANAGERS), "default": "systemd"},
            "service_name": {"type": "str"},
            "supervisor_conf": {"type": "str", "default": "/etc/supervisor/supervisord.conf"},
            "health_url": {"type": "str"},
            "timeout": {"type": "float", "default": 60.0},
            "interval": {"type": "float", "default": 0.5},
            "request_timeout": {"type": "float", "default": 2.0},
            "version_url": {"type": "str"},
            "expected_version": {"type": "str"},
            "record_serving": {"type": "dict", "options": {
                "binary": {"type": "path", "required": True},
                "config": {"type": "path"},
                "record": {"type": "path", "required": True},
                "good": {"type": "bool", "default": True},
            }},
        },
        required_if=[("restart", True, ["service_name"]), ("restart", False, ["health_url"])],
        required_by={"record_serving": "health_url"},
        supports_check_mode=True,
    )
    p = module.params
    if p["timeout"] < 0 or p["interval"] <= 0 or p["request_timeout"] <= 0:
        module.fail_json(msg="timeout must be 0 or more, interval and request_timeout above 0 (seconds)")
    result: dict[str, Any] = {"changed": bool(p["restart"])}
    if p["restart"] and not module.check_mode:
        result["restarted"] = restart(module)
    if not p["health_url"]:
        module.exit_json(msg=f"restarted {p['service_name']}", **result)
    health = wait_healthy(p["health_url"], p["timeout"], p["interval"], p["request_timeout"])
    result.update(status=health.status, attempts=health.attempts, waited=health.waited)
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
    if p["record_serving"]:
        record_serving(module, result)
    restarted = "restarted, " if p["restart"] else ""
    served = f", {result['serving']['msg']}" if "serving" in result else ""
    module.exit_json(msg=f"{restarted}healthy after {health.waited:g} s{served}", **result)


if __name__ == "__main__":
    main()
