"""The control host's locks: one deploy (or rollback, or rollout) at a time, none during a game day.

  edge-lock --dir D acquire deploy|gameday --id ID [--force] [--dry-run] [--wait S]   exit 0 held, 1 refused
  edge-lock --dir D release deploy|gameday --id ID
  edge-lock --dir D exec deploy -- ARGV...   join the lock held with $EDGE_CANARY_LOCK_TOKEN, then exec ARGV
  edge-lock --dir D show
  edge-lock --dir D hold deploy --id ID --user U --controller HOST [--force] [--dry-run]
      on the watch host, for a controller elsewhere (edge_canary.ops.lock_keeper): take the lock with
      this process as its run, read the token from stdin, and keep it until stdin ends or it is released

Every change is made under an exclusive flock of D/.locks.flock: reading the lock, judging its holder
and writing the new one is one step, so two takers (or two recoveries of a stale lock) cannot both win.

The holder is the run: the nearest ancestor process that is an ansible-playbook run (else the parent),
named by pid, start time, host and boot (edge_canary.ops.lock_holder), so a lock lives exactly as long as
the run that took it and a reused pid does not keep it alive. Each take records a token (the caller's
$EDGE_CANARY_LOCK_TOKEN, else a random one). Re-entry, release and joining are for the very run (the same
holder process) or whoever presents its token (the run's watcher and the playbooks it runs), never for a
name: two runs with the same ID are two holders.

A run's watcher joins the lock (`exec`): the lock is held while the run or any of its watchers lives. A
run that releases while its watcher still runs leaves the lock to the watcher until it ends. A lock
whose holders are all gone is recovered with a message (logged in D/locks.log), as are forced takes.

A controller that is not the watch host (inventory group edge_canary_watch) cannot be checked from it: its
run is stood for by `hold`, a process on the watch host at the end of an SSH session that the controller's
keeper keeps open exactly as long as the controller's run lives. The lock names that controller (host,
user, id) to whoever is refused.
"""

from __future__ import annotations

import argparse
import fcntl
import getpass
import json
import os
import secrets
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from edge_canary.ops.lock_holder import alive, ancestors, process, run_pid, same

TOKEN_ENV = "EDGE_CANARY_LOCK_TOKEN"
# Set by `exec` for the process it becomes: the lock's folder and kind, so the watcher can leave it.
JOINED_ENV = "EDGE_CANARY_LOCK_JOINED"
GUARD = ".locks.flock"
# How long a take waits for the watcher of a run that has released the lock (it is writing its last lines).
WATCHER_WAIT_S = 20.0


@contextmanager
def flocked(path: Path, mode: int = 0o600) -> Iterator[None]:
    """An exclusive flock on `path` (made with `mode` if missing) for the block; never replace that file."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, mode)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # drops the flock


def guarded(directory: Path) -> AbstractContextManager[None]:
    """The one exclusive section every change of a lock file is made in."""
    return flocked(directory / GUARD)


def read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError:
        return {"id": "unreadable", "pid": -1}
    return data if isinstance(data, dict) else {"id": "unreadable", "pid": -1}


def write(path: Path, lock: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w") as out:
        out.write(json.dumps(lock) + "\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


def live_watchers(lock: dict[str, Any]) -> list[dict[str, Any]]:
    watchers = lock.get("watchers")
    return [w for w in watchers if alive(w)] if isinstance(watchers, list) else []


def held(lock: dict[str, Any] | None) -> bool:
    """Held while its run lives (until it releases) or any watcher of that run lives."""
    return lock is not None and ((not lock.get("released") and alive(lock)) or bool(live_watchers(lock)))


def ours(lock: dict[str, Any], token: str) -> bool:
    """The very run that took it, or one that shows its token (its watcher and what the watcher runs), or
    a process the run's watcher started (even one whose environment lost the token)."""
    if token and secrets.compare_digest(str(lock.get("token", "")), token):
        return True
    if same(lock, process(run_pid())):
        return True
    watchers = live_watchers(lock)
    return bool(watchers) and any(same(watcher, mine) for mine in ancestors() for watcher in watchers)


def abort_hint(directory: Path, lock: dict[str, Any]) -> str:
    """For a deploy holding the lock (its record beside the lock, runs/<id>/deploy.json: not a rollback's or a
    rollout's): how to stop its canary now, not at its verdict."""
    holder = str(lock.get("id") or "")
    if not holder or "/" in holder or not (directory / "runs" / holder / "deploy.json").is_file():
        return ""
    return f", or make abort DEPLOY_ID={holder} to revert its canary now"


def describe(kind: str, lock: dict[str, Any]) -> str:
    controller = lock.get("controller")
    if isinstance(controller, dict):  # taken for a controller elsewhere (hold): name it, not the hold
        text = (f"{kind} {lock.get('id')} by {lock.get('user')} on host {controller.get('host')} "
                f"(pid {controller.get('pid')}, since {lock.get('since')})")
    else:
        text = f"{kind} {lock.get('id')} by {lock.get('user')} (pid {lock.get('pid')}, since {lock.get('since')})"
        host = lock.get("host")
        if host and host != process(os.getpid())["host"]:
            text += f" on host {host}"
    watchers = live_watchers(lock)
    if watchers and (lock.get("released") or not alive(lock)):
        text += f", kept by its watcher (pid {', '.join(str(w.get('pid')) for w in watchers)}) until it ends"
    return text


def log(directory: Path, line: str) -> None:
    with (directory / "locks.log").open("a") as out:
        out.write(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {line}\n")


def drill_refuses(directory: Path, lock_id: str, force: bool) -> bool:
    """A deploy during a live game-day drill: refused, or forced and logged."""
    drill = read(directory / "gameday.lock")
    if not held(drill):
        return False
    assert drill is not None
    if not force:
        print(f"edge-lock: a game-day drill holds the lock: {describe('drill', drill)}; "
              "wait for it to end, or FORCE=1 to deploy anyway (logged)", file=sys.stderr)
        return True
    log(directory, f"FORCED deploy {lock_id} by {getpass.getuser()} during {describe('drill', drill)}")
    print(f"edge-lock: FORCED past the game-day lock ({describe('drill', drill)}); logged")
    return False


def try_take(directory: Path, kind: str, lock_id: str, force: bool, dry_run: bool, token: str,
             holder: dict[str, Any] | None = None) -> int | None:
    """One attempt under the guard: 0 held, 1 refused, None when only a finishing watcher keeps it.

    `holder`: the run's record (default: this run, run_pid()) and who it is for ({"user", "controller"})."""
    path = directory / f"{kind}.lock"
    holder = holder or {"user": getpass.getuser(), **process(run_pid())}
    with guarded(directory):
        current = read(path)
        if current is not None and held(current) and ours(current, token):
            print(f"edge-lock: {kind} lock already held by {current.get('id')} (this run)")
            return 0
        if kind == "deploy" and drill_refuses(directory, lock_id, force):
            return 1
        if current is not None and held(current):
            if current.get("released") or not alive(current):
                return None
            print(f"edge-lock: another {describe(kind, current)} holds the lock; wait for it to finish "
                  f"(make status shows the fleet){abort_hint(directory, current)}", file=sys.stderr)
            return 1
        stale = current is not None and not current.get("released")
        if dry_run:
            print(f"edge-lock: would recover the stale lock of {describe(kind, current)}: that process is gone "
                  "(dry run: not taken)" if stale and current else
                  f"edge-lock: the {kind} lock is free (dry run: not taken)")
            return 0
        if stale and current is not None:
            print(f"edge-lock: recovered the stale lock of {describe(kind, current)}: that process is gone")
            log(directory, f"recovered stale {describe(kind, current)}")
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        write(path, {"id": lock_id, "since": since, **holder,
                     "token": token or secrets.token_hex(16), "released": False, "watchers": []})
        print(f"edge-lock: {kind} lock taken by {lock_id}")
        return 0


def acquire(directory: Path, kind: str, lock_id: str, force: bool, dry_run: bool = False,
            token: str = "", wait: float = WATCHER_WAIT_S, holder: dict[str, Any] | None = None) -> int:
    deadline = time.monotonic() + wait
    while True:
        outcome = try_take(directory, kind, lock_id, force, dry_run, token, holder)
        if outcome is not None:
            return outcome
        current = read(directory / f"{kind}.lock") or {}
        if time.monotonic() >= deadline:
            print(f"edge-lock: another {describe(kind, current)} holds the lock; wait for its watcher to finish "
                  "(make status shows the fleet)", file=sys.stderr)
            return 1
        time.sleep(0.5)


def release(directory: Path, kind: str, lock_id: str, token: str = "") -> int:
    """The run's own release, or its tool's once the run is gone; a live watcher keeps the lock until it ends."""
    path = directory / f"{kind}.lock"
    with guarded(directory):
        current = read(path)
        if current is None:
            return 0
        if not ours(current, token) and (current.get("id") != lock_id or alive(current)):
            print(f"edge-lock: the {kind} lock is not {lock_id}'s to release: {describe(kind, current)}")
            return 0
        watchers = live_watchers(current)
        if watchers:
            write(path, {**current, "released": True, "watchers": watchers})
            print(f"edge-lock: {kind} lock released by {current.get('id')}; its watcher (pid "
                  f"{', '.join(str(w.get('pid')) for w in watchers)}) keeps it until it ends")
        else:
            path.unlink()
            print(f"edge-lock: {kind} lock released by {current.get('id')}")
    return 0


def leave(directory: Path, kind: str, pid: int) -> None:
    """A watcher that is done with the fleet (its verdict and revert are behind it) stops holding its run's
    lock; the lock file goes with its last holder, so nothing is left to recover as stale."""
    path = directory / f"{kind}.lock"
    with guarded(directory):
        current = read(path)
        if current is None:
            return
        me = process(pid)
        watchers = live_watchers(current)
        others = [w for w in watchers if not same(w, me)]
        if len(others) == len(watchers):
            return  # not one of its holders
        if others or (not current.get("released") and alive(current)):
            write(path, {**current, "watchers": others})
        else:
            path.unlink()
            log(directory, f"{kind} lock {current.get('id')} released by its watcher (pid {pid}), its last holder")


def leave_joined() -> None:
    """`leave` for this process, when `exec` made it a holder (JOINED_ENV); never fails its caller."""
    joined = os.environ.get(JOINED_ENV, "")
    directory, sep, kind = joined.rpartition(os.pathsep)
    if not sep:
        return
    try:
        leave(Path(directory), kind, os.getpid())
    except OSError as exc:
        print(f"edge-lock: could not leave the {kind} lock in {directory}: {exc}", file=sys.stderr)


def join_and_exec(directory: Path, kind: str, token: str, argv: list[str]) -> int:
    """Make this process a holder of the lock the token names, then become `argv` (same pid and start time)."""
    path = directory / f"{kind}.lock"
    with guarded(directory):
        current = read(path)
        if current is not None and held(current) and token and current.get("token") == token:
            write(path, {**current, "watchers": live_watchers(current) + [process(os.getpid())]})
            os.environ[JOINED_ENV] = f"{directory}{os.pathsep}{kind}"
            print(f"edge-lock: {kind} lock {current.get('id')} is kept until this process (pid {os.getpid()}) ends",
                  flush=True)
        else:
            print(f"edge-lock: no {kind} lock with this token is held: running without the lock", flush=True)
    os.execvp(argv[0], argv)
    return 70  # not reached


def show(directory: Path) -> int:
    for kind in ("deploy", "gameday"):
        current = read(directory / f"{kind}.lock")
        if current is None or (current.get("released") and not held(current)):
            state = "free"
        else:
            state = describe(kind, current) + ("" if held(current) else " [stale]")
        print(f"{kind}: {state}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", required=True, type=Path)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("acquire", "release"):
        cmd = sub.add_parser(name)
        cmd.add_argument("kind", choices=["deploy", "gameday"])
        cmd.add_argument("--id", required=True)
        if name == "acquire":
            cmd.add_argument("--force", action="store_true")
            cmd.add_argument("--dry-run", action="store_true", help="only say whether it could be taken")
            cmd.add_argument("--wait", type=float, default=WATCHER_WAIT_S,
                             help="seconds to wait for the watcher of a run that released the lock")
    keep = sub.add_parser("hold", help="on the watch host, for a controller elsewhere (edge_canary.ops.lock_remote)")
    keep.add_argument("kind", choices=["deploy"])
    keep.add_argument("--id", required=True)
    keep.add_argument("--user", required=True, help="the controller's user")
    keep.add_argument("--controller", required=True, help="the controller's host name")
    keep.add_argument("--controller-pid", type=int, required=True, help="the controller's run (ansible-playbook)")
    keep.add_argument("--force", action="store_true")
    keep.add_argument("--dry-run", action="store_true")
    run = sub.add_parser("exec")
    run.add_argument("kind", choices=["deploy"])
    run.add_argument("argv", nargs=argparse.REMAINDER)
    sub.add_parser("show")
    args = parser.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    token = os.environ.get(TOKEN_ENV, "")
    if args.command == "acquire":
        return acquire(args.dir, args.kind, args.id, args.force, args.dry_run, token, args.wait)
    if args.command == "hold":
        from edge_canary.ops.lock_remote import hold  # noqa: PLC0415 (it imports this module)

        return hold(args.dir, args.kind, args.id, args.user, args.controller, args.controller_pid, args.force,
                    args.dry_run)
    if args.command == "release":
        return release(args.dir, args.kind, args.id, token)
    if args.command == "exec":
        command = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
        if not command:
            parser.error("exec needs a command after --")
        return join_and_exec(args.dir, args.kind, token, command)
    return show(args.dir)
