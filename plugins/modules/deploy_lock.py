#!/usr/bin/python
"""Documentation of the deploy_lock action plugin (plugins/action/deploy_lock.py does the work).

ansible-doc finds an action plugin's documentation in the module of the same name: this file.
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: deploy_lock
short_description: Take or release the edge-canary deploy lock, in the controller process itself
description:
  - One deploy, rollback or rollout at a time. With I(state=acquired) the lock of the control host's
    I(dir) is taken for the run's outermost ansible-playbook process (a stale lock, whose process is
    gone, is recovered and said so); refused, with the holder's name in I(stderr) and a non-zero I(rc),
    while another run holds it or a game-day drill holds its own lock (unless I(force)).
  - With I(keep_command) (a lock kept on a watch host) that command is run on the control host instead;
    C(edge-canary lock-keep) takes the watch host's lock over SSH and keeps it while the run lives.
  - No module run either way; the task never fails by itself (the result's I(rc) says whether the lock is
    this run's); the role C(edge.canary.deploy_lock) stops the play on a refusal.
extends_documentation_fragment:
  - edge.canary.controller_action
attributes:
  check_mode:
    support: none
    description: Give I(dry_run) (the play's C(ansible_check_mode)) to only ask whether the lock could be
      taken; set C(check_mode) to false on the task.
options:
  state:
    description: C(acquired) takes the lock, C(released) gives back a lock this run (or its I(id) once its
      run is gone) holds; a live watcher of the run keeps a released lock until it ends.
    type: str
    choices: [acquired, released]
    default: acquired
  dir:
    description: Absolute path of the folder on the control host holding the lock files and locks.log.
    type: path
  id:
    description: The deploy, rollback or rollout id taking or releasing the lock.
    type: str
    required: true
  token:
    description: The run's token; a process with it (the run's watcher, a rollback it runs) finds the lock
      already its own.
    type: str
    default: ""
  force:
    description: Take the lock even while a game-day drill holds its lock (logged in locks.log).
    type: bool
    default: false
  dry_run:
    description: Only say whether the lock could be taken; take nothing.
    type: bool
    default: false
  keep_command:
    description: The argv that takes and keeps a watch host's lock (C(state=acquired) only).
    type: list
    elements: str
author:
  - edge-canary maintainers (@edge-canary)
"""

EXAMPLES = r"""
- name: Take the deploy lock
  edge.canary.deploy_lock:
    dir: /var/lib/edge-canary
    id: "{{ deploy_id }}"
    token: "{{ deploy_lock_token }}"
  register: lock
  check_mode: false

- name: Release it
  edge.canary.deploy_lock:
    state: released
    dir: /var/lib/edge-canary
    id: "{{ deploy_id }}"
    token: "{{ deploy_lock_token }}"
  check_mode: false
"""

RETURN = r"""
rc:
  description: 0 when the lock is this run's (or was released), 1 when it is refused.
  type: int
  returned: always
stdout:
  description: What the lock said, e.g. C(edge-lock - deploy lock taken by <id>).
  type: str
  returned: always
stderr:
  description: Why the lock was refused, naming its holder.
  type: str
  returned: always
"""
