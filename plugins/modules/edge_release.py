#!/usr/bin/python
"""Ansible module edge_release: the shell (documentation, arguments, dispatch).

The work is in module_utils: release_plan (what to do), release_files (atomic file operations) and
release_actions (push, revert, configure, inspect, serving). Runs on the node with only the Python
standard library and ansible-core's module_utils.
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: edge_release
short_description: Push, revert and inspect the edge binary and its config keys on a node
description:
  - Keeps the binary at I(install_dir)/I(binary_name) and the config file at I(config_path),
    each with a C(.previous) copy, and a JSON release record (mode 0600).
  - C(.previous) is always the last release that served healthily on the node (recorded by
    C(state=serving) with I(good)); only a push that replaces that release rotates it into
    C(.previous). A re-push of the running binary, a config-only change or a push over a release
    that never served leaves it as it is.
  - C(.previous) (the binary's and the config's) is checked against the sha256 the record gives it
    before a revert installs it; a mismatch is refused. No symlink is followed (a file, or a folder
    on the way to it, is refused), a path with C(..) is refused, and a FIFO or other non-regular file
    at any of the paths is refused without blocking.
  - Every file is replaced by an atomic rename of a fsynced temp file in the same directory.
  - An interrupted push or revert (killed between any two steps) can be re-run and ends
    consistent; the last-known-good binary is never lost.
attributes:
  action:
    support: full
    description: An action plugin copies I(src) into I(staging_dir) on the node, then runs the module there
      (one module run). Before the copy it refuses, as the module would, paths that are not absolute or hold
      C(..) and a I(binary_name) that is not a plain file name.
  check_mode:
    support: full
    description: Reads the node and reports what would change (the release record it would write
      included); writes nothing. I(src) is not copied, and a staged artifact that is not on the node
      is only noted.
  diff_mode:
    support: partial
    description: Returns a diff of the config file for C(state=configured) only (values of
      I(secret_config_keys) redacted); the binaries are reported through C(current) and
      C(previous), not as a diff.
  platform:
    support: full
    platforms: posix
    description: Runs on the node; needs only the Python standard library (atomic rename, fsync).
options:
  state:
    description: C(pushed) installs a staged artifact, C(reverted) restores C(.previous) (or
      I(rollback_binary)), C(inspected) only reads, C(serving) records the sha256 the running
      service serves, C(configured) sets config keys only (atomic write of the config file;
      the binaries and both C(.previous) files are left as they are), C(not_reached) notes that a
      deploy has not reached the node (a deploy notes it on each of its nodes as it starts, and the push
      that reaches the node drops the note; a rollback leaves a node so noted on the last-known-good it
      runs).
    type: str
    choices: [pushed, reverted, inspected, serving, configured, not_reached]
    default: inspected
  install_dir:
    description: Directory holding the binary, its C(.previous) and by default the release record.
    type: path
    required: true
  binary_name:
    description: File name of the binary inside I(install_dir).
    type: str
    default: edge
  config_path:
    description: Flat key=value config file; omitted means the config is not managed.
    type: path
  record_path:
    description: JSON release record; defaults to I(install_dir)/release.json.
    type: path
  src:
    description:
      - Path on the control host of the artifact (C(state=pushed)) or of the rollback binary
        (C(state=reverted)). The action plugin copies it into I(staging_dir) on the node and passes that
        copy as I(staged) or I(rollback_binary); the copy is removed once installed, the folder after a
        failure. One that is not a readable file fails the task with nothing copied or changed.
      - Without I(sha256), the sha256 the node must find is computed on the control host.
    type: path
  staging_dir:
    description: Folder on the node that I(src) is copied into (made owner-only if missing). Required with
      I(src).
    type: path
  staged:
    description: Path on the node of an already-copied artifact (C(state=pushed) without I(src)).
    type: path
  sha256:
    description:
      - Expected sha256 of the artifact, computed on the control host.
      - With C(state=not_reached), the sha256 of the release being deployed; a node that runs it is not
        noted.
    type: str
  version:
    description: Version of the artifact pushed (or of I(rollback_binary)), kept in the record.
    type: str
  config:
    description: Config keys to set (a dict, or "k=v k2=v2"); other keys and lines of the file
      are kept. Required, and not empty, with C(state=configured).
    type: dict
    default: {}
  deploy_id:
    description: Identifier of the deploy, kept in the record.
    type: str
  rollback_binary:
    description: Path on the node of a known-good binary to restore instead of C(.previous)
      (C(state=reverted)).
    type: path
  serving_sha256:
    description: sha256 the service now serves (C(state=serving)); defaults to the current binary's.
    type: str
  good:
    description: With C(state=serving), the release also becomes the node's last-known-good (the
      one a later push keeps as C(.previous)). False for a canary still on probation before its SLI
      gate.
    type: bool
    default: true
  secret_config_keys:
    description: Config keys whose values are secret; they are redacted in the release record,
      the module's output (its invocation included) and the diff. The config file keeps them.
    type: list
    elements: str
    default: []
  remove_staged:
    description: After a successful C(pushed) (or C(reverted) with I(rollback_binary)), delete I(staged)
      (or I(rollback_binary)) and its directory when that is left empty, so no clean-up task is needed.
      Ignored in check mode.
    type: bool
    default: false
  in_force_url:
    description:
      - With C(state=configured), after the write, poll this URL (the service's metrics page, from
        the node) until the gauge I(in_force_metric) shows the value just set for I(in_force_key),
        at most I(in_force_timeout) seconds, and fail naming what it shows otherwise. The write and
        its check are then one module run. Omitted means no wait. Skipped in check mode.
    type: str
  in_force_metric:
    description: Unlabelled gauge on I(in_force_url) that shows the value in force of I(in_force_key).
    type: str
    default: edge_config_rollout_pct
  in_force_key:
    description: Config key (one of I(config)) whose value the gauge I(in_force_metric) shows.
    type: str
    default: rollout_pct
  in_force_timeout:
    description: Longest wait, in seconds, for the service to show the new value.
    type: float
    default: 30
author:
  - edge-canary maintainers (@edge-canary)
"""

EXAMPLES = r"""
- name: Push an artifact from the control host and set rollout_pct
  edge.canary.edge_release:
    state: pushed
    install_dir: /opt/edge
    config_path: /etc/edge/edge.conf
    src: /srv/releases/edge-v2
    staging_dir: /opt/edge/.staging
    version: v2
    config:
      rollout_pct: 10
    deploy_id: 20240101T120000-alice
"""

RETURN = r"""
action:
  description: deploy, rollback, serving, configure, inspect or none.
  type: str
  returned: always
current:
  description: Binary before and after, each {sha256, version}.
  type: dict
  returned: pushed, reverted
previous:
  description: The .previous binary before and after, each {sha256, version}.
  type: dict
  returned: pushed, reverted
config:
  description: Config keys before and after.
  type: dict
  returned: pushed, reverted, configured
config_change:
  description:
    - The config keys a revert changed by restoring the last-known-good config (a rollout made since the
      deploy is taken back too), as {time, deploy_id, set, before}; null when no key changed.
    - C(set) holds each changed key's new value (null when removed), C(before) its value before; secret
      keys redacted. The release record keeps the last such change of any write as C(config_change).
  type: dict
  returned: reverted
in_force:
  description: With I(in_force_url), what the service showed ({value, waited} in seconds).
  type: dict
  returned: configured with in_force_url
first_deploy:
  description: True when the node had no binary before this push (no .previous is created).
  type: bool
  returned: pushed
record:
  description: The release record after the call (what it would be, in check mode).
  type: dict
  returned: always
"""

# Imports after the documentation: validate-modules (ansible-test sanity) asks for that order.
from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.edge.canary.plugins.module_utils.release_actions import (  # noqa: E402
    Paths,
    configure,
    push,
    revert,
    secret_keys,
)
from ansible_collections.edge.canary.plugins.module_utils.release_in_force import (  # noqa: E402
    check_metric_name,
    not_in_force_text,
    wait_in_force,
)
from ansible_collections.edge.canary.plugins.module_utils.release_plan import (  # noqa: E402
    ReleaseError,
    redact_keys,
)
from ansible_collections.edge.canary.plugins.module_utils.release_status import (  # noqa: E402
    inspect,
    not_reached,
    remove_staged,
    serving,
)

STATES = ["pushed", "reverted", "inspected", "serving", "configured", "not_reached"]


def invocation(params: dict[str, Any]) -> dict[str, Any]:
    """The module's arguments as echoed in its result, values of secret config keys redacted."""
    shown = dict(params)
    if isinstance(shown.get("config"), dict):
        shown["config"] = redact_keys(shown["config"], secret_keys(params))
    return {"module_args": shown}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "state": {"type": "str", "default": "inspected", "choices": STATES},
            "install_dir": {"type": "path", "required": True},
            "binary_name": {"type": "str", "default": "edge"},
            "config_path": {"type": "path"},
            "record_path": {"type": "path"},
            "src": {"type": "path"},
            "staging_dir": {"type": "path"},
            "staged": {"type": "path"},
            "sha256": {"type": "str"},
            "version": {"type": "str"},
            "config": {"type": "dict", "default": {}},
            "deploy_id": {"type": "str"},
            "rollback_binary": {"type": "path"},
            "serving_sha256": {"type": "str"},
            "good": {"type": "bool", "default": True},
            "secret_config_keys": {"type": "list", "elements": "str", "default": [], "no_log": False},
            "remove_staged": {"type": "bool", "default": False},
            "in_force_url": {"type": "str"},
            "in_force_metric": {"type": "str", "default": "edge_config_rollout_pct"},
            "in_force_key": {"type": "str", "default": "rollout_pct", "no_log": False},
            "in_force_timeout": {"type": "float", "default": 30},
        },
        supports_check_mode=True,
    )
    p = module.params
    try:
        paths = Paths.from_params(p)
        if p["state"] == "pushed":
            result = push(p, paths, module.check_mode)
        elif p["state"] == "reverted":
            result = revert(p, paths, module.check_mode)
        elif p["state"] == "serving":
            result = serving(p, paths, module.check_mode)
        elif p["state"] == "configured":
            result = configure(p, paths, module.check_mode)
        elif p["state"] == "not_reached":
            result = not_reached(p, paths, module.check_mode)
        else:
            result = inspect(paths, secret_keys(p))
        if p["remove_staged"] and not module.check_mode:
            remove_staged(p["staged"] if p["state"] == "pushed" else
                          p["rollback_binary"] if p["state"] == "reverted" else None)
    except ReleaseError as exc:
        module.fail_json(msg=str(exc), invocation=invocation(p))
    except OSError as exc:
        module.fail_json(msg=f"{exc}; fix the node's files or permissions and re-run (safe)",
                         invocation=invocation(p))
    if p["state"] == "configured" and p["in_force_url"] and not module.check_mode:
        check_in_force(module, result)
    module.exit_json(**result, invocation=invocation(p))


def check_in_force(module: AnsibleModule, result: dict[str, Any]) -> None:
    """Wait until the service shows the value just written for in_force_key; fail naming what it shows."""
    p = module.params
    key, metric = p["in_force_key"], p["in_force_metric"]
    wanted = result.get("config", {}).get("after", {}).get(key)
    problem = check_metric_name(metric) or (
        None if wanted is not None else f"in_force_key {key!r} is not a config key of this node")
    if problem:
        module.fail_json(**{**result, "msg": f"{problem}; the config was written, its check was not made"},
                         invocation=invocation(p))
    seen = wait_in_force(p["in_force_url"], metric, str(wanted), p["in_force_timeout"])
    result["in_force"] = {"value": seen.shown, "waited": seen.waited}
    if not seen.done:
        # result's own msg (what was written) gives way to why the check failed
        module.fail_json(**{**result, "msg": not_in_force_text(key, str(wanted), seen, p["in_force_url"])},
                         invocation=invocation(p))


if __name__ == "__main__":
    main()
