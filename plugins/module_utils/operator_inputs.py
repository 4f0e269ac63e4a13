"""The one schema of operator input: every value a deploy, rollback or rollout takes from a person.

Used twice with the same rules: by the on-call tools (edge_canary.ops.inputs, which name the make
variables: BATCH=...) before anything runs, and by the playbooks themselves through the
edge.canary.operator_inputs action (which name the extra vars: deploy_batch=...), so that a play run
by plain ansible-playbook, ansible-runner or AWX refuses the same values with the same line.

A check returns the value as the play uses it, or raises InputError with one line saying what to
give instead. Everything is ASCII and whole numbers are `[0-9]` only: `str.isdigit()` and `int()`
accept `²` and Arabic-Indic digits, which must be refused, not crash or be silently converted.
Standard library only.
"""

from __future__ import annotations

import getpass
import os
import re
import stat
import time
from collections.abc import Callable

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
_USERINFO = re.compile(r"(?<=://)[^/@]*@")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_PCT = re.compile(r"[0-9]{1,3}")
# A run id names a folder under runs/: no slash, no dot first.
RUN_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_USER_CHARS = re.compile(r"[^A-Za-z0-9_.-]")


class InputError(ValueError):
    """A value that cannot be used; the message is one line saying what to give instead."""


def _mask_userinfo(text: str) -> str:
    return _USERINFO.sub("***@", text)


# What hides secrets in a quoted value; edge_canary.ops.inputs sets the watcher's full scrubber.
SCRUB: list[Callable[[str], str]] = [_mask_userinfo]


def shown(value: str, limit: int = 80) -> str:
    """The value as a message may quote it: credentials scrubbed, control characters escaped, short."""
    text = SCRUB[0](value).encode("ascii", "backslashreplace").decode()
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _refuse(name: str, value: str, why: str, limit: int = 80) -> InputError:
    return InputError(f"{name}={shown(value, limit)} {why}")


def node_name(name: str, value: str) -> str:
    value = value.strip()
    if not NODE.fullmatch(value):
        raise _refuse(name, value, "is not a node name (letters, digits, . _ -); e.g. edge-2")
    return value


def node_list(name: str, value: str, *, allow_all: bool) -> list[str]:
    """`edge-2,edge-3`, `edge-2 edge-3` (or `all` when allowed): each item a node name, no repeats."""
    items = [item for item in _SPLIT.split(value.strip(" ")) if item]
    example = f"{name}=edge-2,edge-3 or {name}=all" if allow_all else f"{name}=edge-2,edge-3"
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


def flag(name: str, value: str) -> bool:
    """A yes/no setting: 1, true, yes, on or 0, false, no, off (any case)."""
    word = str(value).strip().lower()
    if word in {"1", "true", "yes", "on"}:
        return True
    if word in {"0", "false", "no", "off"}:
        return False
    raise _refuse(name, value, f"is not a yes/no flag; e.g. {name}=1 (or 0)")


def path(name: str, value: str) -> str:
    """An absolute path on the control host (relative to the current folder when given so)."""
    value = value.strip()
    if not _PATH.fullmatch(value):
        raise _refuse(
            name,
            value,
            "is not a usable path: only letters, digits, spaces and . _ + @ % , : = / ~ -; rename or link the file",
        )
    return os.path.abspath(value)


# A path the operator must go and fix is quoted whole: _PATH already kept out what a message must not carry.
WHOLE_PATH = 4096


def _file_problem(full: str, *, executable: bool) -> str:
    """What stops the file at `full` (symlinks followed) being read as an edge binary, "" when nothing."""
    try:
        st = os.stat(full)
    except FileNotFoundError:
        return "does not exist"
    except OSError as exc:
        return f"cannot be looked at ({exc.strerror})"
    if stat.S_ISDIR(st.st_mode):
        return "is a directory, not a binary"
    if not stat.S_ISREG(st.st_mode):
        return "is not a regular file"
    # root may read anything: also require a read bit, a release without one is a broken file
    if not os.access(full, os.R_OK) or not st.st_mode & 0o444:
        return "is not readable"
    if executable and not os.access(full, os.X_OK):
        return "is not executable"
    return ""


def artifact(name: str, value: str) -> str:
    """The release to deploy: an executable regular file on the control host (a symlink to one will do)."""
    full = path(name, value)
    problem = _file_problem(full, executable=True)
    if problem:
        raise _refuse(name, full, f"{problem}: give the path of a built edge binary "
                                  "(make artifacts builds the lab's; chmod 0755 a downloaded one)", limit=WHOLE_PATH)
    return full


def rollback_binary(name: str, value: str) -> str:
    """A known-good edge binary on the control host; it takes the mode of the binary it replaces."""
    full = path(name, value)
    problem = _file_problem(full, executable=False)
    if problem:
        raise _refuse(name, full, f"{problem}: give a known-good edge binary", limit=WHOLE_PATH)
    return full


def migrations_dir(name: str, value: str) -> str:
    full = path(name, value)
    if not os.path.isdir(full):
        raise _refuse(name, full, "is not a directory on the control host; "
                                  "give the directory holding the .sql migrations", limit=WHOLE_PATH)
    return full


def config(name: str, value: str) -> str:
    """`key=value key2=value2`: keys like feature_x, values without spaces, quotes or braces."""
    pairs = value.split()
    for pair in pairs:
        key, sep, val = pair.partition("=")
        if not sep or not _CONFIG_KEY.fullmatch(key) or not _CONFIG_VALUE.fullmatch(val):
            raise InputError(
                f"{name} entry '{shown(pair, 40)}' is not key=value (letters, digits, . _ : / @ % + , ~ -"
                f' in a value); e.g. {name}="rollout_pct=10 feature_x=on"'
            )
        if key == "rollout_pct":
            whole(f"{name} rollout_pct", val, high=100, example="10")
        elif key.lower().replace("-", "_") == "rollout_pct":  # a typo would leave the code path unmoved
            raise InputError(f"{name} key {key} is not rollout_pct, which moves traffic between code paths; "
                             f"write rollout_pct={shown(val, 20)}")
    keys = [pair.partition("=")[0] for pair in pairs]
    if len(set(keys)) != len(keys):
        raise _refuse(name, value, "gives a key twice; give each key once")
    return " ".join(pairs)


def url(name: str, value: str) -> str:
    value = value.strip()
    if not _URL.fullmatch(value):
        raise _refuse(
            name, value, f"is not an http(s) URL (%-encode a user or password); e.g. {name}=http://prometheus:9090"
        )
    return value.rstrip("/")


def url_without_credentials(name: str, value: str) -> str:
    """A URL for a play's extra vars: credentials go by environment (PROM_USER/PROM_PASSWORD/PROM_TOKEN)."""
    checked = url(name, value)
    if _USERINFO.search(checked):
        raise _refuse(
            name,
            value,
            "carries a user or password: give them as PROM_USER/PROM_PASSWORD (or "
            "PROM_TOKEN) in the environment, never in a variable",
        )
    return checked


def sha256(name: str, value: str) -> str:
    value = value.strip()
    if not _SHA256.fullmatch(value):
        raise _refuse(name, value, f"is not a sha256 (64 hex digits); e.g. {name}=$(sha256sum FILE | cut -c1-64)")
    return value.lower()


def inventory_path(name: str, value: str) -> str | None:
    """An inventory path (as ansible-playbook's -i takes it), or None when empty."""
    value = value.strip()
    if value and not _PATH.fullmatch(value):
        raise _refuse(
            name, value, "is not a usable inventory path: only letters, digits, spaces and . _ + @ % , : = / ~ -"
        )
    return value or None


def run_id(name: str, value: str) -> str:
    """A deploy or rollout id given by the caller: it names a record folder."""
    value = value.strip()
    if not RUN_ID.fullmatch(value):
        raise _refuse(
            name, value, f"is not a usable id (letters, digits, . _ -; no slash); e.g. {name}={new_deploy_id()}"
        )
    return value


# --- ids ---------------------------------------------------------------------------------------


def operator() -> str:
    """Who runs this, as an id may carry it (AWX's execution containers may have no login name)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = ""
    return _USER_CHARS.sub("", user)[:32] or "ops"


def new_deploy_id(now: float | None = None) -> str:
    """`<UTC>-<user>-<6 hex>`, e.g. 20261202T013000Z-alice-3f9a0c."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    return f"{stamp}-{operator()}-{os.urandom(3).hex()}"


def new_run_id(kind: str, now: float | None = None) -> str:
    """`<kind>-<UTC>-<user>` (a rollout's or a rollback's), e.g. rollout-20261202T013000Z-alice."""
    return f"{kind}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(now))}-{operator()}"


# --- rollout requests --------------------------------------------------------------------------


def rollout_stages(pct_name: str, pct: str, stages_name: str, stages: str) -> tuple[tuple[int, ...], str]:
    """PCT or STAGES (not both), each a whole number 0-100, stages going up: (the stages, how asked)."""
    pct, stages = pct.strip(), stages.strip()
    if bool(pct) == bool(stages):
        raise InputError(
            f"give {pct_name} or {stages_name}, not both"
            if pct
            else f'give {pct_name}=N (0-100) or {stages_name}="1 10 50 100"'
        )
    asked = f"{pct_name}={shown(pct)}" if pct else f'{stages_name}="{shown(stages)}"'
    tokens = [pct] if pct else re.findall(r"[^,\s]+", stages)
    for token in tokens:
        if not _PCT.fullmatch(token) or int(token) > 100:
            raise InputError(
                f"{asked}: {shown(token, 20)} is not a whole number from 0 to 100; "
                f'e.g. {pct_name}=10 or {stages_name}="1 10 50 100"'
            )
    values = tuple(int(t) for t in tokens)
    if any(later <= earlier for earlier, later in zip(values, values[1:], strict=False)):
        raise InputError(f'{asked}: each stage must be above the one before, e.g. {stages_name}="1 10 50 100"')
    return values, asked


def hold_seconds(name: str, value: str) -> int | None:
    """ROLLOUT_HOLD: whole seconds (0 = no watch), or None when empty."""
    value = value.strip()
    if value and not WHOLE.fullmatch(value):
        raise _refuse(name, value, "is not a whole number of seconds (0 = no watch)")
    return int(value) if value else None


# --- the variables of each playbook --------------------------------------------------------------

Check = Callable[[str, str], object]

# make/env variable -> (extra var, check). Only the ones given are checked and passed.
DEPLOY: dict[str, tuple[str, Check]] = {
    "ARTIFACT": ("deploy_artifact", artifact),
    "CANARY_NODE": ("deploy_canary_node", node_name),
    "PEER_NODES": ("deploy_peer_nodes", lambda n, v: ",".join(node_list(n, v, allow_all=False))),
    "BATCH": ("deploy_batch", lambda n, v: whole(n, v, low=1, example="2")),
    "CONFIG": ("deploy_config", config),
    "SLI_WINDOW": ("sli_window", lambda n, v: positive(n, v, "300")),
    "SLI_PROBE_INTERVAL": ("sli_probe_interval", lambda n, v: positive(n, v, "15")),
    "PROM_URL": ("prom_url", url),
    "PROM_P95_THRESHOLD_S": ("prom_p95_threshold_s", lambda n, v: positive(n, v, "0.5")),
    "PROM_ERR_RATE_THRESHOLD": ("prom_err_rate_threshold", lambda n, v: positive(n, v, "0.01")),
    "ROLLBACK_BINARY": ("rollback_binary", rollback_binary),
    "MIGRATIONS_DIR": ("migrations_dir", migrations_dir),
    "ARTIFACT_SHA256": ("deploy_artifact_sha256", sha256),
    "APPROVAL_TIMEOUT": ("deploy_approval_timeout", lambda n, v: whole(n, v, low=1, example="1800")),
}
ROLLBACK: dict[str, tuple[str, Check]] = {
    "NODES": ("rollback_nodes", lambda n, v: ",".join(node_list(n, v, allow_all=True))),
    "ROLLBACK_BINARY": ("rollback_binary", rollback_binary),
    "BATCH": ("rollback_batch", lambda n, v: whole(n, v, low=1, example="2")),
    "MAX_UNAVAILABLE": ("rollback_max_unavailable", lambda n, v: whole(n, v, low=1, example="2")),
}
SCHEMAS = {"deploy": DEPLOY, "rollback": ROLLBACK}
