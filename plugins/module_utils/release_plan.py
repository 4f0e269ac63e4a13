"""edge_release's pure part: release values, config text, and what a push, revert or config change does.

No I/O: every decision takes a NodeState (what is on the node) and returns a plan the actions carry out.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from typing import Any

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
CONFIG_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
# Keys of the release record this module owns; every other key (serving_sha256 is written through
# state=serving, anything else by other tools) is carried over untouched.
OWNED_KEYS = ("current", "previous", "previous_config_sha256", "config", "time", "deploy_id", "action",
              "first_deploy", "rolled_back", "pending", "pending_rollback", "good_sha256", "not_reached",
              "config_change")
# What a secret config key's value is shown as in the record, the module's output and its diff.
REDACTED = "********"


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
    # The push started from the last-known-good, so it rotates it into .previous; a push from a
    # release that never served healthily leaves .previous alone (records before this key: True).
    from_good: bool = True

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
            from_good=raw.get("from_good", True) is not False,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "from_sha256": self.from_sha256,
            "from_version": self.from_version,
            "from_config_sha256": self.from_config_sha256,
            "target_sha256": self.target_sha256,
            "from_good": self.from_good,
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

    @property
    def last_good(self) -> str | None:
        """sha256 of the last release that served healthily on this node (see last_good_sha256)."""
        return last_good_sha256(self.record, self.binary.sha256)


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
    # sha256 of the config's .previous afterwards (the record's previous_config_sha256).
    previous_config_after_sha256: str | None = None


@dataclass(frozen=True)
class RevertPlan:
    changed: bool
    restore_binary: bool  # current binary kept aside as .rolled-back, source put in place
    sync_previous_binary: bool  # .previous := the restored binary
    restore_config: bool  # current config kept aside, .previous config put in place
    sync_previous_config: bool  # config .previous := current config
    source_sha256: str
    clears_pending: bool
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ConfigurePlan:
    changed: bool
    write_config: bool
    new_config_text: str
    record_config: dict[str, str]  # the config keys the record must show afterwards


# ------------------------------------------------------------------------------------------------
# Pure functions: config text and decisions


def check_names(p: dict[str, Any]) -> None:
    """The checks of the paths and the binary's name that need no file system: the action plugin makes them
    on the control host too (importing only this module), before it copies anything to the node."""
    if "binary_name" in p:  # the module's default when the action plugin is not given it
        name = p["binary_name"]
        if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
            raise ReleaseError(f"binary_name {name!r} must be a plain file name")
    for option in ("install_dir", "config_path", "record_path"):
        if p.get(option):
            check_path_name(option, p[option])


def check_path_name(option: str, path: str) -> None:
    if not isinstance(path, str) or not os.path.isabs(path):
        raise ReleaseError(f"{option} {path!r} must be an absolute path")
    if ".." in path.split("/"):
        raise ReleaseError(f"{option} {path!r} contains '..'; give the path without it")


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
        key, _sep, value = stripped.partition("=")
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


def last_good_sha256(record: dict[str, Any], binary_sha256: str | None) -> str | None:
    """The last release that served healthily on the node: the record's good_sha256 (written when
    the service passed its health check, for a canary once the SLI gate promoted it); a record from
    before that key: its serving_sha256; no record at all (a node installed by hand): the binary
    it runs, since nothing says otherwise."""
    for key in ("good_sha256", "serving_sha256"):
        value = record.get(key)
        if isinstance(value, str) and SHA256_RE.match(value):
            return value
    if not record.get("current"):
        return binary_sha256
    return None


def plan_push(state: NodeState, target_sha256: str, updates: dict[str, str]) -> PushPlan:
    """Decide what a push does.

    The rule: .previous is always the last release that served healthily on the node. So only a
    push that replaces the binary, from a binary that is that last-known-good, rotates the current
    pair (binary, config) into .previous. A re-push of the running binary, a config-only change and
    a push over a release that never served leave both .previous files as they are.

    With a push in progress (a pending intent left by an interrupted run), .previous must end up
    holding the state that push started from when it started from the last-known-good: a file still
    equal to that state is rotated, a file already replaced is not (its .previous was written
    before it was replaced).
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
        from_good = write_binary and from_sha is not None and from_sha == state.last_good
        pending = Pending(from_sha, version_of(from_sha, state.record), from_cfg, target_sha256,
                          from_good)
        resumed = False
    else:
        pending = Pending(pending.from_sha256, pending.from_version, pending.from_config_sha256,
                          target_sha256, pending.from_good)
        resumed = True
    rotate_binary = (
        pending.from_good
        and state.binary.exists
        and state.binary.sha256 == pending.from_sha256
        and state.previous.sha256 != state.binary.sha256
    )
    # A config file that does not exist yet is kept as an empty .previous (no keys: the binary's
    # defaults), so that a revert takes away keys this push adds.
    config_before = state.config_text
    if config_before is None and pending.from_config_sha256 is None and pending.from_sha256:
        config_before = "" if state.config_managed and write_config else None
    config_is_start = (
        pending.from_good
        and config_before is not None
        and (state.config_text is None or sha256_text(config_before) == pending.from_config_sha256)
    )
    rotate_config = config_is_start and state.config_previous_text != config_before
    previous_after = state.binary.sha256 if rotate_binary else previous_kept(state)
    previous_config_after = (sha256_text(config_before) if config_is_start
                             else config_previous_kept(state))
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
        previous_config_after_sha256=previous_config_after,
    )


def previous_kept(state: NodeState) -> str | None:
    """What the record says .previous holds after a push that leaves it alone: the file's sha256 when
    the record allows it (or says nothing), else what the record had. A truncated or replaced
    .previous is never written into the record as if it were the last-known-good, so a later revert
    still refuses it."""
    allowed = recorded_previous(state)
    if allowed is None or state.previous.sha256 in allowed:
        return state.previous.sha256
    recorded = state.record.get("previous")
    return recorded.get("sha256") if isinstance(recorded, dict) else None


def plan_revert(
    state: NodeState, rollback: FileState | None, previous_path: str,
    config_previous_path: str | None = None,
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
    elif (pending and pending.from_good and state.binary.exists
          and state.binary.sha256 == pending.from_sha256):
        source = state.binary.sha256
    else:
        source = state.previous.sha256
        check_previous(state, previous_path)
    if source is None:  # a rollback binary or .previous exists here
        raise AssertionError("revert without a source binary")
    restore_binary = state.binary.sha256 != source
    sync_previous_binary = state.previous.sha256 != source

    config_untouched = (
        pending is not None
        and pending.from_good
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
    notes: tuple[str, ...] = ()
    if restore_config:
        notes = check_config_previous(state, config_previous_path)
    unfinished = pending is not None or state.pending_rollback is not None
    changed = (restore_binary or sync_previous_binary or restore_config or sync_previous_config
               or unfinished)
    return RevertPlan(changed, restore_binary, sync_previous_binary, restore_config,
                      sync_previous_config, source, unfinished, notes)


def recorded_previous(state: NodeState) -> set[str] | None:
    """The sha256s .previous may hold by the record (None: the record says nothing, e.g. a node
    installed by hand): the recorded previous, and mid-push or mid-revert what the intent put there."""
    if "previous" not in state.record:
        return None
    allowed: set[str] = set()
    recorded = state.record.get("previous")
    if isinstance(recorded, dict) and isinstance(recorded.get("sha256"), str):
        allowed.add(recorded["sha256"])
    pending = state.pending
    if pending is not None and pending.from_good and pending.from_sha256:
        allowed.add(pending.from_sha256)
    rollback = state.pending_rollback
    if rollback is not None and isinstance(rollback.get("target_sha256"), str):
        allowed.add(rollback["target_sha256"])
    return allowed


def check_previous(state: NodeState, previous_path: str) -> None:
    """Refuse to install a .previous whose sha256 is not the one the release record gives it."""
    allowed = recorded_previous(state)
    found = state.previous.sha256
    if allowed is None or found in allowed:
        return
    expected = ", ".join(sorted(a[:12] for a in allowed)) or "none"
    raise ReleaseError(
        f"{previous_path} does not match the release record (sha256 {str(found)[:12]}, recorded "
        f"{expected}): truncated or replaced, not installing it; pass "
        "ROLLBACK_BINARY=/path/to/known-good-binary"
    )


def recorded_config_previous(state: NodeState) -> set[str | None] | None:
    """The sha256s the config's .previous may hold by the record (None in the set: no file), or
    None when the record does not say (a record written before previous_config_sha256): the
    recorded one, and mid-push what the push started from (an empty file when there was none)."""
    if "previous_config_sha256" not in state.record:
        return None
    recorded = state.record.get("previous_config_sha256")
    allowed: set[str | None] = {recorded if isinstance(recorded, str) else None}
    pending = state.pending
    if pending is not None and pending.from_good and pending.from_sha256:
        allowed.add(pending.from_config_sha256 or sha256_text(""))
    return allowed


def config_previous_kept(state: NodeState) -> str | None:
    """What the record says the config's .previous holds after a push that leaves it alone (as
    previous_kept for the binary): a replaced file is never recorded as the last-known-good."""
    found = sha256_text(state.config_previous_text)
    allowed = recorded_config_previous(state)
    if allowed is None or found in allowed:
        return found
    recorded = state.record.get("previous_config_sha256")
    return recorded if isinstance(recorded, str) else None


def check_config_previous(state: NodeState, path: str | None) -> tuple[str, ...]:
    """Refuse to install a config .previous whose sha256 is not the one the record gives it; a
    record from before previous_config_sha256 cannot say: noted, not refused."""
    name = path or "the config's .previous"
    allowed = recorded_config_previous(state)
    if allowed is None:
        return (f"{name} not verified: the release record has no sha256 for it (an older record)",)
    found = sha256_text(state.config_previous_text)
    if found in allowed:
        return ()
    expected = ", ".join(sorted(str(a)[:12] for a in allowed))
    raise ReleaseError(
        f"{name} does not match the release record (sha256 {str(found)[:12]}, recorded "
        f"{expected}): truncated or replaced, not installing it; move it away to keep the "
        "node's current config (set keys with CONFIG) and re-run"
    )


def redact_keys(keys: dict[str, Any], secret: frozenset[str] | set[str]) -> dict[str, Any]:
    """The config keys with the value of every secret key replaced by REDACTED."""
    return {k: (REDACTED if k in secret else v) for k, v in keys.items()}


def config_change(before_text: str | None, after_text: str | None, secret: frozenset[str] | set[str],
                  deploy_id: str | None, time: str) -> dict[str, Any] | None:
    """The release record's note of a write that changes config keys (a rollout, a deploy's CONFIG, a
    rollback restoring the last-known-good config): each key whose value changes, its new value (None:
    removed) and its value before, secret ones redacted. None when no key changes."""
    before, after = parse_config(before_text), parse_config(after_text)
    keys = [k for k in [*before, *(k for k in after if k not in before)] if before.get(k) != after.get(k)]
    if not keys:
        return None
    return {"time": time, "deploy_id": deploy_id,
            "set": redact_keys({k: after.get(k) for k in keys}, secret),
            "before": redact_keys({k: before.get(k) for k in keys}, secret)}


def redact_text(text: str | None, secret: frozenset[str] | set[str]) -> str | None:
    """A config file's text with the value of every secret key replaced by REDACTED."""
    if text is None or not secret:
        return text
    out = []
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        key = stripped.partition("=")[0].strip()
        if "=" in stripped and not stripped.startswith("#") and key in secret:
            out.append(f"{key}={REDACTED}" + ("\n" if line.endswith("\n") else ""))
        else:
            out.append(line)
    return "".join(out)


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
    if new_text is None:  # updates is not empty
        raise AssertionError("merge_config returned no text for a non-empty update")
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
