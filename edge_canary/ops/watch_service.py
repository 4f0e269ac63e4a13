"""Start the SLI watcher as a supervised service on the watch host; print its pid.

  edge-canary watch-service --manager systemd|supervisor --name NAME --run-dir D [--env NAME ...]
      [--credentials FILE] [--supervisor-conf C --programs-dir P] -- ARGV...

The watch host's service manager starts ARGV (the watcher, behind `edge-canary lock exec`), not the
deploy's job: the job may end, crash or be cancelled, the watcher still judges and reverts the canary.
Its output is appended to D/watcher.log; it is never restarted (a second watcher would start a second
window: a watcher that dies gives no verdict, which the deploy counts as red).

systemd (production): a transient unit `systemd-run --unit NAME --collect`, hardened like the edge
service's unit where it fits a watcher (it runs Python, ssh and ansible-playbook, writes its run and
lock folders and the user's ~/.ansible); each --env NAME is passed by name (`--setenv=NAME`: the value
comes from this process's environment, never an argument). Prometheus credentials reach this process
in --credentials FILE (JSON, mode 0600, written by the play's copy task, removed once read): a remote
task's `environment:` would put them on the SSH and shell command lines. The SSH user must be allowed to start system
units (root, or a polkit rule).

supervisor (the lab, or a host without systemd): a program NAME in P (a folder the supervisord of C
includes), added with `supervisorctl update`. A program file is a file: Prometheus credentials are
refused here (use systemd); the lock token it carries is mode 0600, as in the lock file itself.
Programs of earlier watchers that have ended are removed first.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from watcher.prom import split_userinfo

# The edge service unit's hardening that fits a watcher. Not used: ProtectHome (ssh keys and ~/.ansible),
# ProtectSystem=strict (ansible-runner and ssh write below the user's home), ProtectProc=invisible (the
# lock reads its holders in /proc), SystemCallFilter and CapabilityBoundingSet= (ssh, ansible-playbook).
HARDENING = (
    "NoNewPrivileges=yes", "ProtectSystem=full", "PrivateTmp=yes", "PrivateDevices=yes",
    "ProtectKernelTunables=yes", "ProtectKernelModules=yes", "ProtectKernelLogs=yes", "ProtectControlGroups=yes",
    "ProtectClock=yes", "ProtectHostname=yes", "RestrictNamespaces=yes", "RestrictRealtime=yes",
    "RestrictSUIDSGID=yes", "LockPersonality=yes", "UMask=0027", "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
    "SystemCallArchitectures=native",
)
CREDENTIALS = ("PROM_TOKEN", "PROM_USER", "PROM_PASSWORD")
PREFIX = "edge-canary-watch-"
_NAME = re.compile(r"[A-Za-z0-9_.-]+")


class ServiceError(RuntimeError):
    """The watcher could not be started; the message says what to do."""


def unit_name(name: str) -> str:
    """NAME as a unit and program name: edge-canary-watch-<deploy id>, anything else refused."""
    if not name.startswith(PREFIX) or len(name) == len(PREFIX) or not _NAME.fullmatch(name):
        raise ServiceError(f"service name {name!r} must be {PREFIX}<deploy id> of letters, digits, _ . -")
    return name


def systemd_argv(name: str, run_dir: Path, env_names: list[str], argv: list[str]) -> list[str]:
    log = run_dir / "watcher.log"
    return ["systemd-run", f"--unit={name}", "--collect", "--quiet", "--property=Type=exec",
            f"--working-directory={run_dir}", f"--property=StandardOutput=append:{log}",
            f"--property=StandardError=append:{log}",
            *(f"--property={setting}" for setting in HARDENING),
            *(f"--setenv={env}" for env in env_names), "--", *argv]


def _quote(value: str) -> str:
    """A value for supervisor's config: % doubled (its expansions), inside double quotes."""
    if any(c in value for c in '"\n\r'):
        raise ServiceError("a watcher setting holds a double quote or a line break: not a supervisor value")
    return '"' + _escape(value) + '"'


def _escape(value: str, expansions: int = 1) -> str:
    """% doubled once per time supervisor expands the value (a program's log file path: twice)."""
    return value.replace("%", "%" * 2 ** expansions)


def program_conf(name: str, run_dir: Path, env: Mapping[str, str], argv: list[str]) -> str:
    command = " ".join(_quote(arg) for arg in argv)
    lines = [f"[program:{name}]", f"command={command}", f"directory={_escape(str(run_dir))}", "autostart=true",
             "autorestart=false", "startsecs=0", "startretries=0", "stopasgroup=true", "killasgroup=true",
             "redirect_stderr=true", f"stdout_logfile={_escape(str(run_dir / 'watcher.log'), expansions=2)}",
             "stdout_logfile_maxbytes=0"]
    if env:
        lines.append("environment=" + ",".join(f"{key}={_quote(value)}" for key, value in env.items()))
    return "\n".join(lines) + "\n"


def supervisorctl(conf: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["supervisorctl", "-c", str(conf), *args], capture_output=True, text=True, timeout=60)


def ended_programs(conf: Path) -> list[str]:
    status = supervisorctl(conf, "status").stdout.splitlines()
    return [fields[0] for fields in (line.split() for line in status)
            if len(fields) > 1 and fields[0].startswith(PREFIX) and fields[1] in ("EXITED", "FATAL", "STOPPED")]


def start_supervisor(name: str, run_dir: Path, env: Mapping[str, str], argv: list[str], conf: Path,
                     programs: Path) -> int:
    if any(env.get(key) for key in CREDENTIALS) or split_userinfo(env.get("PROM_URL", ""))[1] is not None:
        raise ServiceError("the supervisor watch service takes no Prometheus credentials (they would be written "
                           "to its program file): use edge_canary_watch_manager=systemd")
    for old in ended_programs(conf):
        (programs / f"{old}.conf").unlink(missing_ok=True)
    path = programs / f"{name}.conf"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(program_conf(name, run_dir, env, argv))
    done = supervisorctl(conf, "update")
    if done.returncode != 0:
        raise ServiceError(f"supervisorctl update: {(done.stdout + done.stderr).strip()}")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        pid = supervisorctl(conf, "pid", name).stdout.strip()
        if pid.isdigit() and int(pid) > 0:
            return int(pid)
        time.sleep(0.2)
    raise ServiceError(f"supervisor did not start {name}: see {run_dir / 'watcher.log'}")


def read_credentials(path: Path) -> dict[str, str]:
    """The Prometheus credentials in PATH (then removed): a file of ours that no one else may read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise ServiceError(f"credentials file {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd) as source:
            info = os.fstat(source.fileno())
            if info.st_uid != os.geteuid() or info.st_mode & 0o077:
                raise ServiceError(f"credentials file {path} must be ours and mode 0600")
            text = source.read()
    finally:
        path.unlink(missing_ok=True)
    try:
        found = json.loads(text)
    except ValueError:
        found = None
    if not isinstance(found, dict) or not all(key in CREDENTIALS and isinstance(value, str)
                                              for key, value in found.items()):
        raise ServiceError(f"credentials file {path} must be a JSON object of {', '.join(CREDENTIALS)}")
    return found


def start_systemd(name: str, run_dir: Path, env_names: list[str], argv: list[str]) -> int:
    done = subprocess.run(systemd_argv(name, run_dir, env_names, argv), capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise ServiceError(f"systemd-run: {done.stderr.strip()}")
    pid = subprocess.run(["systemctl", "show", "--property=MainPID", "--value", name], capture_output=True,
                         text=True, timeout=60).stdout.strip()
    if not pid.isdigit() or int(pid) == 0:
        raise ServiceError(f"the unit {name} has no main process: journalctl -u {name}")
    return int(pid)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manager", choices=["systemd", "supervisor"], required=True)
    parser.add_argument("--name", required=True, help=f"{PREFIX}<deploy id>")
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--env", action="append", default=[], help="a variable to pass on, by name")
    parser.add_argument("--credentials", type=Path, help="a 0600 JSON file of Prometheus credentials (removed)")
    parser.add_argument("--supervisor-conf", type=Path)
    parser.add_argument("--programs-dir", type=Path)
    parser.add_argument("argv", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not command:
        parser.error("give the watcher's command line after --")
    try:
        if args.credentials is not None:
            credentials = read_credentials(args.credentials)
            os.environ.update(credentials)
            args.env += [key for key in credentials if key not in args.env]
        env_names = [name for name in args.env if os.environ.get(name)]
        name = unit_name(args.name)
        if args.manager == "systemd":
            pid = start_systemd(name, args.run_dir, env_names, command)
        elif args.supervisor_conf is None or args.programs_dir is None:
            parser.error("--manager supervisor needs --supervisor-conf and --programs-dir")
        else:
            pid = start_supervisor(name, args.run_dir, {n: os.environ[n] for n in env_names}, command,
                                   args.supervisor_conf, args.programs_dir)
    except (ServiceError, OSError, subprocess.SubprocessError) as exc:
        print(f"watch-service: {exc}", file=sys.stderr)
        return 1
    print(pid)
    return 0
