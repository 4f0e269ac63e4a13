#!/usr/bin/python
"""Documentation of the deploy_event action plugin (plugins/action/deploy_event.py does the work).

ansible-doc finds an action plugin's documentation in the module of the same name: this file.
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: deploy_event
short_description: Post one deploy event to Alertmanager from the controller process, never failing the play
description:
  - Posts one event of a deploy (C(started), C(wave_done), C(rollback_done), or any other event the
    watcher posts) to Alertmanager's v2 API as one alert named C(EdgeCanaryDeployEvent), labelled with
    the deploy id, the event, the canary, the release and the verdict, annotated with the reason, the
    record and a runbook link (the same code and words as C(edge-canary notify) and the watcher).
  - Runs in the controller process, with no module run and no new Python process.
  - Never fails for Alertmanager's sake. One attempt of at most I(timeout) seconds; a failure is a
    line in C(stderr) and one more C(edge_canary_notifications_total{outcome="failed"}) in
    I(state_dir)C(/metrics/edge_canary_notify.prom). Only arguments the notifier refuses (an unknown
    event, a URL that is not http(s)) fail the task.
  - The controller's Python must be able to import the edge_canary package (the project installed in
    the environment that runs ansible-playbook, as in execution-environment.yml).
extends_documentation_fragment:
  - edge.canary.controller_action
attributes:
  check_mode:
    support: full
    description: Posts nothing in check mode.
options:
  event:
    description: The event, one of C(started), C(promoted), C(reverted), C(held), C(would_revert),
      C(revert_failed), C(rollback_done), C(awaiting_approval), C(approved), C(aborted), C(wave_done).
    type: str
    required: true
  url:
    description: Alertmanager's base URL; empty posts nothing.
    type: str
    default: ""
  timeout:
    description: Seconds the one attempt may take.
    type: float
    default: 2
  deploy_id:
    description: The deploy (or rollback) id, a label of the alert.
    type: str
    required: true
  canary:
    description: The canary node, a label.
    type: str
    default: ""
  release:
    description: The release's version, a label.
    type: str
    default: ""
  verdict:
    description: The verdict, a label.
    type: str
    default: ""
  reason:
    description: Why, in a sentence (the alert's reason annotation).
    type: str
    default: ""
  record:
    description: Path of the deploy's record on the control host (an annotation).
    type: str
    default: ""
  wave:
    description: For C(wave_done), which wave, e.g. C(2/5).
    type: str
    default: ""
  runbook_base_url:
    description: Base of the runbook links put in the alert.
    type: str
    default: ""
  state_dir:
    description: The control host's state folder, where the outcome is counted.
    type: path
    required: true
author:
  - edge-canary maintainers (@edge-canary)
"""

EXAMPLES = r"""
- name: Tell Alertmanager the deploy started
  edge.canary.deploy_event:
    event: started
    url: http://alertmanager.example:9093
    deploy_id: "{{ deploy_id }}"
    canary: edge-1
    release: v2
    record: "{{ deploy_run_dir }}/deploy.json"
    state_dir: /var/lib/edge-canary
"""

RETURN = r"""
rc:
  description: 0, also when Alertmanager did not take the event; 64 when the arguments were refused.
  type: int
  returned: always
posted:
  description: Whether Alertmanager took the event.
  type: bool
  returned: always
stderr:
  description: The failure line when the event could not be posted.
  type: str
  returned: always
"""
