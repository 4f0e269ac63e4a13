#!/usr/bin/python
"""Ansible module: set one HAProxy server's admin state through the runtime API.

The file has two layers. The pure one (names, parsing, planning, the drain wait) has no
I/O and is imported by the unit tests straight from this path. The edge (RuntimeApi and
run_module) talks to the admin socket, one connection per command, every operation bounded
by socket_timeout.
"""

from __future__ import annotations

import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
---
module: haproxy_server
short_description: Put one HAProxy server in ready, drain or maint through the admin socket
description:
  - Reads the server's state with C(show servers state) and its sessions and queue with
    C(show stat) (columns looked up by header name), then sends C(set server) only when the
    admin state or weight must change.
  - Names are checked against a strict pattern before any command is built, so a name
    cannot inject admin commands; nothing is sent when a name is refused.
  - Check mode sends only read-only commands and reports what would change.
options:
  socket:
    description:
      - Admin socket, a unix socket path or C(host:port) (C([v6addr]:port)) for a TCP one.
      - HAProxy must expose it with C(level admin) on its C(stats socket) line.
    type: str
    required: true
  backend:
    description: Backend name.
    type: str
    required: true
  server:
    description: Server name inside the backend.
    type: str
    required: true
  state:
    description:
      - Wanted administrative state. C(ready) puts the server back in rotation, C(drain)
        sends it no new traffic but lets open sessions finish, C(maint) takes it out.
    type: str
    required: true
    choices: [ready, drain, maint]
  weight:
    description: Weight to set (0-256). Left alone when omitted.
    type: int
  wait:
    description:
      - For C(drain) and C(maint), wait until the server has no current session and
        nothing queued, at most O(wait_timeout) seconds, then fail naming what is still
        open. Ignored for C(ready) and in check mode.
    type: bool
    default: false
  wait_timeout:
    description: Longest wait for sessions to end, in seconds.
    type: float
    default: 60
  socket_timeout:
    description: Bound on every socket operation (connect, send, whole answer), seconds.
    type: float
    default: 5
  health_url:
    description:
      - For C(ready), an HTTP URL that must answer 200 from where the module runs (the load
        balancer) before anything is sent; on failure the server is left as it is. Also
        checked in check mode (a read-only GET).
    type: str
  health_timeout:
    description: Timeout of one health request, in seconds.
    type: float
    default: 5
  health_retries:
    description: Extra health attempts before giving up (0 = a single attempt).
    type: int
    default: 2
  health_delay:
    description: Seconds between two health attempts.
    type: float
    default: 2
  wait_up:
    description:
      - For C(ready), wait after the change until HAProxy itself sees the server up and
        ready (its own health check passed), at most O(wait_up_timeout) seconds, polling
        every half second; then fail naming the state it is in. Ignored in check mode.
    type: bool
    default: false
  wait_up_timeout:
    description: Longest wait for the server to be seen up and ready, in seconds.
    type: float
    default: 30
author:
  - edge-canary
"""

EXAMPLES = r"""
- name: Drain edge-1 and wait for its sessions to end
  haproxy_server:
    socket: /run/haproxy/admin.sock
    backend: edge
    server: edge-1
    state: drain
    wait: true
    wait_timeout: 120

- name: Put edge-1 back in rotation once it answers its health check, and wait until HAProxy sees it up
  haproxy_server:
    socket: /run/haproxy/admin.sock
    backend: edge
    server: edge-1
    state: ready
    health_url: http://10.0.0.11:8080/health
    wait_up: true

- name: Put edge-1 back in rotation with weight 100 through a TCP admin socket
  haproxy_server:
    socket: 10.0.0.5:9999
    backend: edge
    server: edge-1
    state: ready
    weight: 100
"""

RETURN = r"""
before:
  description: State read before any change (admin_state, forced_admin_state,
    operational_state, weight, admin_flags, admin_bits).
  returned: always
  type: dict
after:
  description: State read after the change; in check mode, the predicted admin state and
    weight (operational state as before).
  returned: always
  type: dict
sessions:
  description: Current sessions (scur) on the server when the module finished.
  returned: always
  type: int
queue:
  description: Requests queued (qcur) for the server when the module finished.
  returned: always
  type: int
haproxy_version:
  description: Version reported by C(show info).
  returned: always
  type: str
commands:
  description: The mutating commands sent (or, in check mode, that would be sent).
  returned: always
  type: list
  elements: str
waited:
  description: Seconds spent waiting for sessions to end.
  returned: always
  type: float
waited_up:
  description: Seconds spent waiting for the server to be seen up and ready (O(wait_up)).
  returned: always
  type: float
"""

# --------------------------------------------------------------------------- pure layer

NAME_PATTERN = re.compile(r"\A[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}\Z")
NAME_RULE = (
    "letters, digits, '_', '.', ':', '-', at most 128 characters, "
    "not starting with '.', ':' or '-'"
)

STATES = ("ready", "drain", "maint")

# srv_admin_state bits (HAProxy server-t.h, SRV_ADMF_*).
FMAINT = 0x01  # forced into maintenance (CLI, stats page)
IMAINT = 0x02  # maintenance inherited from a tracked server
CMAINT = 0x04  # "disabled" in the config; only meaningful together with FMAINT
FDRAIN = 0x08  # forced into drain
IDRAIN = 0x10  # drain inherited from a tracked server
RMAINT = 0x20  # maintenance because the address did not resolve
HMAINT = 0x40  # FQDN set from the CLI (a marker, not a maintenance)
MAINT_MASK = FMAINT | IMAINT | RMAINT  # what HAProxy itself calls SRV_ADMF_MAINT
DRAIN_MASK = FDRAIN | IDRAIN

FLAG_NAMES = {
    FMAINT: "FMAINT",
    IMAINT: "IMAINT",
    CMAINT: "CMAINT",
    FDRAIN: "FDRAIN",
    IDRAIN: "IDRAIN",
    RMAINT: "RMAINT",
    HMAINT: "HMAINT",
}

OP_STATES = {0: "down", 1: "starting", 2: "up", 3: "stopping"}

MAX_WEIGHT = 256
CLI_LEVELS = ("user", "operator", "admin")


class HaproxyError(Exception):
    """A failure with a one-line message that says what is wrong and what to do."""


class WaitTimeout(HaproxyError):
    """Sessions still open when the drain wait ran out; carries the partial results."""

    def __init__(self, msg: str, result: dict[str, Any]) -> None:
        super().__init__(msg)
        self.result = result


def validate_name(kind: str, value: str) -> str:
    if not isinstance(value, str) or not NAME_PATTERN.match(value):
        raise HaproxyError(
            f"invalid {kind} name {value!r}: allowed are {NAME_RULE}; "
            "fix the name (nothing was sent to HAProxy)"
        )
    return value


def validate_weight(weight: int | None) -> int | None:
    if weight is not None and not 0 <= weight <= MAX_WEIGHT:
        raise HaproxyError(f"invalid weight {weight}: use a whole number from 0 to {MAX_WEIGHT}")
    return weight


def validate_timeout(kind: str, value: float) -> float:
    if value <= 0:
        raise HaproxyError(f"invalid {kind} {value}: use a number of seconds above 0")
    return value


@dataclass(frozen=True)
class UnixAddress:
    path: str

    def __str__(self) -> str:
        return self.path


@dataclass(frozen=True)
class TcpAddress:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


_TCP_PATTERN = re.compile(
    r"\A(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9_.-]+)):(?P<port>\d+)\Z"
)


def parse_socket_address(text: str) -> UnixAddress | TcpAddress:
    """A path (anything with '/', or no ':port') is a unix socket, host:port a TCP one."""
    text = (text or "").strip()
    if not text:
        raise HaproxyError("socket is empty: give the admin socket path or host:port")
    if "/" not in text:
        match = _TCP_PATTERN.match(text)
        if match:
            port = int(match.group("port"))
            if not 0 < port < 65536:
                raise HaproxyError(f"invalid socket {text!r}: port must be 1-65535")
            return TcpAddress(match.group("v6") or match.group("host"), port)
    return UnixAddress(text)


@dataclass(frozen=True)
class ServerState:
    name: str
    admin_bits: int
    op_state: int
    weight: int

    @property
    def admin_state(self) -> str:
        """The effective admin state, forced or inherited."""
        if self.admin_bits & MAINT_MASK:
            return "maint"
        if self.admin_bits & DRAIN_MASK:
            return "drain"
        return "ready"

    @property
    def forced_admin_state(self) -> str:
        """The admin state set from the CLI, the only one `set server ... state` changes."""
        if self.admin_bits & FMAINT:
            return "maint"
        if self.admin_bits & FDRAIN:
            return "drain"
        return "ready"

    @property
    def operational_state(self) -> str:
        return OP_STATES.get(self.op_state, f"unknown({self.op_state})")

    @property
    def admin_flags(self) -> list[str]:
        return [name for bit, name in FLAG_NAMES.items() if self.admin_bits & bit]

    def as_result(self) -> dict[str, Any]:
        return {
            "admin_state": self.admin_state,
            "forced_admin_state": self.forced_admin_state,
            "operational_state": self.operational_state,
            "weight": self.weight,
            "admin_flags": self.admin_flags,
            "admin_bits": self.admin_bits,
        }


def _header_columns(line: str, prefix: str, sep: str | None) -> list[str]:
    return [c.strip() for c in line[len(prefix) :].split(sep)]


def parse_servers_state(
    text: str, backend: str, where: str = "HAProxy"
) -> dict[str, ServerState]:
    """Servers of `backend` from `show servers state <backend>`, by header column names."""
    lines = text.splitlines()
    header: list[str] | None = None
    servers: dict[str, ServerState] = {}
    for line in lines:
        if line.startswith("#"):
            columns = _header_columns(line, "#", None)
            if {"be_name", "srv_name"} <= set(columns):
                header = columns
            continue
        if header is None or not line.strip() or line.startswith("#"):
            continue
        row = dict(zip(header, line.split()))  # noqa: B905 (no strict= before Python 3.10)
        try:
            if row["be_name"] != backend:
                continue
            servers[row["srv_name"]] = ServerState(
                name=row["srv_name"],
                admin_bits=int(row["srv_admin_state"]),
                op_state=int(row["srv_op_state"]),
                weight=int(row["srv_uweight"]),
            )
        except (KeyError, ValueError) as exc:
            raise HaproxyError(
                f"unexpected 'show servers state' line {line!r} ({exc}); "
                "is this an HAProxy admin socket?"
            ) from exc
    if header is None:
        first = next((ln.strip() for ln in lines if ln.strip()), "")
        if "can't find backend" in first.lower() or "no such" in first.lower():
            raise HaproxyError(
                f"backend {backend!r} not found on {where} ({first}); check the backend name"
            )
        raise HaproxyError(
            f"no server table in {where}'s answer to 'show servers state {backend}': {first!r}"
        )
    return servers


@dataclass(frozen=True)
class SessionCounts:
    sessions: int
    queue: int

    @property
    def idle(self) -> bool:
        return self.sessions == 0 and self.queue == 0


def parse_stat(text: str) -> list[dict[str, str]]:
    """Rows of `show stat` CSV as dicts keyed by the header's column names."""
    header: list[str] | None = None
    rows: list[dict[str, str]] = []
    for line in text.splitlines():
        if line.startswith("#"):
            columns = _header_columns(line, "#", ",")
            if {"pxname", "svname"} <= set(columns):
                header = columns
            continue
        if header is None or not line.strip():
            continue
        rows.append(dict(zip(header, line.split(","))))  # noqa: B905
    if header is None:
        first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
        raise HaproxyError(f"no CSV header in the answer to 'show stat': {first!r}")
    return rows


def session_counts(stat_text: str, backend: str, server: str) -> SessionCounts:
    for row in parse_stat(stat_text):
        if row.get("pxname") == backend and row.get("svname") == server:
            try:
                return SessionCounts(int(row.get("scur") or 0), int(row.get("qcur") or 0))
            except ValueError as exc:
                raise HaproxyError(f"unreadable scur/qcur for {backend}/{server}: {exc}") from exc
    raise HaproxyError(f"server {backend}/{server} missing from 'show stat'")


def parse_version(info_text: str) -> str:
    for line in info_text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Version":
            return value.strip()
    return "unknown"


def parse_cli_level(text: str) -> str | None:
    """`show cli level` answers user/operator/admin; older HAProxy does not know it."""
    word = text.strip()
    return word if word in CLI_LEVELS else None


def admin_level_error(where: str, level: str) -> HaproxyError:
    return HaproxyError(
        f"HAProxy socket {where} is at level {level}, not admin: "
        "add `level admin` to its `stats socket` line in haproxy.cfg and reload HAProxy"
    )


def check_set_response(command: str, text: str, where: str) -> None:
    """`set server` answers nothing on success; anything else is an error."""
    answer = " ".join(text.split())
    if not answer:
        return
    if "permission denied" in answer.lower():
        raise admin_level_error(where, "below admin")
    raise HaproxyError(f"HAProxy {where} refused {command!r}: {answer}")


@dataclass(frozen=True)
class Plan:
    commands: list[str]
    predicted: ServerState

    @property
    def changed(self) -> bool:
        return bool(self.commands)


_FORCED_BITS = {
    "ready": lambda bits: bits & ~(FMAINT | FDRAIN),
    "drain": lambda bits: (bits & ~FMAINT) | FDRAIN,
    "maint": lambda bits: (bits & ~FDRAIN) | FMAINT,
}


def ready_blocker(state: ServerState) -> str | None:
    """Why `state ready` could not bring the server back, if something it cannot clear holds it."""
    bits = _FORCED_BITS["ready"](state.admin_bits)
    if bits & IMAINT:
        return "it inherits maintenance from the server it tracks; make that server ready first"
    if bits & RMAINT:
        return "its address does not resolve (RMAINT); fix DNS or the server address first"
    if bits & IDRAIN:
        return "it inherits drain from the server it tracks; make that server ready first"
    return None


def plan_change(
    state: ServerState, backend: str, wanted: str, weight: int | None
) -> Plan:
    """The `set server` commands needed to reach `wanted` (and `weight`), nothing more.

    Weight goes first so a server coming back to ready gets traffic at the new weight.
    """
    if wanted not in STATES:
        raise HaproxyError(f"invalid state {wanted!r}: use one of {', '.join(STATES)}")
    target = f"{validate_name('backend', backend)}/{validate_name('server', state.name)}"
    commands: list[str] = []
    predicted = state
    if weight is not None and weight != state.weight:
        commands.append(f"set server {target} weight {weight}")
        predicted = replace(predicted, weight=weight)
    if state.forced_admin_state != wanted:
        commands.append(f"set server {target} state {wanted}")
        predicted = replace(predicted, admin_bits=_FORCED_BITS[wanted](state.admin_bits))
    return Plan(commands, predicted)


@dataclass(frozen=True)
class Session:
    fields: dict[str, str]

    def describe(self) -> str:
        keys = ("src", "fe", "age")
        return " ".join(f"{k}={self.fields[k]}" for k in keys if k in self.fields)


def sessions_on_server(show_sess_text: str, backend: str, server: str) -> list[Session]:
    """Sessions of `show sess` bound to backend/server (lines of key=value tokens)."""
    found = []
    for line in show_sess_text.splitlines():
        fields = dict(tok.split("=", 1) for tok in line.split() if "=" in tok)
        if fields.get("be") == backend and fields.get("srv") == server:
            found.append(Session(fields))
    return found


def describe_open_sessions(sessions: list[Session], limit: int = 5) -> str:
    if not sessions:
        return "no session listed by 'show sess'"
    shown = "; ".join(s.describe() for s in sessions[:limit])
    more = f"; and {len(sessions) - limit} more" if len(sessions) > limit else ""
    return shown + more


@dataclass(frozen=True)
class WaitOutcome:
    done: bool
    waited: float
    last: Any


def poll_until(
    read: Callable[[], Any],
    done: Callable[[Any], bool],
    timeout: float,
    interval: float = 0.5,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> WaitOutcome:
    """Read until `done(reading)`, never longer than `timeout` seconds; the last reading is kept."""
    start = clock()
    deadline = start + timeout
    while True:
        reading = read()
        now = clock()
        if done(reading):
            return WaitOutcome(True, now - start, reading)
        if now >= deadline:
            return WaitOutcome(False, now - start, reading)
        sleep(max(0.0, min(interval, deadline - now)))


def wait_until_idle(
    read_counts: Callable[[], SessionCounts],
    timeout: float,
    interval: float = 0.5,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> WaitOutcome:
    """Poll until no session and no queue, never longer than `timeout` seconds."""
    return poll_until(read_counts, lambda counts: counts.idle, timeout, interval, clock, sleep)


def serves(state: ServerState) -> bool:
    """HAProxy routes to the server: its own health check passed and nothing holds it out."""
    return state.operational_state == "up" and state.admin_state == "ready"


# --------------------------------------------------------------------------- edge layer

# The module runs on the load balancers, whose Python may predate 3.10, where socket.timeout
# was not yet TimeoutError.
SOCKET_TIMEOUTS = (socket.timeout, TimeoutError)  # noqa: UP041

MAX_ANSWER_BYTES = 8 * 1024 * 1024


class RuntimeApi:
    """HAProxy's runtime API in non-interactive mode: one connection per command."""

    def __init__(self, address: UnixAddress | TcpAddress, timeout: float) -> None:
        self.address = address
        self.timeout = timeout

    def __str__(self) -> str:
        return str(self.address)

    def _connect(self, deadline: float) -> socket.socket:
        if isinstance(self.address, UnixAddress):
            return self._connect_unix(self.address.path, deadline)
        return socket.create_connection(
            (self.address.host, self.address.port), timeout=self.timeout
        )

    def _connect_unix(self, path: str, deadline: float) -> socket.socket:
        # A busy admin socket (HAProxy serves `stats maxconn`, 10 by default, at once and queues a few
        # more) refuses with EAGAIN at once: many forks on a big fleet hit that together. It is back
        # pressure, not an error: try again until the deadline.
        pause = 0.02
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            try:
                sock.connect(path)
                return sock
            except BlockingIOError:
                sock.close()
                if time.monotonic() + pause >= deadline:
                    raise socket.timeout from None  # noqa: UP041
                time.sleep(pause)
                pause = min(pause * 2, 0.25)
            except BaseException:
                sock.close()
                raise

    def run(self, command: str, max_bytes: int = MAX_ANSWER_BYTES) -> str:
        """Send one command, read the whole answer; at most `timeout` seconds in all."""
        if "\n" in command or "\r" in command:  # belt and braces; names are validated
            raise HaproxyError(f"refusing to send a command with a line break: {command!r}")
        deadline = time.monotonic() + self.timeout
        try:
            sock = self._connect(deadline)
        except SOCKET_TIMEOUTS as exc:
            raise HaproxyError(
                f"HAProxy socket {self} did not accept a connection within {self.timeout:g} s; "
                "check HAProxy is running and healthy, or raise socket_timeout"
            ) from exc
        except OSError as exc:
            raise HaproxyError(
                f"cannot connect to HAProxy socket {self}: {exc.strerror or exc}; "
                "check the path or host:port and that HAProxy has a `stats socket` line for it"
            ) from exc
        chunks: list[bytes] = []
        size = 0
        try:
            with sock:
                sock.sendall(command.encode() + b"\n")
                while size < max_bytes:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise socket.timeout  # noqa: UP041
                    sock.settimeout(remaining)
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    chunks.append(chunk)
                    size += len(chunk)
        except SOCKET_TIMEOUTS as exc:
            raise HaproxyError(
                f"HAProxy socket {self} did not answer {command!r} within {self.timeout:g} s; "
                "check HAProxy is healthy, or raise socket_timeout"
            ) from exc
        except OSError as exc:
            raise HaproxyError(
                f"HAProxy socket {self} failed during {command!r}: {exc.strerror or exc}"
            ) from exc
        return b"".join(chunks).decode("utf-8", errors="replace")


def get_health(url: str, timeout: float) -> str | None:
    """None when the URL answers 200, else why not (status or error)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:  # noqa: S310 (the operator's URL)
            return None if answer.status == 200 else f"HTTP {answer.status}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (OSError, ValueError) as exc:
        return str(getattr(exc, "reason", None) or exc)


@dataclass(frozen=True)
class HealthCheck:
    url: str
    timeout: float = 5.0
    retries: int = 2
    delay: float = 2.0


def check_health(check: HealthCheck, server: str, where: str) -> None:
    """Up to 1 + retries GETs; raise naming the URL and the last answer when none is a 200."""
    why: str | None = None
    for attempt in range(check.retries + 1):
        if attempt:
            time.sleep(check.delay)
        why = get_health(check.url, check.timeout)
        if why is None:
            return
    raise HaproxyError(
        f"{server} failed its health check at {check.url} from {where} ({why}); "
        "it was not put back in rotation (nothing was sent to HAProxy)"
    )


@dataclass(frozen=True)
class Request:
    backend: str
    server: str
    state: str
    weight: int | None
    wait: bool
    wait_timeout: float
    health: HealthCheck | None = None
    wait_up: bool = False
    wait_up_timeout: float = 30.0


def read_state(api: RuntimeApi, backend: str, server: str) -> ServerState:
    servers = parse_servers_state(api.run(f"show servers state {backend}"), backend, str(api))
    if server not in servers:
        known = ", ".join(sorted(servers)) or "none"
        raise HaproxyError(
            f"server {server!r} not found in backend {backend!r} on {api} "
            f"(servers there: {known}); check the server name"
        )
    return servers[server]


def read_counts(api: RuntimeApi, backend: str, server: str) -> SessionCounts:
    # "<proxy> 4 -1": only this backend's server rows, so the answer stays small.
    return session_counts(api.run(f"show stat {backend} 4 -1"), backend, server)


def apply(api: RuntimeApi, req: Request, check_mode: bool) -> dict[str, Any]:
    """Bring the server to the wanted state; raise HaproxyError (with partial results)."""
    level = parse_cli_level(api.run("show cli level"))
    if level is not None and level != "admin":
        raise admin_level_error(str(api), level)
    version = parse_version(api.run("show info"))
    before = read_state(api, req.backend, req.server)
    if req.state == "ready":
        blocker = ready_blocker(before)
        if blocker:
            raise HaproxyError(
                f"{req.backend}/{req.server} on {api} cannot be made ready: {blocker}"
            )
        if req.health is not None:
            check_health(req.health, req.server, str(api))
    plan = plan_change(before, req.backend, req.state, req.weight)

    result: dict[str, Any] = {
        "changed": plan.changed,
        "socket": str(api),
        "backend": req.backend,
        "server": req.server,
        "state": req.state,
        "haproxy_version": version,
        "commands": plan.commands,
        "before": before.as_result(),
        "waited": 0.0,
        "waited_up": 0.0,
    }
    if check_mode:
        after = plan.predicted
    else:
        for command in plan.commands:
            check_set_response(command, api.run(command), str(api))
        after = read_state(api, req.backend, req.server) if plan.changed else before
        if after.forced_admin_state != req.state or (
            req.weight is not None and after.weight != req.weight
        ):
            raise HaproxyError(
                f"{req.backend}/{req.server} on {api} is {after.forced_admin_state} "
                f"(weight {after.weight}) after {plan.commands}; expected {req.state}"
            )
    if req.wait_up and req.state == "ready" and not check_mode:
        seen = poll_until(
            lambda: read_state(api, req.backend, req.server), serves, req.wait_up_timeout
        )
        after = seen.last
        result["waited_up"] = round(seen.waited, 3)
        if not seen.done:
            raise HaproxyError(
                f"{req.backend}/{req.server} on {api} is still {after.operational_state} "
                f"(admin state {after.admin_state}) {req.wait_up_timeout:g} s after ready: HAProxy's "
                "own health check does not pass; check the node and the backend's check settings"
            )
    result["after"] = after.as_result()

    counts = read_counts(api, req.backend, req.server)
    if req.wait and req.state in ("drain", "maint") and not check_mode:
        outcome = wait_until_idle(
            lambda: read_counts(api, req.backend, req.server), req.wait_timeout
        )
        counts = outcome.last
        result["waited"] = round(outcome.waited, 3)
        if not outcome.done:
            open_sessions = sessions_on_server(api.run("show sess"), req.backend, req.server)
            result.update(sessions=counts.sessions, queue=counts.queue)
            raise WaitTimeout(
                f"{req.backend}/{req.server} on {api} still has {counts.sessions} session(s) "
                f"and {counts.queue} queued after {req.wait_timeout:g} s of {req.state}: "
                f"{describe_open_sessions(open_sessions)}; raise wait_timeout or close them",
                result,
            )
    result["sessions"] = counts.sessions
    result["queue"] = counts.queue
    result["msg"] = (
        f"{req.backend}/{req.server} on {api}: {before.forced_admin_state} -> "
        f"{after.forced_admin_state}{' (check mode)' if check_mode and plan.changed else ''}, "
        f"{counts.sessions} session(s), {counts.queue} queued"
    )
    return result


def health_request(p: dict[str, Any]) -> HealthCheck | None:
    if not p["health_url"]:
        return None
    if p["health_retries"] < 0:
        raise HaproxyError(f"invalid health_retries {p['health_retries']}: use 0 or more")
    return HealthCheck(
        p["health_url"],
        validate_timeout("health_timeout", p["health_timeout"]),
        p["health_retries"],
        max(0.0, p["health_delay"]),
    )


def diff_text(state: dict[str, Any]) -> str:
    keys = ("admin_state", "operational_state", "weight")
    return "".join(f"{key}: {state[key]}\n" for key in keys)


def run_module() -> None:
    module = AnsibleModule(
        argument_spec={
            "socket": {"type": "str", "required": True},
            "backend": {"type": "str", "required": True},
            "server": {"type": "str", "required": True},
            "state": {"type": "str", "required": True, "choices": list(STATES)},
            "weight": {"type": "int"},
            "wait": {"type": "bool", "default": False},
            "wait_timeout": {"type": "float", "default": 60.0},
            "socket_timeout": {"type": "float", "default": 5.0},
            "health_url": {"type": "str"},
            "health_timeout": {"type": "float", "default": 5.0},
            "health_retries": {"type": "int", "default": 2},
            "health_delay": {"type": "float", "default": 2.0},
            "wait_up": {"type": "bool", "default": False},
            "wait_up_timeout": {"type": "float", "default": 30.0},
        },
        supports_check_mode=True,
    )
    p = module.params
    try:
        req = Request(
            backend=validate_name("backend", p["backend"]),
            server=validate_name("server", p["server"]),
            state=p["state"],
            weight=validate_weight(p["weight"]),
            wait=p["wait"],
            wait_timeout=validate_timeout("wait_timeout", p["wait_timeout"]),
            health=health_request(p),
            wait_up=p["wait_up"],
            wait_up_timeout=validate_timeout("wait_up_timeout", p["wait_up_timeout"]),
        )
        address = parse_socket_address(p["socket"])
        api = RuntimeApi(address, validate_timeout("socket_timeout", p["socket_timeout"]))
        result = apply(api, req, module.check_mode)
    except WaitTimeout as exc:
        module.fail_json(msg=str(exc), **exc.result)
    except HaproxyError as exc:
        module.fail_json(msg=str(exc))
    if module._diff:
        result["diff"] = {
            "before_header": f"{result['socket']} {req.backend}/{req.server}",
            "after_header": f"{result['socket']} {req.backend}/{req.server}",
            "before": diff_text(result["before"]),
            "after": diff_text(result["after"]),
        }
    module.exit_json(**result)


if __name__ == "__main__":
    run_module()
