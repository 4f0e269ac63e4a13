"""haproxy_server's reading of HAProxy: names, addresses, admin-state bits and the runtime API's answers.

Pure: text in, values out. Names are checked against a strict pattern before any command is built, so a
name cannot inject admin commands.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

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
    initial_weight: int = 0  # the weight of the server's configuration line (srv_iweight); 0 = not read

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
                initial_weight=int(row.get("srv_iweight", "0")),
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
        key, _sep, value = line.partition(":")
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
