"""The deploy lock on a watch host, for a controller on another machine (inventory group edge_canary_watch).

The watch host cannot see the controller's processes, so the controller's run is stood for there by a
process of the watch host that lives exactly as long as that run:

  controller:  edge-canary lock-keep --python P --dir D --id ID [--force] [--dry-run] [--ssh-args A]
                 -- ssh … user@watchhost
  watch host:  edge-lock --dir D hold deploy --id ID --user U --controller HOST --controller-pid PID

`lock-keep` (on the controller, run by the deploy_lock role) opens the SSH session and starts `hold` at its
end, hands it the run's token on stdin (never an argument), and says what `hold` said: taken, or refused
naming the holder. Once the lock is taken it detaches and keeps the session open while the controller's run
(its ansible-playbook, lock_holder.run_pid) lives, and closes it when the run is gone, however it ended
(SIGKILL included). `hold` takes the lock with itself as the run's holder, naming the controller (host,
user, pid); it keeps it until the session ends (then it leaves the lock to the run's watchers, if any, or
removes it) or until the run releases the lock (deploy_lock release, on the watch host, with the token).
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from edge_canary.ops import lock
from edge_canary.ops.lock_holder import alive, process, run_pid, same

# The line `hold` prints once it holds the lock (before it, its messages; after it, nothing).
HELD = "edge-lock-hold: held"
POLL_S = 1.0


def _ended(stop: threading.Event) -> None:
    """Set `stop` when stdin ends: the SSH session closed (the controller's run ended, or the link broke)."""
    with contextlib.suppress(OSError, ValueError):
        while sys.stdin.readline():
            pass
    stop.set()


def _let_go(directory: Path, kind: str, me: dict[str, Any]) -> None:
    """The controller's run is gone: its watchers keep the lock until they end, else it is removed."""
    path = directory / f"{kind}.lock"
    with lock.guarded(directory):
        current = lock.read(path)
        if current is None or not same(current, me) or current.get("released"):
            return
        watchers = lock.live_watchers(current)
        if watchers:
            lock.write(path, {**current, "released": True, "watchers": watchers})
        else:
            path.unlink()
        lock.log(directory, f"{lock.describe(kind, current)}: its controller's session ended"
                 + (", left to its watcher" if watchers else ", lock removed"))


def _still_ours(directory: Path, kind: str, me: dict[str, Any]) -> bool:
    current = lock.read(directory / f"{kind}.lock")
    return current is not None and same(current, me) and not current.get("released")


def hold(directory: Path, kind: str, lock_id: str, user: str, controller: str, controller_pid: int,
         force: bool, dry_run: bool) -> int:
    token = sys.stdin.readline().strip()
    me = process(os.getpid())
    holder = {"user": user, "controller": {"host": controller, "pid": controller_pid}, **me}
    code = lock.acquire(directory, kind, lock_id, force, dry_run, token, holder=holder)
    sys.stdout.flush()
    if code != 0 or dry_run or not _still_ours(directory, kind, me):
        return code  # refused, a dry run, or already held by this run (nothing more to keep)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda *_: stop.set())
    threading.Thread(target=_ended, args=(stop,), daemon=True).start()
    print(HELD, flush=True)
    while not stop.wait(POLL_S):
        if not _still_ours(directory, kind, me):
            return 0  # released by its run (or forced away)
    _let_go(directory, kind, me)
    return 0


def remote_command(args: argparse.Namespace, run: dict[str, Any]) -> str:
    """The command line the watch host's shell runs at the end of the session (every word quoted)."""
    argv = [args.python, "-m", "edge_canary", "lock", "--dir", args.dir, "hold", "deploy", "--id", args.id,
            "--user", getpass.getuser(), "--controller", socket.gethostname(), "--controller-pid", str(run["pid"])]
    argv += ["--force"] if args.force else []
    argv += ["--dry-run"] if args.dry_run else []
    return shlex.join(argv) + " 2>&1"


def _report(fd: int, outcome: dict[str, Any]) -> None:
    with os.fdopen(fd, "w") as out:
        out.write(json.dumps(outcome))


def _keeper(ssh: list[str], token: str, run: dict[str, Any], report_fd: int) -> None:
    """In the detached child: open the session, report what `hold` said, then keep it while the run lives."""
    try:
        session = subprocess.Popen(ssh, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)
    except OSError as exc:
        _report(report_fd, {"code": 1, "out": "", "err": f"could not start ssh: {exc}"})
        return
    assert session.stdin is not None and session.stdout is not None and session.stderr is not None
    with contextlib.suppress(BrokenPipeError):
        session.stdin.write(token + "\n")
        session.stdin.flush()
    said = []
    for line in session.stdout:
        if line.strip() == HELD:
            break
        said.append(line)
    else:
        code = session.wait()
        _report(report_fd, {"code": code, "out": "".join(said), "err": session.stderr.read()})
        return
    _report(report_fd, {"code": 0, "out": "".join(said), "err": "", "kept": True})
    while session.poll() is None and alive(run):
        time.sleep(POLL_S)
    with contextlib.suppress(OSError):
        session.stdin.close()  # hold sees the end of its stdin: the run is gone
    try:
        session.wait(timeout=30)
    except subprocess.TimeoutExpired:
        session.kill()


def ssh_command(args: argparse.Namespace, run: dict[str, Any]) -> list[str]:
    """ssh, the inventory's options (shell words, as Ansible splits them: '-o ProxyCommand="ssh -W %h:%p b"'
    is two), the rest of the given command line up to the destination, and the watch host's command."""
    options = [word for text in args.ssh_args for word in shlex.split(text)]
    return [args.ssh[0], *options, *args.ssh[1:], remote_command(args, run)]


def keep(args: argparse.Namespace) -> int:
    run = process(run_pid())
    ssh = ssh_command(args, run)
    token = os.environ.get(lock.TOKEN_ENV, "")
    read_fd, write_fd = os.pipe()
    child = os.fork()
    if child == 0:  # the keeper: its own session, no tie to the task that started it but the report pipe
        os.close(read_fd)
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        try:
            _keeper(ssh, token, run, write_fd)
        finally:
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd) as report:
        text = report.read()
    outcome: dict[str, Any] = json.loads(text) if text else {
        "code": 1, "out": "", "err": "the lock keeper ended without a word"}
    code = int(outcome["code"])
    if code == 0:
        print(outcome["out"], end="")
        if outcome.get("kept"):
            print(f"edge-lock: kept on {args.ssh[-1]} while this run (pid {run['pid']}) lives")
        return 0
    sys.stderr.write(outcome["out"] + outcome["err"])
    if code == 255:  # ssh's own failure: the watch host was not reached
        sys.stderr.write(f"edge-lock: could not reach the watch host {args.ssh[-1]} over SSH; check the "
                         "edge_canary_watch group's connection settings\n")
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", required=True, help="Python with edge-canary installed, on the watch host")
    parser.add_argument("--dir", required=True, help="the lock folder on the watch host")
    parser.add_argument("--id", required=True)
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--ssh-args", action="append", default=[],
                        help="more ssh options as one string of shell words (ansible_ssh_common_args); repeatable")
    parser.add_argument("ssh", nargs=argparse.REMAINDER, help="-- the ssh command line up to the destination")
    args = parser.parse_args(argv)
    args.ssh = args.ssh[1:] if args.ssh[:1] == ["--"] else args.ssh
    if not args.ssh:
        parser.error("give the ssh command line after --")
    return keep(args)
