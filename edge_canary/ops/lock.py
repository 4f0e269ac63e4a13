"""The control host's locks: one deploy (or rollback, or rollout) at a time, none during a game day.

  edge-lock --dir D acquire deploy|gameday --id ID [--force] [--dry-run]   exit 0 held, 1 refused
  edge-lock --dir D release deploy|gameday --id ID
  edge-lock --dir D show

The holder is the nearest ancestor process that is an ansible-playbook run (else the parent), so
a lock lives exactly as long as the run that took it; the lock of a dead process is recovered with a
message. The same ID may take a lock it already holds: the watcher's own revert runs inside the
deploy that holds it. Forced takes are logged in D/locks.log.
"""

import argparse
import getpass
import json
import os
import sys
import time
from pathlib import Path
from typing import Any


def holder_pid() -> int:
    """The outermost ansible-playbook (or ansible-runner) ancestor: Ansible runs a task in a forked worker
    with the same command line, which exits with the task; the run's main process lives as long as the run."""
    pid, found = os.getppid(), None
    while pid > 1:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        if b"ansible-playbook" in cmdline or b"ansible_runner" in cmdline:
            found = pid
        elif found is not None:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return found or os.getppid()


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError:
        return {"id": "unreadable", "pid": -1}
    return data if isinstance(data, dict) else {"id": "unreadable", "pid": -1}


def describe(kind: str, lock: dict[str, Any]) -> str:
    return (f"{kind} {lock.get('id')} by {lock.get('user')} (pid {lock.get('pid')}, "
            f"since {lock.get('since')})")


def log(directory: Path, line: str) -> None:
    with (directory / "locks.log").open("a") as out:
        out.write(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {line}\n")


def try_create(path: Path, lock: dict[str, Any]) -> bool:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(lock) + "\n")
    try:
        os.link(tmp, path)  # atomic: fails if a holder appeared meanwhile
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink()


def acquire(directory: Path, kind: str, lock_id: str, force: bool, dry_run: bool = False) -> int:
    if kind == "deploy":
        held = read(directory / "deploy.lock")
        reentry = held is not None and held.get("id") == lock_id and alive(int(held.get("pid", -1)))
        drill = read(directory / "gameday.lock")
        if drill and alive(int(drill.get("pid", -1))) and not reentry:
            if not force:
                print(f"edge-lock: a game-day drill holds the lock: {describe('drill', drill)}; "
                      "wait for it to end, or FORCE=1 to deploy anyway (logged)", file=sys.stderr)
                return 1
            log(directory, f"FORCED deploy {lock_id} by {getpass.getuser()} during {describe('drill', drill)}")
            print(f"edge-lock: FORCED past the game-day lock ({describe('drill', drill)}); logged")
    path = directory / f"{kind}.lock"
    mine = {"id": lock_id, "pid": holder_pid(), "user": getpass.getuser(),
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if dry_run:
        held = read(path)
        if held and held.get("id") != lock_id and alive(int(held.get("pid", -1))):
            print(f"edge-lock: another {describe(kind, held)} holds the lock; wait for it to finish",
                  file=sys.stderr)
            return 1
        if held and held.get("id") != lock_id:
            print(f"edge-lock: would recover the stale lock of {describe(kind, held)}: that process is gone "
                  "(dry run: not taken)")
        else:
            print(f"edge-lock: the {kind} lock is free (dry run: not taken)")
        return 0
    for _ in range(3):
        if try_create(path, mine):
            print(f"edge-lock: {kind} lock taken by {lock_id}")
            return 0
        held = read(path)
        if held is None:
            continue
        if held.get("id") == lock_id:
            print(f"edge-lock: {kind} lock already held by {lock_id}")
            return 0
        if alive(int(held.get("pid", -1))):
            print(f"edge-lock: another {describe(kind, held)} holds the lock; wait for it to finish "
                  "(make status shows the fleet)", file=sys.stderr)
            return 1
        stale = path.with_name(f"{path.name}.stale")
        os.replace(path, stale)
        print(f"edge-lock: recovered the stale lock of {describe(kind, held)}: that process is gone")
        log(directory, f"recovered stale {describe(kind, held)}")
    print(f"edge-lock: could not take the {kind} lock (contended); try again", file=sys.stderr)
    return 1


def release(directory: Path, kind: str, lock_id: str) -> int:
    path = directory / f"{kind}.lock"
    held = read(path)
    if held and held.get("id") == lock_id:
        path.unlink()
        print(f"edge-lock: {kind} lock released by {lock_id}")
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
    sub.add_parser("show")
    args = parser.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    if args.command == "acquire":
        return acquire(args.dir, args.kind, args.id, args.force, args.dry_run)
    if args.command == "release":
        return release(args.dir, args.kind, args.id)
    for kind in ("deploy", "gameday"):
        held = read(args.dir / f"{kind}.lock")
        state = "free" if not held else describe(kind, held) + ("" if alive(int(held.get("pid", -1))) else " [stale]")
        print(f"{kind}: {state}")
    return 0

