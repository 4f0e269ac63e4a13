"""edge_release's actions: push, revert, configure, inspect and serving on one node's files.

Each reads the node (read_state), asks release_plan what to do, then carries it out step by step
through release_files, with a checkpoint after every step (the test hook that proves a re-run recovers).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any

from ansible_collections.edge.canary.plugins.module_utils.release_files import (
    DEFAULT_BINARY_MODE,
    DEFAULT_CONFIG_MODE,
    atomic_copy,
    atomic_write_text,
    checkpoint,
    file_sha256,
    file_state,
    install,
    now_iso,
    read_record,
    read_text,
    remove_stale_temps,
    write_record,
    write_temp,
)
from ansible_collections.edge.canary.plugins.module_utils.release_plan import (
    SHA256_RE,
    FileState,
    NodeState,
    ReleaseError,
    check_names,
    check_path_name,
    config_change,
    known_versions,
    merge_owned,
    normalize_config,
    parse_config,
    plan_configure,
    plan_push,
    plan_revert,
    redact_keys,
    redact_text,
    release_ref,
    sha256_text,
    version_of,
)


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
        check_names(p)
        name = p["binary_name"]
        install_dir = clean_path("install_dir", p["install_dir"], directory=True)
        if install_dir is None:
            raise ReleaseError("install_dir is required")
        binary = os.path.join(install_dir, name)
        config = clean_path("config_path", p.get("config_path"))
        record = clean_path("record_path", p.get("record_path"))
        for option in ("staged", "rollback_binary"):
            clean_path(option, p.get(option))
        return cls(
            binary=binary,
            previous=binary + ".previous",
            rolled_back=binary + ".rolled-back",
            config=config,
            config_previous=config + ".previous" if config else None,
            config_rolled_back=config + ".rolled-back" if config else None,
            record=record or os.path.join(install_dir, "release.json"),
        )


def clean_path(option: str, path: str | None, directory: bool = False) -> str | None:
    """An absolute path, normalised; refused when a '..' would take it out of where it points, or
    when its folder (a directory option: the path itself) is or lies under a symlink, which would
    put every file written there somewhere else. A symlink in the file's own name is refused when
    the file is opened (open_regular); so no file under the folder resolves outside it."""
    if not path:
        return None
    check_path_name(option, path)
    path = os.path.normpath(path)
    folder = path if directory else os.path.dirname(path)
    real = os.path.realpath(folder)
    if real != folder:
        raise ReleaseError(
            f"{option} {path!r} goes through a symlink ({folder} resolves to {real}); not following "
            "it: give the real path"
        )
    return path


def secret_keys(p: dict[str, Any]) -> frozenset[str]:
    """Config keys whose values are never shown (record, output, diff): the secret_config_keys option."""
    return frozenset(str(key) for key in (p.get("secret_config_keys") or []))


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


def complete_record(paths: Paths, ours: dict[str, Any]) -> dict[str, Any]:
    """Last step of a push or revert: the record on disk gets our keys (others kept), intents dropped."""
    final = merge_owned(read_record(paths.record), ours)
    write_record(paths.record, final)
    checkpoint("record")
    return final


def note_config_change(record: dict[str, Any], before_text: str | None, after_text: str | None,
                       secret: frozenset[str], deploy_id: str | None) -> dict[str, Any] | None:
    """Note in the record the config keys a write changes (make status shows the last such change)."""
    change = config_change(before_text, after_text, secret, deploy_id, now_iso())
    if change is not None:
        record["config_change"] = change
    return change


def say(msg: str, changed: bool, check_mode: bool, notes: list[str] | None = None) -> str:
    """The result's message, marked in check mode, with the notes gathered on the way."""
    if check_mode and changed:
        msg = "check mode, nothing changed: " + msg
    if notes:
        msg += f" ({'; '.join(notes)})"
    return msg


NOT_COPIED = "src not copied to the node in check mode: sha256 not verified there"


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
    if not staged and not (check_mode and p.get("src")):
        raise ReleaseError("state=pushed needs src (the artifact on the control host) or staged (already "
                           "copied to the node)")
    updates = normalize_config(p.get("config") or {})
    if updates and not paths.config:
        raise ReleaseError("config keys were given but no config_path; set edge_config_path")

    notes = verify_artifact(staged, expected, check_mode, "staged artifact") if staged else [NOT_COPIED]
    state = read_state(paths)
    plan = plan_push(state, expected, updates)
    if plan.changed and state.previous.exists and plan.previous_after_sha256 != state.previous.sha256 \
            and not plan.rotate_binary:
        notes.append(f"{paths.previous} does not match the release record: a rollback will refuse it, "
                     "pass ROLLBACK_BINARY=/path/to/known-good-binary")
    record = dict(state.record)
    known = known_versions({expected: p.get("version")})
    if plan.pending is not None and plan.pending.from_sha256:
        known = {**known_versions({plan.pending.from_sha256: plan.pending.from_version}), **known}
    secret = secret_keys(p)
    good = record.get("good_sha256") if plan.resumed else state.last_good
    after_record = dict(record)
    if plan.changed:
        after_record.pop("pending", None)
        after_record.pop("not_reached", None)
        after_record.update(
            current=release_ref(expected, record, known),
            previous=release_ref(plan.previous_after_sha256, record, known),
            previous_config_sha256=plan.previous_config_after_sha256,
            config=redact_keys(parse_config(plan.new_config_text), secret),
            time=now_iso(),
            deploy_id=p.get("deploy_id"),
            action="deploy",
            first_deploy=plan.first_deploy,
        )
        if good:
            after_record["good_sha256"] = good
        note_config_change(after_record, state.config_text, plan.new_config_text, secret, p.get("deploy_id"))

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
            if not staged:
                raise AssertionError("outside check mode the action plugin always stages src")
            tmp, digest = write_temp(paths.binary, staged, state.binary, DEFAULT_BINARY_MODE)
            if digest != expected:
                os.unlink(tmp)
                raise ReleaseError(f"{staged} changed while being installed; re-run the push")
        checkpoint("binary-staged")
        pending_record = dict(read_record(paths.record))
        if plan.pending is None:  # plan_push always sets it when something changes
            raise AssertionError("a push that changes something has a pending intent")
        pending_record["pending"] = {**plan.pending.as_dict(), "deploy_id": p.get("deploy_id"),
                                     "started": now_iso()}
        if good:
            pending_record["good_sha256"] = good
        try:
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
                tmp = None
        finally:
            if tmp is not None:  # a failed step: no full-size temp file left beside the binary
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
        checkpoint("binary")
        if plan.write_config and paths.config and plan.new_config_text is not None:
            atomic_write_text(paths.config, plan.new_config_text, file_state(paths.config),
                              DEFAULT_CONFIG_MODE)
        checkpoint("config")
        after_record = complete_record(paths, after_record)

    if not plan.changed:
        msg = "artifact and config keys already current: nothing changed"
    elif plan.first_deploy:
        msg = "first deploy on this node: no previous binary, so no .previous was created"
    elif plan.resumed:
        msg = "finished an interrupted push; .previous holds the last-known-good release"
    elif plan.rotate_binary:
        msg = "pushed; the former binary and config are kept as .previous"
    else:
        msg = ("pushed; .previous left as it is: it holds the last release that served healthily "
               "here, not the one replaced")
    msg = say(msg, plan.changed, check_mode, notes)
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
            "before": redact_keys(parse_config(state.config_text), secret),
            "after": redact_keys(parse_config(plan.new_config_text), secret),
        },
        "record": after_record,
        "msg": msg,
    }


def revert(p: dict[str, Any], paths: Paths, check_mode: bool) -> dict[str, Any]:
    rollback_path = p.get("rollback_binary")
    not_copied = check_mode and bool(p.get("src")) and not rollback_path
    rollback = None
    notes: list[str] = []
    if rollback_path or not_copied:
        expected = (p.get("sha256") or "").strip().lower() or None
        if expected is not None and not SHA256_RE.match(expected):
            raise ReleaseError("sha256 must be the 64-hex-digit sha256 of the rollback binary")
        if rollback_path:
            notes = verify_artifact(rollback_path, expected, check_mode, "rollback_binary")
            rollback = file_state(rollback_path)
        else:
            notes, rollback = [NOT_COPIED], FileState()
        if not rollback.exists and expected is not None:  # check mode: not copied to the node
            rollback = FileState(sha256=expected)
    state = read_state(paths)
    plan = plan_revert(state, rollback, paths.previous, paths.config_previous)
    notes.extend(plan.notes)
    record = state.record
    known = known_versions({plan.source_sha256: p.get("version")}) if rollback is not None else {}
    source_ref = release_ref(plan.source_sha256, record, known)
    config_after_text = (state.config_previous_text if plan.restore_config else state.config_text)
    config_previous_after_text = (state.config_text if plan.sync_previous_config
                                  else state.config_previous_text)
    rolled_back = None
    if plan.restore_binary and state.binary.exists:
        rolled_back = {
            "sha256": state.binary.sha256,
            "version": version_of(state.binary.sha256, record),
            "path": paths.rolled_back,
        }
    elif state.pending_rollback is not None:  # this binary was set aside by the interrupted run
        rolled_back = state.pending_rollback.get("rolled_back")
    secret = secret_keys(p)
    after_record = dict(record)
    restored_keys = None
    if plan.changed:
        for key in ("pending", "pending_rollback", "first_deploy", "not_reached"):
            after_record.pop(key, None)
        after_record.update(
            current=source_ref,
            previous=source_ref,
            previous_config_sha256=sha256_text(config_previous_after_text),
            config=redact_keys(parse_config(config_after_text), secret),
            time=now_iso(),
            deploy_id=p.get("deploy_id"),
            action="rollback",
        )
        if rolled_back:
            after_record["rolled_back"] = rolled_back
        restored_keys = note_config_change(after_record, state.config_text, config_after_text, secret,
                                           p.get("deploy_id"))

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
            # Verified in its temp file, before the rename: a source swapped since it was checked
            # never reaches the binary's path.
            tmp, digest = write_temp(paths.binary, source_path, like, DEFAULT_BINARY_MODE)
            if digest != plan.source_sha256:
                os.unlink(tmp)
                raise ReleaseError(
                    f"{source_path} changed while being installed (sha256 {digest[:12]}, expected "
                    f"{plan.source_sha256[:12]}): not installing it; pass "
                    "ROLLBACK_BINARY=/path/to/known-good-binary"
                )
            install(tmp, paths.binary)
        checkpoint("binary")
        if plan.sync_previous_binary:
            atomic_copy(paths.binary, paths.previous, file_state(paths.binary), DEFAULT_BINARY_MODE)
        checkpoint("previous-binary")
        if plan.restore_config and paths.config and paths.config_previous:
            current_config = file_state(paths.config)
            if current_config.exists and paths.config_rolled_back:
                atomic_copy(paths.config, paths.config_rolled_back, current_config,
                            DEFAULT_CONFIG_MODE)
            # Verified in its temp file, before the rename, like the binary.
            tmp, digest = write_temp(paths.config, paths.config_previous, current_config,
                                     DEFAULT_CONFIG_MODE)
            if digest != sha256_text(state.config_previous_text):
                os.unlink(tmp)
                raise ReleaseError(f"{paths.config_previous} changed while being installed: not "
                                   "installing it; re-run")
            install(tmp, paths.config)
        checkpoint("config")
        if plan.sync_previous_config and paths.config and paths.config_previous:
            atomic_copy(paths.config, paths.config_previous, file_state(paths.config),
                        DEFAULT_CONFIG_MODE)
        checkpoint("previous-config")
        after_record = complete_record(paths, after_record)

    if not plan.changed:
        msg = "already on the rollback release (current equals .previous): nothing changed"
    elif plan.restore_binary:
        msg = (f"reverted to {plan.source_sha256[:12]}; the rolled-back binary is kept as "
               f"{paths.rolled_back}")
    else:
        msg = "binary already the last-known-good; finished aligning config, .previous and record"
    msg = say(msg, plan.changed, check_mode, notes)
    return {
        "changed": plan.changed,
        "action": "rollback" if plan.changed else "none",
        "current": {"before": release_ref(state.binary.sha256, record), "after": source_ref},
        "previous": {"before": release_ref(state.previous.sha256, record), "after": source_ref},
        "config": {
            "before": redact_keys(parse_config(state.config_text), secret),
            "after": redact_keys(parse_config(config_after_text), secret),
        },
        "rolled_back": after_record.get("rolled_back") if plan.restore_binary else None,
        "config_change": restored_keys,
        "record": after_record,
        "msg": msg,
    }


def configure(p: dict[str, Any], paths: Paths, check_mode: bool) -> dict[str, Any]:
    updates = normalize_config(p.get("config") or {})
    state = read_state(paths)
    plan = plan_configure(state, updates)
    secret = secret_keys(p)
    before_keys = redact_keys(parse_config(state.config_text), secret)
    record_config = redact_keys(plan.record_config, secret)
    record = dict(state.record)
    # The record shows secret keys redacted: compared as it would be written.
    changed = plan.write_config or record.get("config") != record_config
    if changed:
        record["config"] = record_config
        if plan.write_config:
            note_config_change(record, state.config_text, plan.new_config_text, secret, p.get("deploy_id"))
    # Order: 1 config (atomic rename), 2 record. A kill between them leaves the new config with a
    # stale record; a re-run finds the file already right and only completes the record.
    if changed and not check_mode:
        prepare_dirs(paths)
        if paths.config is None:  # plan_configure refuses a node without config_path
            raise AssertionError("state=configured without config_path")
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
    if not changed:
        msg = "config keys already set: nothing changed"
    elif plan.write_config:
        msg = "config keys written (binaries and .previous untouched)"
    else:
        msg = "config keys already in the file; brought the release record in line"
    msg = say(msg, changed, check_mode)
    return {
        "changed": changed,
        "action": "configure" if changed else "none",
        "config": {"before": before_keys, "after": record_config},
        "record": record,
        "diff": ({"before": redact_text(state.config_text, secret) or "",
                  "after": redact_text(plan.new_config_text, secret),
                  "before_header": paths.config, "after_header": paths.config}
                 if plan.write_config else {}),
        "msg": msg,
    }
