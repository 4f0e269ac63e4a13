"""edge_release's read-only and record-only actions: inspect, serving, not_reached, and the removal
of a staged artifact once installed (push, revert and configure: release_actions)."""

from __future__ import annotations

import contextlib
import os
from typing import Any

from ansible_collections.edge.canary.plugins.module_utils.release_actions import Paths, prepare_dirs
from ansible_collections.edge.canary.plugins.module_utils.release_files import (
    file_sha256,
    file_state,
    now_iso,
    read_record,
    read_text,
    write_record,
)
from ansible_collections.edge.canary.plugins.module_utils.release_plan import (
    SHA256_RE,
    ReleaseError,
    last_good_sha256,
    parse_config,
    redact_keys,
    release_ref,
)


def inspect(paths: Paths, secret: frozenset[str] = frozenset()) -> dict[str, Any]:
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
        "config": redact_keys(parse_config(config_text), secret),
        "config_exists": config_text is not None,
        "config_previous_exists": read_text(paths.config_previous) is not None,
        "serving_sha256": serving,
        "serving_current": serving is not None and serving == binary.sha256,
        "pending": record.get("pending"),
        "pending_rollback": record.get("pending_rollback"),
        "good_sha256": last_good_sha256(record, binary.sha256),
        "not_reached": record.get("not_reached"),
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
    after = {**record, "serving_sha256": sha}
    if p.get("good", True):  # served healthily (a canary: once promoted): the last-known-good now
        after["good_sha256"] = sha
    changed = after != record
    if changed:
        after["serving_time"] = now_iso()
        if not check_mode:
            prepare_dirs(paths)
            write_record(paths.record, after)
    return {"changed": changed, "action": "serving" if changed else "none", "record": after,
            "msg": f"serving {sha[:12]}" + ("" if changed else " (already recorded)")}


def not_reached(p: dict[str, Any], paths: Paths, check_mode: bool) -> dict[str, Any]:
    """Note that a deploy has not reached this node (noted as the deploy starts; its push drops the
    note): the node still runs its last-known-good, so a rollback after a deploy stopped before it
    leaves it there instead of going one release further back. Any push or revert drops the note. A
    node that runs `sha256` (the release being deployed) is not noted: the deploy reached it before."""
    record = read_record(paths.record)
    binary = file_state(paths.binary)
    pending = record.get("pending")
    deploying = (p.get("sha256") or "").strip().lower()
    if deploying and binary.sha256 == deploying:
        return {"changed": False, "action": "none", "record": record,
                "msg": "runs the release being deployed: not noted"}
    if pending or binary.sha256 is None or binary.sha256 != last_good_sha256(record, binary.sha256):
        return {"changed": False, "action": "none", "record": record,
                "msg": "the push reached this node (or it runs no last-known-good): not noted"}
    note = {"deploy_id": p.get("deploy_id"), "sha256": binary.sha256}
    noted = record.get("not_reached")
    changed = not isinstance(noted, dict) or {k: noted.get(k) for k in note} != note
    after = {**record, "not_reached": {**note, "time": now_iso()}} if changed else record
    if changed and not check_mode:
        prepare_dirs(paths)
        write_record(paths.record, after)
    return {"changed": changed, "action": "not_reached" if changed else "none", "record": after,
            "msg": f"noted: deploy {p.get('deploy_id')} never reached this node, it runs "
                   f"{binary.sha256[:12]}"}


def remove_staged(path: str | None) -> None:
    """The copied artifact is installed: drop it, and its staging directory once empty."""
    if not path:
        return
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    with contextlib.suppress(OSError):  # not empty, or already gone: leave it
        os.rmdir(os.path.dirname(path))
