#!/usr/bin/python
"""Documentation of the operator_inputs action plugin (plugins/action/operator_inputs.py does the work).

ansible-doc finds an action plugin's documentation in the module of the same name: this file.
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: operator_inputs
short_description: Check a play's extra vars with the one operator-input schema and name the run
description:
  - The first task of C(deploy-canary.yml), C(rollback.yml) and C(rollout.yml). Checks every extra var
    of the request that is set with the rules of C(plugins/module_utils/operator_inputs.py), the same
    the C(edge-canary) tools apply to the make variables (node names, whole numbers in ASCII digits,
    paths without quotes or shell characters, C(key=value) config, sha256, http(s) URLs without
    credentials, run ids).
  - Only extra vars are checked (what make, C(ansible-playbook -e), ansible-runner or an AWX survey
    gave); group_vars are not operator input.
  - A node the inventory's C(edge) group does not hold (C(deploy_canary_node), C(deploy_peer_nodes),
    C(rollback_nodes)) is refused too, since a mistyped node name is operator input like any other.
  - A batch (C(deploy_batch); C(rollback_batch), cut down to C(rollback_max_unavailable)) bigger than
    the run's forks (C(ansible_forks)) is refused too, since a batch is drained at once and its nodes would
    wait drained while Ansible works on C(forks) of them at a time.
  - A bad value fails the task with one line saying what to give instead, and C(refused=true),
    before anything is written or locked.
  - Names the run when no id is given, C(<UTC>-<user>-<6 hex>) for a deploy, C(rollout-<UTC>-<user>)
    for a rollout.
extends_documentation_fragment:
  - edge.canary.controller_action
attributes:
  check_mode:
    support: full
    description: Checks in check mode too; it never changes anything.
options:
  request:
    description: Which play's extra vars to check.
    type: str
    required: true
    choices: [deploy, rollback, rollout]
author:
  - edge-canary maintainers (@edge-canary)
"""

EXAMPLES = r"""
- name: Check the operator's input and name this deploy
  edge.canary.operator_inputs:
    request: deploy
  register: deploy_request
"""

RETURN = r"""
checked:
  description: Each extra var of the request that was set, as the play uses it.
  type: dict
  returned: success
run_id:
  description: >-
    The deploy, rollback or rollout id, given (checked) or new; a rollback the SLI watcher runs is named by
    the lock of its deploy (edge_canary_lock_id).
  type: str
  returned: success
stages:
  description: The rollout's stages, in percent.
  type: list
  elements: int
  returned: success and request is rollout
asked:
  description: The rollout request as a message names it.
  type: str
  returned: success and request is rollout
hold:
  description: The hold time in seconds that overrides every stage's, or null.
  type: int
  returned: success and request is rollout
edge_canary_request:
  description: The request checked (the run summary reads it).
  type: str
  returned: always
edge_canary_check_mode:
  description: Whether the run is in check mode (the run summary says so).
  type: bool
  returned: always
refused:
  description: True when a value was refused (the task failed with one line in msg).
  type: bool
  returned: failure
"""
