#!/usr/bin/python
"""Ansible module: push, revert, inspect the edge binary and its config on a node.

Runs on the node with only the Python standard library and ansible-core's module_utils.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import stat
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
---
module: edge_release
short_description: Push, revert and inspect the edge binary and its config keys on a node
description:
  - Keeps the binary at I(install_dir)/I(binary_name) and the config file at I(config_path),
    each with a C(.previous) copy holding the state before the last change, and a JSON release
    record.
  - Every file is replaced by an atomic rename of a fsynced temp file in the same directory.
  - An interrupted push or revert (killed between any two steps) can be re-run and ends
    consistent; the last-known-good binary is never lost.
options:
  state:
    description: C(pushed) installs a staged artifact, C(reverted) restores C(.previous) (or
      I(rollback_binary)), C(inspected) only reads, C(serving) records the sha256 the running
      service serves, C(configured) sets config keys only (atomic write of the config file;
      the binaries and both C(.previous) files are left as they are).
    type: str
    choices: [pushed, reverted, inspected, serving, configured]
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
  staged:
    description: Path on the node of the already-copied artifact (C(state=pushed)).
    type: path
  sha256:
    description: Expected sha256 of the staged artifact, computed on the control host.
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
  remove_staged:
    description: After a successful C(pushed) (or C(reverted) with I(rollback_binary)), delete I(staged)
      (or I(rollback_binary)) and its directory when that is left empty, so no clean-up task is needed.
      Ignored in check mode.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Push the staged artifact and set rollout_pct
  edge_release:
    state: pushed
    install_dir: /opt/edge
    config_path: /etc/edge/edge.conf
    staged: /opt/edge/.staging/0f1e...
    sha256: 0f1e...
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
first_deploy:
  description: True when the node had no binary before this push (no .previous is created).
  type: bool
  returned: pushed
record:
  description: The release record after the call (what it would be, in check mode).
  type: dict
  returned: always
"""

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
CONFIG_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
TMP_MARK = ".edge-release-tmp."
DEFAULT_BINARY_MODE = 0o755
DEFAULT_CONFIG_MODE = 0o644
# Keys of the release record this module owns; every other key (serving_sha256 is written through
# state=serving, anything else by other tools) is carried over untouched.
OWNED_KEYS = ("current", "previous", "config", "time", "deploy_id", "action", "first_deploy",
              "rolled_back", "pending", "pending_rollback")
# Test hook only: "<step>" or "<step>:INT" makes the module SIGKILL (or SIGINT) itself right after
# the named step, to prove a re-run recovers.
KILL_AFTER_ENV = "EDGE_RELEASE_TEST_KILL_AFTER"


class ReleaseError(Exception):
    """Bad input or a node state the module refuses to act on; nothing has been changed."""


# ------------------------------------------------------------------------------------------------
# Values


@dataclass(frozen=True)
class FileState:
    sha256: str | None = None
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None

    @property
    def exists(self) -> bool:
        return self.sha256 is not None


@dataclass(frozen=True)
class Pending:
    """What a push in progress started from (the last-known-good), kept until the push finishes."""

    from_sha256: str | None
    from_version: str | None
    from_config_sha256: str | None
    target_sha256: str

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Pending | None:
        raw = record.get("pending")
        if not isinstance(raw, dict) or not raw.get("target_sha256"):
            return None
        return cls(
            from_sha256=raw.get("from_sha256"),
            from_version=raw.get("from_version"),
            from_config_sha256=raw.get("from_config_sha256"),
            target_sha256=raw["target_sha256"],
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "from_sha256": self.from_sha256,
            "from_version": self.from_version,
            "from_config_sha256": self.from_config_sha256,
            "target_sha256": self.target_sha256,
        }


@dataclass(frozen=True)
class NodeState:
    binary: FileState
    previous: FileState
    config_text: str | None
    config_previous_text: str | None
    record: dict[str, Any] = field(default_factory=dict)
    config_managed: bool = True

    @property
    def pending(self) -> Pending | None:
        return Pending.from_record(self.record)

    @property
    def pending_rollback(self) -> dict[str, Any] | None:
        """Intent of a revert that was interrupted before it completed the record."""
        raw = self.record.get("pending_rollback")
        return raw if isinstance(raw, dict) else None


@dataclass(frozen=True)
class PushPlan:
    changed: bool
    write_binary: bool
    rotate_binary: bool  # current binary -> .previous
    rotate_config: bool  # current config -> .previous
    write_config: bool
    new_config_text: str | None
    first_deploy: bool
    resumed: bool
    pending: Pending | None
    previous_after_sha256: str | None


@dataclass(frozen=True)
class RevertPlan:
    changed: bool
    restore_binary: bool  # current binary kept aside as .rolled-back, source put in place
    sync_previous_binary: bool  # .previous := the restored binary
    restore_config: bool  # current config kept aside, .previous config put in place
    sync_previous_config: bool  # config .previous := current config
    source_sha256: str
    clears_pending: bool


@dataclass(frozen=True)
class ConfigurePlan:
    changed: bool
    write_config: bool
    new_config_text: str
    record_config: dict[str, str]  # the config keys the record must show afterwards


# ------------------------------------------------------------------------------------------------
# Pure functions: config text and decisions


def sha256_text(text: str | None) -> str | None:
    return None if text is None else hashlib.sha256(text.encode()).hexdigest()


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        raise ReleaseError("a config key has no value; give every key in the config a value")
    text = str(value)
    if "\n" in text or "\r" in text:
        raise ReleaseError(f"config value {text!r} spans several lines; config values are one line")
    return text


def normalize_config(updates: dict[str, Any]) -> dict[str, str]:
    """Validate the keys to set and render their values the way the edge binary reads them."""
    out: dict[str, str] = {}
    for key, value in updates.items():
        if not CONFIG_KEY_RE.match(str(key)):
            raise ReleaseError(
                f"config key {key!r} is not a plain key; use letters, digits, '_', '.', '-'"
            )
        try:
            out[str(key)] = format_value(value)
        except ReleaseError as exc:
            raise ReleaseError(f"config key {key!r}: {exc}") from None
    return out


def parse_config(text: str | None) -> dict[str, str]:
    """Flat key=value lines; blanks, comments and lines without '=' are ignored; last one wins."""
    keys: dict[str, str] = {}
    for line in (text or "").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or "=" not in stripped:
            continue
        key, _, value = stripped.partition("=")
        keys[key.strip()] = value.strip()
    return keys


def merge_config(text: str | None, updates: dict[str, str]) -> str | None:
    """Set the given keys in place (each occurrence), append missing ones; keep every other line."""
    if not updates:
        return text
    lines = (text or "").splitlines()
    seen: set[str] = set()
    out: list[str] = []
    for line in lines:
        stripped = line.strip()
        key = stripped.partition("=")[0].strip()
        if "=" in stripped and not stripped.startswith("#") and key in updates:
            out.append(f"{key}={updates[key]}")
            seen.add(key)
        else:
            out.append(line)
    out.extend(f"{key}={value}" for key, value in updates.items() if key not in seen)
    return "\n".join(out) + "\n"


def plan_push(state: NodeState, target_sha256: str, updates: dict[str, str]) -> PushPlan:
    """Decide what a push does.

    Without a push in progress, the current pair (binary, config) becomes .previous whenever
    anything changes. With one in progress (a pending intent left by an interrupted run), .previous
    must end up holding the state that push started from: a file still equal to that state is
    rotated, a file already replaced is not (its .previous was written before it was replaced).
    """
    if state.pending_rollback is not None:
        raise ReleaseError(
            "an interrupted rollback is not finished on this node; re-run the rollback first"
        )
    new_config = merge_config(state.config_text, updates)
    write_binary = state.binary.sha256 != target_sha256
    write_config = new_config != state.config_text
    pending = state.pending
    if not (write_binary or write_config or pending):
        return PushPlan(False, False, False, False, False, state.config_text, False, False, None,
                        state.previous.sha256)
    if pending is None:
        from_sha = state.binary.sha256
        from_cfg = sha256_text(state.config_text)
        pending = Pending(from_sha, version_of(from_sha, state.record), from_cfg, target_sha256)
        resumed = False
    else:
        pending = Pending(pending.from_sha256, pending.from_version, pending.from_config_sha256,
                          target_sha256)
        resumed = True
    rotate_binary = (
        state.binary.exists
        and state.binary.sha256 == pending.from_sha256
        and state.previous.sha256 != state.binary.sha256
    )
    # A config file that does not exist yet is kept as an empty .previous (no keys: the binary's
    # defaults), so that a revert takes away keys this push adds.
    config_before = state.config_text
    if config_before is None and pending.from_config_sha256 is None and pending.from_sha256:
        config_before = "" if state.config_managed and write_config else None
    rotate_config = (
        config_before is not None
        and (state.config_text is None or sha256_text(config_before) == pending.from_config_sha256)
        and state.config_previous_text != config_before
    )
    previous_after = state.binary.sha256 if rotate_binary else state.previous.sha256
    return PushPlan(
        changed=True,
        write_binary=write_binary,
        rotate_binary=rotate_binary,
        rotate_config=rotate_config,
        write_config=write_config,
        new_config_text=new_config,
        first_deploy=pending.from_sha256 is None,
        resumed=resumed,
        pending=pending,
        previous_after_sha256=previous_after,
    )


def plan_revert(
    state: NodeState, rollback: FileState | None, previous_path: str
) -> RevertPlan:
    """Decide what a revert does; after it, current and .previous are the same (binary, config).

    A file that an interrupted push had not replaced yet is already the last-known-good: it stays,
    and its .previous is set to it. The push's intent stays in the record until the revert
    completes, so a re-run of an interrupted revert decides the same way.
    """
    pending = state.pending
    if rollback is not None:
        source = rollback.sha256
    elif not state.previous.exists:
        raise ReleaseError(
            f"no rollback artifact on this node: {previous_path} does not exist; "
            "pass ROLLBACK_BINARY=/path/to/known-good-binary"
        )
    elif pending and state.binary.exists and state.binary.sha256 == pending.from_sha256:
        source = state.binary.sha256
    else:
        source = state.previous.sha256
    assert source is not None
    restore_binary = state.binary.sha256 != source
    sync_previous_binary = state.previous.sha256 != source

    config_untouched = (
        pending is not None
        and state.config_text is not None
        and sha256_text(state.config_text) == pending.from_config_sha256
    )
    if config_untouched:
        restore_config = False
        sync_previous_config = state.config_previous_text != state.config_text
    else:
        restore_config = (
            state.config_previous_text is not None
            and state.config_text != state.config_previous_text
        )
        sync_previous_config = False
    unfinished = pending is not None or state.pending_rollback is not None
    changed = (restore_binary or sync_previous_binary or restore_config or sync_previous_config
               or unfinished)
    return RevertPlan(changed, restore_binary, sync_previous_binary, restore_config,
                      sync_previous_config, source, unfinished)


def plan_configure(state: NodeState, updates: dict[str, str]) -> ConfigurePlan:
    """Decide what a config-only change does: write the merged config when it differs, and bring
    the record's config keys in line (also after a run killed between the two writes).

    Refused while a push or a rollback is unfinished: their resume logic compares the config file
    with the one they started from, and a key written in between would be rotated or lost.
    """
    if not updates:
        raise ReleaseError("no config keys given; state=configured needs at least one key=value")
    if not state.config_managed:
        raise ReleaseError("config keys were given but no config_path; set edge_config_path")
    if state.pending is not None:
        raise ReleaseError(
            "an interrupted push is not finished on this node; re-run the deploy (or make rollback) "
            "before changing config keys"
        )
    if state.pending_rollback is not None:
        raise ReleaseError(
            "an interrupted rollback is not finished on this node; re-run the rollback first"
        )
    new_text = merge_config(state.config_text, updates)
    assert new_text is not None  # updates is not empty
    keys = parse_config(new_text)
    write_config = new_text != state.config_text
    changed = write_config or state.record.get("config") != keys
    return ConfigurePlan(changed, write_config, new_text, keys)


def version_of(sha: str | None, record: dict[str, Any], known: dict[str, Any] | None = None) -> Any:
    """The version the record (or `known`) gives for a sha256; None when nobody knows."""
    if sha is None:
        return None
    if known and sha in known:
        return known[sha]
    for key in ("current", "previous", "rolled_back"):
        entry = record.get(key)
        if isinstance(entry, dict) and entry.get("sha256") == sha:
            return entry.get("version")
    return None


def known_versions(pairs: dict[str, Any]) -> dict[str, Any]:
    return {sha: version for sha, version in pairs.items() if version is not None}


def merge_owned(on_disk: dict[str, Any], ours: dict[str, Any]) -> dict[str, Any]:
    """The record on disk with the keys this module owns replaced by ours; other keys kept."""
    merged = {k: v for k, v in on_disk.items() if k not in OWNED_KEYS}
    merged.update({k: v for k, v in ours.items() if k in OWNED_KEYS})
    return merged


def release_ref(
    sha: str | None, record: dict[str, Any], known: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    if sha is None:
        return None
    return {"sha256": sha, "version": version_of(sha, record, known)}


# ------------------------------------------------------------------------------------------------
# Side effects: files


def file_sha256(path: str) -> str | None:
    try:
        with open(path, "rb") as fh:
            digest = hashlib.sha256()
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
            return digest.hexdigest()
    except FileNotFoundError:
        return None


def file_state(path: str) -> FileState:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return FileState()
    if not stat.S_ISREG(st.st_mode):
        raise ReleaseError(f"{path} is not a regular file; move it away and re-run")
    return FileState(file_sha256(path), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)


def read_text(path: str | None) -> str | None:
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except FileNotFoundError:
        return None


def read_record(path: str) -> dict[str, Any]:
    text = read_text(path)
    if text is None or not text.strip():
        return {}
    try:
        record = json.loads(text)
    except ValueError as exc:
        raise ReleaseError(
            f"release record {path} is not valid JSON ({exc}); fix or remove it"
        ) from None
    if not isinstance(record, dict):
        raise ReleaseError(f"release record {path} is not a JSON object; fix or remove it")
    return record


def fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_stale_temps(directory: str) -> None:
    """Temp files left by a run killed mid-write; they were never renamed into place."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return
    for name in names:
        if TMP_MARK in name:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(directory, name))


def write_temp(
    dest: str, data_from: str | bytes, like: FileState, default_mode: int
) -> tuple[str, str]:
    """Write a fsynced temp file beside `dest` (from a path, or bytes); return (temp, sha256)."""
    directory = os.path.dirname(dest) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(dest)}{TMP_MARK}")
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            if isinstance(data_from, bytes):
                out.write(data_from)
                digest.update(data_from)
            else:
                with open(data_from, "rb") as src:
                    for chunk in iter(lambda: src.read(1 << 20), b""):
                        out.write(chunk)
                        digest.update(chunk)
            os.fchmod(out.fileno(), like.mode if like.mode is not None else default_mode)
            if like.uid is not None and like.gid is not None:
                with contextlib.suppress(PermissionError):
                    os.fchown(out.fileno(), like.uid, like.gid)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp, digest.hexdigest()


def install(tmp: str, dest: str) -> None:
    os.replace(tmp, dest)
    fsync_dir(os.path.dirname(dest) or ".")


def atomic_copy(src: str, dest: str, like: FileState, default_mode: int) -> str:
    tmp, digest = write_temp(dest, src, like, default_mode)
    install(tmp, dest)
    return digest


def atomic_write_text(dest: str, text: str, like: FileState, default_mode: int) -> None:
    tmp, _ = write_temp(dest, text.encode(), like, default_mode)
    install(tmp, dest)


def write_record(path: str, record: dict[str, Any]) -> None:
    text = json.dumps(record, indent=2, sort_keys=True) + "\n"
    atomic_write_text(path, text, file_state(path), DEFAULT_CONFIG_MODE)


def checkpoint(step: str) -> None:
    wanted, _, signame = os.environ.get(KILL_AFTER_ENV, "").partition(":")
    if wanted == step:
        os.kill(os.getpid(), signal.SIGINT if signame == "INT" else signal.SIGKILL)


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# ------------------------------------------------------------------------------------------------
# Actions


@dataclass(frozen=True)
class Paths:
    binary: str
    previous: str
    rolled_back: str
    config: str | None
    config_previous: str | None
    config_rolled_back: str | None
    record: str

    @classmethod
    def from_params(cls, p: dict[str, Any]) -> Paths:
        name = p["binary_name"]
        if not name or "/" in name or name in (".", ".."):
            raise ReleaseError(f"binary_name {name!r} must be a plain file name")
        if not os.path.isabs(p["install_dir"]):
            raise ReleaseError(f"install_dir {p['install_dir']!r} must be an absolute path")
        binary = os.path.join(p["install_dir"], name)
        config = p.get("config_path") or None
        return cls(
            binary=binary,
            previous=binary + ".previous",
            rolled_back=binary + ".rolled-back",
            config=config,
            config_previous=config + ".previous" if config else None,
            config_rolled_back=config + ".rolled-back" if config else None,
            record=p.get("record_path") or os.path.join(p["install_dir"], "release.json"),
        )


def read_state(paths: Paths) -> NodeState:
    return NodeState(
        binary=file_state(paths.binary),
        previous=file_state(paths.previous),
        config_text=read_text(paths.config),
        config_previous_text=read_text(paths.config_previous),
        record=read_record(paths.record),
        config_managed=paths.config is not None,
    )


def prepare_dirs(paths: Paths) -> None:
    for path in (paths.binary, paths.config, paths.record):
        if path:
            directory = os.path.dirname(path)
            os.makedirs(directory, exist_ok=True)
            remove_stale_temps(directory)


def verify_artifact(path: str, expected: str | None, check_mode: bool, what: str) -> list[str]:
    """Refuse a missing artifact or one whose sha256 on the node is not the expected one.

    In check mode the tasks do not copy the artifact, so a missing one is only noted."""
    found = file_sha256(path)
    if found is None:
        if check_mode and expected is not None:
            return [f"{what} not on the node in check mode: sha256 not verified"]
        raise ReleaseError(f"{what} {path} is not on the node; copy it there first")
    if expected is not None and found != expected:
        raise ReleaseError(
            f"sha256 mismatch for {what} {path}: expected {expected}, found {found}; "
            "the artifact changed or was corrupted in transit, rebuild or re-copy it"
        )
    return []


def push(p: dict[str, Any], paths: Paths, check_mode: bool) -> dict[str, Any]:
    expected = (p.get("sha256") or "").strip().lower()
    if not SHA256_RE.match(expected):
        raise ReleaseError("sha256 must be the 64-hex-digit sha256 of the artifact")
    staged = p.get("staged")
    if not staged:
        raise ReleaseError("staged (the artifact's path on the node) is required with state=pushed")
    updates = normalize_config(p.get("config") or {})
    if updates and not paths.config:
        raise ReleaseError("config keys were given but no config_path; set edge_config_path")

    notes = verify_artifact(staged, expected, check_mode, "staged artifact")
    state = read_state(paths)
    plan = plan_push(state, expected, updates)
    record = dict(state.record)
    known = known_versions({expected: p.get("version")})
    if plan.pending is not None and plan.pending.from_sha256:
        known = {**known_versions({plan.pending.from_sha256: plan.pending.from_version}), **known}
    after_record = dict(record)
    if plan.changed:
        after_record.pop("pending", None)
        after_record.update(
            current=release_ref(expected, record, known),
            previous=release_ref(plan.previous_after_sha256, record, known),
            config=parse_config(plan.new_config_text),
            time=now_iso(),
            deploy_id=p.get("deploy_id"),
            action="deploy",
            first_deploy=plan.first_deploy,
        )

    # Order (each step atomic; a kill between any two leaves a state a re-run completes):
    #   1 new binary written to a temp file beside the current one and verified (a full disk or a
    #     changed artifact fails here, with nothing changed)
    #   2 pending intent in the record: remembers the last-known-good the push started from
    #   3 current binary -> .previous, 4 current config -> .previous (the last-known-good is now in
    #     .previous while still being current too)
    #   5 temp renamed over the binary, 6 new config written, 7 record completed, intent dropped.
    # A re-run reads the intent: it rotates only files still equal to the starting state, so
    # .previous is never overwritten by a half-pushed binary.
    if plan.changed and not check_mode:
        prepare_dirs(paths)
        tmp = None
        if plan.write_binary:
            tmp, digest = write_temp(paths.binary, staged, state.binary, DEFAULT_BINARY_MODE)
            if digest != expected:
                os.unlink(tmp)
                raise ReleaseError(f"{staged} changed while being installed; re-run the push")
        checkpoint("binary-staged")
        pending_record = dict(read_record(paths.record))
        assert plan.pending is not None
        pending_record["pending"] = {**plan.pending.as_dict(), "deploy_id": p.get("deploy_id"),
                                     "started": now_iso()}
        write_record(paths.record, pending_record)
        checkpoint("pending")
        if plan.rotate_binary:
            atomic_copy(paths.binary, paths.previous, state.binary, DEFAULT_BINARY_MODE)
        checkpoint("previous-binary")
        if plan.rotate_config and paths.config and paths.config_previous:
            if state.config_text is None:
                atomic_write_text(paths.config_previous, "", FileState(), DEFAULT_CONFIG_MODE)
            else:
                atomic_copy(paths.config, paths.config_previous, file_state(paths.config),
                            DEFAULT_CONFIG_MODE)
        checkpoint("previous-config")
        if tmp is not None:
            install(tmp, paths.binary)
        checkpoint("binary")
        if plan.write_config and paths.config and plan.new_config_text is not None:
            atomic_write_text(paths.config, plan.new_config_text, file_state(paths.config),
                              DEFAULT_CONFIG_MODE)
        checkpoint("config")
        final = merge_owned(read_record(paths.record), after_record)
        write_record(paths.record, final)
        checkpoint("record")
        after_record = final

    if not plan.changed:
        msg = "artifact and config keys already current: nothing changed"
    elif plan.first_deploy:
        msg = "first deploy on this node: no previous binary, so no .previous was created"
    elif plan.resumed:
        msg = "finished an interrupted push; .previous holds the release it started from"
    else:
        msg = "pushed; the former binary and config are kept as .previous"
    if check_mode and plan.changed:
        msg = "check mode, nothing changed: " + msg
    if notes:
        msg += f" ({'; '.join(notes)})"
    return {
        "changed": plan.changed,
        "action": "deploy" if plan.changed else "none",
        "first_deploy": plan.first_deploy,
        "resumed": plan.resumed,
        "current": {
            "before": release_ref(state.binary.sha256, record),
            "after": release_ref(expected, record, known),
        },
        "previous": {
            "before": release_ref(state.previous.sha256, record),
            "after": release_ref(plan.previous_after_sha256, record, known),
        },
        "config": {
            "before": parse_config(state.config_text),
            "after": parse_config(plan.new_config_text),
        },
        "record": after_record,
        "msg": msg,
    }


def revert(p: dict[str, Any], paths: Paths, check_mode: bool) -> dict[str, Any]:
    rollback_path = p.get("rollback_binary")
    rollback = None
    notes: list[str] = []
    if rollback_path:
        expected = (p.get("sha256") or "").strip().lower() or None
        if expected is not None and not SHA256_RE.match(expected):
            raise ReleaseError("sha256 must be the 64-hex-digit sha256 of the rollback binary")
        notes = verify_artifact(rollback_path, expected, check_mode, "rollback_binary")
        rollback = file_state(rollback_path)
        if not rollback.exists and expected is not None:  # check mode: not copied to the node
            rollback = FileState(sha256=expected)
    state = read_state(paths)
    plan = plan_revert(state, rollback, paths.previous)
    record = state.record
    known = known_versions({plan.source_sha256: p.get("version")}) if rollback is not None else {}
    source_ref = release_ref(plan.source_sha256, record, known)
    config_after_text = (state.config_previous_text if plan.restore_config else state.config_text)
    rolled_back = None
    if plan.restore_binary and state.binary.exists:
        rolled_back = {
            "sha256": state.binary.sha256,
            "version": version_of(state.binary.sha256, record),
            "path": paths.rolled_back,
        }
    elif state.pending_rollback is not None:  # this binary was set aside by the interrupted run
        rolled_back = state.pending_rollback.get("rolled_back")
    after_record = dict(record)
    if plan.changed:
        for key in ("pending", "pending_rollback", "first_deploy"):
            after_record.pop(key, None)
        after_record.update(
            current=source_ref,
            previous=source_ref,
            config=parse_config(config_after_text),
            time=now_iso(),
            deploy_id=p.get("deploy_id"),
            action="rollback",
        )
        if rolled_back:
            after_record["rolled_back"] = rolled_back

    # Order: 1 rollback intent in the record (what is being set aside), 2 the binary being rolled
    # back copied aside (.rolled-back), 3 the source copied over the binary (atomic rename),
    # 4 .previous aligned, 5 the config likewise, 6 the record completed and intents dropped.
    # A re-run after a kill skips whatever already matches, so it never copies the good binary over
    # the set-aside one, and .rolled-back is never a source.
    if plan.changed and not check_mode:
        prepare_dirs(paths)
        intent = dict(read_record(paths.record))
        intent["pending_rollback"] = {"target_sha256": plan.source_sha256,
                                      "rolled_back": rolled_back, "deploy_id": p.get("deploy_id"),
                                      "started": now_iso()}
        write_record(paths.record, intent)
        checkpoint("pending")
        source_path = rollback_path or paths.previous
        if plan.restore_binary:
            if state.binary.exists:
                atomic_copy(paths.binary, paths.rolled_back, state.binary, DEFAULT_BINARY_MODE)
            checkpoint("binary-aside")
            like = state.binary if state.binary.exists else file_state(source_path)
            atomic_copy(source_path, paths.binary, like, DEFAULT_BINARY_MODE)
        checkpoint("binary")
        if plan.sync_previous_binary:
            atomic_copy(paths.binary, paths.previous, file_state(paths.binary), DEFAULT_BINARY_MODE)
        checkpoint("previous-binary")
        if plan.restore_config and paths.config and paths.config_previous:
            current_config = file_state(paths.config)
            if current_config.exists and paths.config_rolled_back:
                atomic_copy(paths.config, paths.config_rolled_back, current_config,
                            DEFAULT_CONFIG_MODE)
            atomic_copy(paths.config_previous, paths.config, current_config, DEFAULT_CONFIG_MODE)
        checkpoint("config")
        if plan.sync_previous_config and paths.config and paths.config_previous:
            atomic_copy(paths.config, paths.config_previous, file_state(paths.config),
                        DEFAULT_CONFIG_MODE)
        checkpoint("previous-config")
        final = merge_owned(read_record(paths.record), after_record)
        write_record(paths.record, final)
        checkpoint("record")
        after_record = final

    if not plan.changed:
        msg = "already on the rollback release (current equals .previous): nothing changed"
    elif plan.restore_binary:
        msg = (f"reverted to {plan.source_sha256[:12]}; the rolled-back binary is kept as "
               f"{paths.rolled_back}")
    else:
        msg = "binary already the last-known-good; finished aligning config, .previous and record"
    if check_mode and plan.changed:
        msg = "check mode, nothing changed: " + msg
    if notes:
        msg += f" ({'; '.join(notes)})"
    return {
        "changed": plan.changed,
        "action": "rollback" if plan.changed else "none",
        "current": {"before": release_ref(state.binary.sha256, record), "after": source_ref},
        "previous": {"before": release_ref(state.previous.sha256, record), "after": source_ref},
        "config": {
            "before": parse_config(state.config_text),
            "after": parse_config(config_after_text),
        },
        "rolled_back": after_record.get("rolled_back") if plan.restore_binary else None,
        "record": after_record,
        "msg": msg,
    }


def configure(p: dict[str, Any], paths: Paths, check_mode: bool) -> dict[str, Any]:
    updates = normalize_config(p.get("config") or {})
    state = read_state(paths)
    plan = plan_configure(state, updates)
    before_keys = parse_config(state.config_text)
    record = dict(state.record)
    if plan.changed:
        record["config"] = plan.record_config
        if plan.write_config:
            record["config_change"] = {
                "time": now_iso(),
                "deploy_id": p.get("deploy_id"),
                "set": updates,
                "before": {key: before_keys.get(key) for key in updates},
            }
    # Order: 1 config (atomic rename), 2 record. A kill between them leaves the new config with a
    # stale record; a re-run finds the file already right and only completes the record.
    if plan.changed and not check_mode:
        prepare_dirs(paths)
        assert paths.config is not None
        if plan.write_config:
            atomic_write_text(paths.config, plan.new_config_text, file_state(paths.config),
                              DEFAULT_CONFIG_MODE)
        checkpoint("config")
        on_disk = read_record(paths.record)
        on_disk["config"] = record["config"]
        if "config_change" in record:
            on_disk["config_change"] = record["config_change"]
        write_record(paths.record, on_disk)
        checkpoint("record")
        record = on_disk
    if not plan.changed:
        msg = "config keys already set: nothing changed"
    elif plan.write_config:
        msg = "config keys written (binaries and .previous untouched)"
    else:
        msg = "config keys already in the file; brought the release record in line"
    if check_mode and plan.changed:
        msg = "check mode, nothing changed: " + msg
    return {
        "changed": plan.changed,
        "action": "configure" if plan.changed else "none",
        "config": {"before": before_keys, "after": plan.record_config},
        "record": record,
        "diff": ({"before": state.config_text or "", "after": plan.new_config_text,
                  "before_header": paths.config, "after_header": paths.config}
                 if plan.write_config else {}),
        "msg": msg,
    }


def inspect(paths: Paths) -> dict[str, Any]:
    binary = file_state(paths.binary)
    previous = file_state(paths.previous)
    config_text = read_text(paths.config)
    try:
        record: dict[str, Any] = read_record(paths.record)
        record_error = None
    except ReleaseError as exc:
        record, record_error = {}, str(exc)
    serving = record.get("serving_sha256")
    return {
        "changed": False,
        "action": "inspect",
        "paths": {"binary": paths.binary, "previous": paths.previous, "config": paths.config,
                  "record": paths.record},
        "current": {**(release_ref(binary.sha256, record) or {"sha256": None, "version": None}),
                    "exists": binary.exists,
                    "mode": None if binary.mode is None else f"{binary.mode:04o}"},
        "previous": {**(release_ref(previous.sha256, record) or {"sha256": None, "version": None}),
                     "exists": previous.exists},
        "has_previous": previous.exists,
        "first_deploy": not binary.exists,
        "config": parse_config(config_text),
        "config_exists": config_text is not None,
        "config_previous_exists": read_text(paths.config_previous) is not None,
        "serving_sha256": serving,
        "serving_current": serving is not None and serving == binary.sha256,
        "pending": record.get("pending"),
        "pending_rollback": record.get("pending_rollback"),
        "record": record,
        "record_error": record_error,
        "msg": "read only",
    }


def serving(p: dict[str, Any], paths: Paths, check_mode: bool) -> dict[str, Any]:
    sha = (p.get("serving_sha256") or "").strip().lower() or file_sha256(paths.binary)
    if sha is None:
        raise ReleaseError(f"no binary at {paths.binary} and no serving_sha256 given")
    if not SHA256_RE.match(sha):
        raise ReleaseError("serving_sha256 must be a 64-hex-digit sha256")
    record = read_record(paths.record)
    changed = record.get("serving_sha256") != sha
    after = {**record, "serving_sha256": sha}
    if changed:
        after["serving_time"] = now_iso()
        if not check_mode:
            prepare_dirs(paths)
            write_record(paths.record, after)
    return {"changed": changed, "action": "serving" if changed else "none", "record": after,
            "msg": f"serving {sha[:12]}" + ("" if changed else " (already recorded)")}


def remove_staged(path: str | None) -> None:
    """The copied artifact is installed: drop it, and its staging directory once empty."""
    if not path:
        return
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    with contextlib.suppress(OSError):  # not empty, or already gone: leave it
        os.rmdir(os.path.dirname(path))


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "state": {"type": "str", "default": "inspected",
                      "choices": ["pushed", "reverted", "inspected", "serving", "configured"]},
            "install_dir": {"type": "path", "required": True},
            "binary_name": {"type": "str", "default": "edge"},
            "config_path": {"type": "path"},
            "record_path": {"type": "path"},
            "staged": {"type": "path"},
            "sha256": {"type": "str"},
            "version": {"type": "str"},
            "config": {"type": "dict", "default": {}},
            "deploy_id": {"type": "str"},
            "rollback_binary": {"type": "path"},
            "serving_sha256": {"type": "str"},
            "remove_staged": {"type": "bool", "default": False},
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
        else:
            result = inspect(paths)
        if p["remove_staged"] and not module.check_mode:
            remove_staged(p["staged"] if p["state"] == "pushed" else
                          p["rollback_binary"] if p["state"] == "reverted" else None)
    except ReleaseError as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        module.fail_json(msg=f"{exc}; fix the node's files or permissions and re-run (safe)")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
