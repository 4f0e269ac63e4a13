#!/usr/bin/python
"""Ansible module haproxy_server: the shell (documentation, arguments, dispatch).

The work is in module_utils: haproxy_state (names and answers), haproxy_plan (decisions),
haproxy_api (the admin socket) and haproxy_apply (the change, the health check and the waits).
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: haproxy_server
short_description: Put HAProxy servers in ready, drain or maint through the admin socket
description:
  - Reads the server's state with C(show servers state) and its sessions and queue with
    C(show stat) (columns looked up by header name), then sends C(set server) only when the
    admin state or weight must change.
  - Names are checked against a strict pattern before any command is built, so a name
    cannot inject admin commands; nothing is sent when a name is refused.
  - Check mode sends only read-only commands and reports what would change.
  - With O(servers), several servers of the backend are handled in one run, read once and waited for
    together (sessions ended, seen up, weights ramped in step); a server that cannot be made ready is
    left as it is and named in RV(failed_servers) while the others go on, and the run then fails.
attributes:
  check_mode:
    support: full
    description: Sends only read-only commands (and the read-only health GET) and reports the
      commands that would be sent and the predicted state; the waits are skipped.
  diff_mode:
    support: full
    description: Shows the server's admin state, operational state and weight before and after.
  platform:
    support: full
    platforms: posix
    description: Runs where the admin socket is reachable (usually the load balancer, or the
      control host for a TCP socket); Python standard library only.
options:
  socket:
    description:
      - Admin socket, a unix socket path or C(host:port) (C([v6addr]:port)) for a TCP one.
      - HAProxy must expose it with C(level admin) on its C(stats socket) line.
    type: str
    required: true
  backend:
    description: Backend name.
    type: str
    required: true
  server:
    description:
      - Server name inside the backend.
      - Exactly one of O(server) and O(servers) is required.
    type: str
  servers:
    description:
      - Several servers of the backend, brought to O(state) together (one run for a whole batch of
        nodes). Every other option applies to each of them.
      - Exactly one of O(server) and O(servers) is required.
    type: list
    elements: dict
    suboptions:
      name:
        description: Server name inside the backend.
        type: str
        required: true
      health_url:
        description: This server's health URL, as O(health_url) is for O(server).
        type: str
  state:
    description:
      - Wanted administrative state. C(ready) puts the server back in rotation, C(drain)
        sends it no new traffic but lets open sessions finish, C(maint) takes it out.
    type: str
    required: true
    choices: [ready, drain, maint]
  weight:
    description: Weight to set (0-256). Left alone when omitted.
    type: int
  wait:
    description:
      - For C(drain) and C(maint), wait until the server has no current session and
        nothing queued, at most O(wait_timeout) seconds, then fail naming what is still
        open. Ignored for C(ready) and in check mode.
    type: bool
    default: false
  wait_timeout:
    description: Longest wait for sessions to end, in seconds.
    type: float
    default: 60
  socket_timeout:
    description: Bound on every socket operation (connect, send, whole answer), seconds.
    type: float
    default: 5
  health_url:
    description:
      - For C(ready), an HTTP URL that must answer 200 from where the module runs (the load
        balancer) before anything is sent; on failure the server is left as it is. Also
        checked in check mode (a read-only GET).
    type: str
  health_timeout:
    description: Timeout of one health request, in seconds.
    type: float
    default: 5
  health_retries:
    description: Extra health attempts before giving up (0 = a single attempt).
    type: int
    default: 2
  health_delay:
    description: Seconds between two health attempts.
    type: float
    default: 2
  wait_up:
    description:
      - For C(ready), wait after the change until HAProxy itself sees the server up and
        ready (its own health check passed), at most O(wait_up_timeout) seconds, polling
        every half second; then fail naming the state it is in. Ignored in check mode.
      - A server warming up under the backend's C(slowstart) (operational state C(starting))
        counts as up, since HAProxy already routes to it; the wait does not last the slowstart out.
    type: bool
    default: false
  ramp:
    description:
      - For C(ready), when the server is not already in rotation, seconds over which its weight
        goes from about a tenth of its full weight to the full weight (O(weight), else the
        weight of its configuration line); it is set ready at the low weight and raised one
        step every half second once HAProxy sees it up, so a freshly restarted node is not
        handed its full share of requests at once. 0 = no ramp. Needs a full weight of 2 or
        more (give the servers C(weight 100) in HAProxy's configuration); with weight 1 there
        is no step and nothing is ramped. Ignored in check mode.
    type: float
    default: 0
  wait_up_timeout:
    description: Longest wait for the server to be seen up and ready, in seconds.
    type: float
    default: 30
  keep_maint:
    description:
      - For C(ready) and C(drain), leave a server that was forced into maintenance (C(set server ... state
        maint) or the stats page) as it is, reported with RV(kept_in_maint) (no command, no health check,
        no wait for it to be seen up). Someone else put it there, and a tool that only drains must not take
        it out. Its sessions are still waited for with O(wait).
    type: bool
    default: false
author:
  - edge-canary maintainers (@edge-canary)
"""

EXAMPLES = r"""
- name: Drain edge-1 and wait for its sessions to end
  edge.canary.haproxy_server:
    socket: /run/haproxy/admin.sock
    backend: edge
    server: edge-1
    state: drain
    wait: true
    wait_timeout: 120

- name: Put edge-1 back in rotation once it answers its health check, and wait until HAProxy sees it up
  edge.canary.haproxy_server:
    socket: /run/haproxy/admin.sock
    backend: edge
    server: edge-1
    state: ready
    health_url: http://10.0.0.11:8080/health
    wait_up: true

- name: Drain edge-1 and edge-2 together (one read, one wait)
  edge.canary.haproxy_server:
    socket: /run/haproxy/admin.sock
    backend: edge
    servers:
      - name: edge-1
      - name: edge-2
    state: drain
    wait: true

- name: Put edge-1 back in rotation with weight 100 through a TCP admin socket
  edge.canary.haproxy_server:
    socket: 10.0.0.5:9999
    backend: edge
    server: edge-1
    state: ready
    weight: 100
"""

RETURN = r"""
before:
  description: State read before any change (admin_state, forced_admin_state,
    operational_state, weight, admin_flags, admin_bits).
  returned: always
  type: dict
after:
  description: State read after the change; in check mode, the predicted admin state and
    weight (operational state as before).
  returned: always
  type: dict
sessions:
  description: Current sessions (scur) on the server when the module finished.
  returned: always
  type: int
queue:
  description: Requests queued (qcur) for the server when the module finished.
  returned: always
  type: int
haproxy_version:
  description: Version reported by C(show info).
  returned: always
  type: str
commands:
  description: The mutating commands sent (or, in check mode, that would be sent).
  returned: always
  type: list
  elements: str
kept_in_maint:
  description: The server was in maintenance and left there (O(keep_maint)); with O(servers), in each
    server's result.
  returned: with O(server)
  type: bool
waited:
  description: Seconds spent waiting for sessions to end.
  returned: always
  type: float
waited_up:
  description: Seconds spent waiting for the server to be seen up and ready (O(wait_up)).
  returned: always
  type: float
ramp:
  description: The weights set one after the other (O(ramp)) and the seconds the ramp took.
  returned: when a server was put back in rotation with O(ramp)
  type: dict
servers:
  description: With O(servers), each server's own result by name (changed, commands, before, after,
    sessions, queue, ramp, kept_in_maint, msg).
  returned: with O(servers)
  type: dict
failed_servers:
  description: With O(servers), the servers that could not be brought to O(state), by name, and why
    (failed health check, held by what it tracks, not seen up in time, sessions still open).
  returned: with O(servers)
  type: dict
"""

# Imports after the documentation: validate-modules (ansible-test sanity) asks for that order.
from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.edge.canary.plugins.module_utils.haproxy_api import RuntimeApi  # noqa: E402
from ansible_collections.edge.canary.plugins.module_utils.haproxy_apply import (  # noqa: E402
    Request,
    apply,
    apply_batch,
    diff_text,
    health_request,
)
from ansible_collections.edge.canary.plugins.module_utils.haproxy_state import (  # noqa: E402
    STATES,
    HaproxyError,
    WaitTimeout,
    parse_socket_address,
    validate_name,
    validate_timeout,
    validate_weight,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "socket": {"type": "str", "required": True},
            "backend": {"type": "str", "required": True},
            "server": {"type": "str"},
            "servers": {
                "type": "list",
                "elements": "dict",
                "options": {"name": {"type": "str", "required": True}, "health_url": {"type": "str"}},
            },
            "state": {"type": "str", "required": True, "choices": list(STATES)},
            "weight": {"type": "int"},
            "wait": {"type": "bool", "default": False},
            "wait_timeout": {"type": "float", "default": 60.0},
            "socket_timeout": {"type": "float", "default": 5.0},
            "health_url": {"type": "str"},
            "health_timeout": {"type": "float", "default": 5.0},
            "health_retries": {"type": "int", "default": 2},
            "health_delay": {"type": "float", "default": 2.0},
            "wait_up": {"type": "bool", "default": False},
            "wait_up_timeout": {"type": "float", "default": 30.0},
            "ramp": {"type": "float", "default": 0.0},
            "keep_maint": {"type": "bool", "default": False},
        },
        mutually_exclusive=[("server", "servers")],
        required_one_of=[("server", "servers")],
        supports_check_mode=True,
    )
    p = module.params
    try:
        address = parse_socket_address(p["socket"])
        api = RuntimeApi(address, validate_timeout("socket_timeout", p["socket_timeout"]))
        if p["servers"] is not None:
            run_batch(module, api)
        req = request(p, p["server"], p["health_url"])
        result = apply(api, req, module.check_mode)
    except WaitTimeout as exc:
        module.fail_json(msg=str(exc), **exc.result)
    except HaproxyError as exc:
        module.fail_json(msg=str(exc))
    if module._diff:
        result["diff"] = diff(result, result["socket"], req.backend, req.server)
    module.exit_json(**result)


def request(p: dict, server: str, health_url: str | None) -> Request:
    """One server's request from the module's arguments; names and numbers checked first."""
    return Request(
        backend=validate_name("backend", p["backend"]),
        server=validate_name("server", server),
        state=p["state"],
        weight=validate_weight(p["weight"]),
        wait=p["wait"],
        wait_timeout=validate_timeout("wait_timeout", p["wait_timeout"]),
        health=health_request({**p, "health_url": health_url}),
        wait_up=p["wait_up"],
        wait_up_timeout=validate_timeout("wait_up_timeout", p["wait_up_timeout"]),
        ramp=max(0.0, p["ramp"]),
        keep_maint=p["keep_maint"],
    )


def run_batch(module: AnsibleModule, api: RuntimeApi) -> None:
    """O(servers): every server in one run; fails, with every server's result, if one of them failed."""
    p = module.params
    if not p["servers"]:
        raise HaproxyError("servers is empty: give at least one server name")
    names = [one["name"] for one in p["servers"]]
    if len(set(names)) != len(names):
        raise HaproxyError(f"servers names a server twice ({', '.join(names)}); give each once")
    result = apply_batch(api, [request(p, one["name"], one["health_url"]) for one in p["servers"]], module.check_mode)
    if module._diff:
        result["diff"] = [
            diff(one, result["socket"], result["backend"], name) for name, one in result["servers"].items()
        ]
    if result["failed_servers"] or result.get("timed_out"):
        module.fail_json(**result)
    module.exit_json(**result)


def diff(result: dict, socket: str, backend: str, server: str) -> dict:
    header = f"{socket} {backend}/{server}"
    return {
        "before_header": header,
        "after_header": header,
        "before": diff_text(result["before"]),
        "after": diff_text(result["after"]),
    }


if __name__ == "__main__":
    main()
