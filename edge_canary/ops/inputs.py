"""Operator input is data, never code or shell: the one schema of every make variable.

Each variable an on-call command reads (deploy-canary, rollback, rollout) is checked here and
turned into a typed value, or refused with one line saying what to give instead (InputError; the
tools exit 64 before anything runs). The values then reach Ansible only through an extra-vars file
written by `write_extra_vars`: every string tagged `!unsafe`, so Jinja never templates it, and no
value ever passes through a shell or Ansible's `key=value` parser.

Everything is ASCII and whole numbers are `[0-9]` only: `str.isdigit()` and `int()` accept `²` and
Arabic-Indic digits, which must be refused, not crash or be silently converted.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path

from watcher.decision_log import Scrubber

EXIT_USAGE = 64

NODE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}")
_SPLIT = re.compile(r"[, ]+")  # commas and spaces only: a newline or tab is refused
WHOLE = re.compile(r"[0-9]{1,9}")
_NUMBER = re.compile(r"[0-9]{0,9}\.?[0-9]{1,9}")
# A path on the control host: printable ASCII without quotes, shell or template metacharacters.
_PATH = re.compile(r"[A-Za-z0-9._+@%,:=/~ -]{1,4096}")
_CONFIG_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,127}")
_CONFIG_VALUE = re.compile(r"[A-Za-z0-9._:/@%+,~-]{0,1024}")
# http(s)://[user:password@]host[:port][/path]; anything else in userinfo must be %-encoded.
_URL = re.compile(r"https?://[A-Za-z0-9._~%+,=:@\[\]-]+(/[A-Za-z0-9._~%+,=:@/-]*)?")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_VAR_NAME = re.compile(r"[a-z_][a-z0-9_]*")
# What a run id (deploy, rollout) may hold: the watcher's revert passes it to ansible-runner as an extra
# var, which Ansible templates, and the watcher refuses anything else (watcher.settings.RUN_ID).
_NOT_IN_ID = re.compile(r"[^A-Za-z0-9._-]")


def scrub(text: str) -> str:
    """`text` without URL userinfo, tokens, or the PROM_TOKEN/PROM_PASSWORD of the environment.

    The one scrub helper (the watcher's Scrubber) for every message the on-call tools print."""
    return Scrubber([os.environ.get("PROM_TOKEN", ""), os.environ.get("PROM_PASSWORD", "")]).text(text)


def id_part(text: str) -> str:
    """A part of a run id taken from the environment (the user, from $USER/$LOGNAME): every character
    but A-Z a-z 0-9 . _ - replaced by '_', at most 32 of them; 'ops' when empty."""
    return _NOT_IN_ID.sub("_", text)[:32] or "ops"


class InputError(ValueError):
    """A make variable that cannot be used; the message is one line saying what to give instead."""


def shown(value: str, limit: int = 80) -> str:
    """The value as a message may quote it: credentials scrubbed, control characters escaped, short."""
    text = scrub(value).encode("ascii", "backslashreplace").decode()
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _refuse(name: str, value: str, why: str) -> InputError:
    return InputError(f"{name}={shown(value)} {why}")


def node_name(name: str, value: str) -> str:
    value = value.strip()
    if not NODE.fullmatch(value):
        raise _refuse(name, value, "is not a node name (letters, digits, . _ -); e.g. edge-2")
    return value


def node_list(name: str, value: str, *, allow_all: bool) -> list[str]:
    """`edge-2,edge-3`, `edge-2 edge-3` (or `all` when allowed): each item a node name, no repeats."""
    items = [item for item in _SPLIT.split(value.strip(" ")) if item]
    example = "NODES=edge-2,edge-3 or NODES=all" if allow_all else f"{name}=edge-2,edge-3"
    for item in items:
        if not NODE.fullmatch(item):
            raise _refuse(name, value, f"names {shown(item, 40)}, not a node name; give node names, e.g. {example}")
    if "all" in items and (not allow_all or len(items) > 1):
        raise _refuse(name, value, f"mixes 'all' with node names; e.g. {example}")
    return list(dict.fromkeys(items))


def whole(name: str, value: str, *, low: int = 0, high: int | None = None, example: str = "") -> int:
    """A whole number written with ASCII digits, within [low, high]."""
    value = value.strip()
    bound = f"from {low} to {high}" if high is not None else f"of at least {low}"
    hint = f"; e.g. {name}={example or max(low, 1)}"
    if not WHOLE.fullmatch(value) or int(value) < low or (high is not None and int(value) > high):
        raise _refuse(name, value, f"is not a whole number {bound}{hint}")
    return int(value)


def positive(name: str, value: str, example: str = "30") -> str:
    """A positive decimal number (seconds, ratio), kept as written."""
    value = value.strip()
    if not _NUMBER.fullmatch(value) or float(value) <= 0:
        raise _refuse(name, value, f"is not a positive number; e.g. {name}={example}")
    return value


def path(name: str, value: str) -> str:
    """An absolute path on the control host (relative to the current folder when given so)."""
    value = value.strip()
    if not _PATH.fullmatch(value):
        raise _refuse(name, value, "is not a usable path: only letters, digits, spaces and . _ + @ % , : = / ~ -; "
                                   "rename or link the file")
    return os.path.abspath(value)


def config(name: str, value: str) -> str:
    """`key=value key2=value2`: keys like feature_x, values without spaces, quotes or braces."""
    pairs = value.split()
    for pair in pairs:
        key, sep, val = pair.partition("=")
        if not sep or not _CONFIG_KEY.fullmatch(key) or not _CONFIG_VALUE.fullmatch(val):
            raise InputError(f"{name} entry '{shown(pair, 40)}' is not key=value (letters, digits, . _ : / @ % + , ~ -"
                             f' in a value); e.g. {name}="rollout_pct=10 feature_x=on"')
        if key == "rollout_pct":
            whole(f"{name} rollout_pct", val, high=100, example="10")
    keys = [pair.partition("=")[0] for pair in pairs]
    if len(set(keys)) != len(keys):
        raise _refuse(name, value, "gives a key twice; give each key once")
    return " ".join(pairs)


def url(name: str, value: str) -> str:
    value = value.strip()
    if not _URL.fullmatch(value):
        raise _refuse(name, value, f"is not an http(s) URL (%-encode a user or password); e.g. {name}=http://prometheus:9090")
    return value.rstrip("/")


def sha256(name: str, value: str) -> str:
    value = value.strip()
    if not _SHA256.fullmatch(value):
        raise _refuse(name, value, f"is not a sha256 (64 hex digits); e.g. {name}=$(sha256sum FILE | cut -c1-64)")
    return value.lower()


def inventory(env: Mapping[str, str]) -> str | None:
    """INVENTORY: an inventory path (as ansible-playbook's -i takes it), or unset (ansible.cfg's)."""
    value = env.get("INVENTORY", "").strip()
    if value and not _PATH.fullmatch(value):
        raise _refuse("INVENTORY", value, "is not a usable inventory path: only letters, digits, spaces and "
                                          ". _ + @ % , : = / ~ -")
    return value or None


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
