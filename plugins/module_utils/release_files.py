"""edge_release's file operations: read node files, and replace them by atomic rename of a fsynced temp.

Every write goes to a temp file beside its destination, is fsynced, renamed over it, and the directory
fsynced; a run killed mid-write leaves only a temp file (TMP_MARK in its name) that the next run removes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import stat
import tempfile
import time
from typing import Any

from ansible_collections.edge.canary.plugins.module_utils.release_plan import FileState, ReleaseError

TMP_MARK = ".edge-release-tmp."
DEFAULT_BINARY_MODE = 0o755
DEFAULT_CONFIG_MODE = 0o644
# The release record holds config values: readable by its owner only.
RECORD_MODE = 0o600
# Opened without following a symlink and without blocking on a FIFO (checked regular before read).
READ_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
# Test hook only: "<step>" or "<step>:INT" makes the module SIGKILL (or SIGINT) itself right after
# the named step, to prove a re-run recovers.
KILL_AFTER_ENV = "EDGE_RELEASE_TEST_KILL_AFTER"


def open_regular(path: str) -> int | None:
    """A read-only descriptor of the regular file at `path`, None when there is none.

    A symlink is not followed and a FIFO, device or directory is refused without blocking (lstat
    first, then O_NOFOLLOW | O_NONBLOCK and fstat, so a swap in between is caught too)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        raise ReleaseError(f"{path} is a symlink; not following it: replace it with a regular file")
    if not stat.S_ISREG(st.st_mode):
        raise ReleaseError(f"{path} is not a regular file; move it away and re-run")
    try:
        fd = os.open(path, READ_FLAGS)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ReleaseError(f"{path} cannot be opened safely ({exc.strerror}); move it away and re-run") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ReleaseError(f"{path} is not a regular file; move it away and re-run")
    return fd


def file_sha256(path: str) -> str | None:
    fd = open_regular(path)
    if fd is None:
        return None
    with os.fdopen(fd, "rb") as fh:
        digest = hashlib.sha256()
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
        return digest.hexdigest()


def file_state(path: str) -> FileState:
    fd = open_regular(path)
    if fd is None:
        return FileState()
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        digest = hashlib.sha256()
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return FileState(digest.hexdigest(), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)


def read_text(path: str | None) -> str | None:
    if not path:
        return None
    fd = open_regular(path)
    if fd is None:
        return None
    with os.fdopen(fd, encoding="utf-8") as fh:
        return fh.read()


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
                src_fd = open_regular(data_from)
                if src_fd is None:
                    raise ReleaseError(f"{data_from} is not there any more; re-run")
                with os.fdopen(src_fd, "rb") as src:
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
    """Rename the temp file over `dest`; a failed rename removes the temp file (no full-size
    leftover beside the binary)."""
    try:
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(os.path.dirname(dest) or ".")


def atomic_copy(src: str, dest: str, like: FileState, default_mode: int) -> str:
    tmp, digest = write_temp(dest, src, like, default_mode)
    install(tmp, dest)
    return digest


def atomic_write_text(dest: str, text: str, like: FileState, default_mode: int) -> None:
    tmp, _digest = write_temp(dest, text.encode(), like, default_mode)
    install(tmp, dest)


def write_record(path: str, record: dict[str, Any]) -> None:
    """The record holds config keys: always owner-only (0600), whatever mode it had before."""
    text = json.dumps(record, indent=2, sort_keys=True) + "\n"
    like = file_state(path)
    atomic_write_text(path, text, FileState(like.sha256, RECORD_MODE, like.uid, like.gid), RECORD_MODE)


def checkpoint(step: str) -> None:
    wanted, _sep, signame = os.environ.get(KILL_AFTER_ENV, "").partition(":")
    if wanted != step:
        return
    if signame == "INT":  # as Ctrl-C reaches a module Python started with SIGINT not ignored
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.kill(os.getpid(), signal.SIGINT)
    else:
        os.kill(os.getpid(), signal.SIGKILL)


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
