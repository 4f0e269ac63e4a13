#!/usr/bin/python
"""Ansible module haproxy_servers_info: the shell (documentation, arguments, dispatch); the work is in
module_utils/haproxy_info."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: haproxy_servers_info
short_description: Read every server of an HAProxy backend through the admin socket, in one pass
description:
  - Checks the socket's level with C(show cli level), then reads the whole backend with one
    C(show servers state) (columns looked up by header name), two connections however many
    servers are asked about. Changes nothing.
  - Names are checked against a strict pattern before any command is built.
  - Used by preflight to read each load balancer once instead of once per node.
attributes:
  check_mode:
    support: full
    description: Read-only; runs the same in check mode.
  diff_mode:
    support: none
    description: Changes nothing, so there is no diff.
  platform:
    support: full
    platforms: posix
    description: Runs where the admin socket is reachable (usually the load balancer, or the
      control host for a TCP socket); Python standard library only.
options:
  socket:
    description: Admin socket, a unix socket path or C(host:port) (C([v6addr]:port)) for a TCP one.
    type: str
    required: true
  backend:
    description: Backend name.
    type: str
    required: true
  servers:
    description: Servers that should be in the backend; those that are not are listed in RV(missing).
    type: list
    elements: str
    default: []
  require_admin:
    description: Fail unless the socket is at level admin (HAProxy that knows C(show cli level)).
    type: bool
    default: true
  socket_timeout:
    description: Bound, in seconds, on each admin socket operation (connect, send, whole answer).
    type: float
    default: 5.0
author:
  - edge-canary maintainers (@edge-canary)
"""

EXAMPLES = r"""
- name: Read the edge backend once and see which nodes HAProxy does not know
  edge.canary.haproxy_servers_info:
    socket: /run/haproxy/admin.sock
    backend: edge
    servers: [edge-1, edge-2, edge-3]
  register: lb_view
"""

RETURN = r"""
servers:
  description: Every server of the backend by name, each with admin_state, forced_admin_state,
    operational_state, weight, admin_flags, admin_bits.
  returned: always
  type: dict
missing:
  description: The asked-for servers the backend does not have.
  returned: always
  type: list
  elements: str
level:
  description: The socket's level (C(unknown) when HAProxy does not know C(show cli level)).
  returned: always
  type: str
"""

# Imports after the documentation: validate-modules (ansible-test sanity) asks for that order.
from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.edge.canary.plugins.module_utils.haproxy_api import RuntimeApi  # noqa: E402
from ansible_collections.edge.canary.plugins.module_utils.haproxy_info import read_backend  # noqa: E402
from ansible_collections.edge.canary.plugins.module_utils.haproxy_state import (  # noqa: E402
    HaproxyError,
    parse_socket_address,
    validate_name,
    validate_timeout,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "socket": {"type": "str", "required": True},
            "backend": {"type": "str", "required": True},
            "servers": {"type": "list", "elements": "str", "default": []},
            "require_admin": {"type": "bool", "default": True},
            "socket_timeout": {"type": "float", "default": 5.0},
        },
        supports_check_mode=True,
    )
    p = module.params
    try:
        backend = validate_name("backend", p["backend"])
        wanted = [validate_name("server", name) for name in p["servers"]]
        api = RuntimeApi(parse_socket_address(p["socket"]), validate_timeout("socket_timeout", p["socket_timeout"]))
        result = read_backend(api, backend, wanted, p["require_admin"])
    except HaproxyError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
