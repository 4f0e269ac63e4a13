"""Operator input is data, never code or shell: the one schema of every make variable.

The rules live in the collection (plugins/module_utils/operator_inputs.py) so that the playbooks
check their extra vars with them too (the edge.canary.operator_inputs action); this module gives the
on-call tools the same checks under the make variables' names, with the watcher's full scrubber for
the values a message quotes. A value is refused with one line saying what to give instead
(InputError; the tools exit 64 before anything runs). The values then reach Ansible only through an
extra-vars file written by `write_extra_vars`: every string tagged `!unsafe`, so Jinja never
templates it, and no value ever passes through a shell or Ansible's `key=value` parser.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path

from watcher.decision_log import Scrubber
from watcher.drain import module_utils

module_utils("operator_inputs")  # the collection importable as Ansible names it
from ansible_collections.edge.canary.plugins.module_utils import operator_inputs as rules  # noqa: E402
from ansible_collections.edge.canary.plugins.module_utils.operator_inputs import (  # noqa: E402, F401
    EXIT_USAGE,
    NODE,
    WHOLE,
    InputError,
    config,
    flag,
    node_list,
    node_name,
    path,
    positive,
    sha256,
    shown,
    url,
    whole,
)

_VAR_NAME = re.compile(r"[a-z_][a-z0-9_]*")
# A deploy id as deploy-canary names it (20261202T012345Z-alice-1a2b3c): a folder name, never a path.
_DEPLOY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")  # watcher.settings.RUN_ID


def scrub(text: str) -> str:
    """`text` without URL userinfo, tokens, or the PROM_TOKEN/PROM_PASSWORD of the environment.

    The one scrub helper (the watcher's Scrubber) for every message the on-call tools print."""
    return Scrubber([os.environ.get("PROM_TOKEN", ""), os.environ.get("PROM_PASSWORD", "")]).text(text)


rules.SCRUB[0] = scrub


def deploy_id(name: str, value: str) -> str:
    """A deploy id (the name of its record folder, runs/<id>/), as the deploy printed it."""
    value = value.strip()
    example = f"e.g. {name}=20261202T012345Z-alice-1a2b3c"
    if not value:
        raise InputError(f"{name} is not set: give the id the deploy printed, {example}")
    if not _DEPLOY_ID.fullmatch(value):
        raise InputError(f"{name}={shown(value)} is not a deploy id (letters, digits, . _ + -, no /); {example}")
    return value


def inventory(env: Mapping[str, str]) -> str | None:
    """INVENTORY: an inventory path (as ansible-playbook's -i takes it), or unset (ansible.cfg's)."""
    return rules.inventory_path("INVENTORY", env.get("INVENTORY", ""))


# --- the extra-vars file --------------------------------------------------------------------


def _yaml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        text = repr(value)  # YAML 1.1 reads a float only with a '.': 1e-05 would be a string
        return text if "." in text else text.replace("e", ".0e")
    if isinstance(value, str):
        # A JSON string is a valid YAML double-quoted scalar; ASCII only so that no YAML line
        # break (U+2028, U+0085 ...) can hide in it. !unsafe: Ansible never templates it.
        return "!unsafe " + json.dumps(value, ensure_ascii=True)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_yaml(item) for item in value) + "]"
    if isinstance(value, Mapping):
        # Keys are data too: quoted, never a tag or a merge key; values as above.
        return "{" + ", ".join(f"{json.dumps(str(k), ensure_ascii=True)}: {_yaml(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"extra var of type {type(value).__name__} cannot be written")


def extra_vars_text(found: Mapping[str, object]) -> str:
    """The YAML of an extra-vars file: one `name: value` line per variable, strings `!unsafe`."""
    lines = ["---"]
    for key, value in found.items():
        if not _VAR_NAME.fullmatch(key):
            raise ValueError(f"extra var name {key!r} is not a plain variable name")
        lines.append(f"{key}: {_yaml(value)}")
    return "\n".join(lines) + "\n"


def write_extra_vars(target: Path, found: Mapping[str, object]) -> None:
    """Write the extra-vars file (0600) that ansible-playbook reads with `-e @FILE`."""
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(extra_vars_text(found))
