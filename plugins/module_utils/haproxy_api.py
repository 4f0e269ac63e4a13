"""HAProxy's runtime API (the admin socket, unix or TCP) in non-interactive mode: one connection per
command, every operation bounded by the socket timeout."""

from __future__ import annotations

import socket
import time

from ansible_collections.edge.canary.plugins.module_utils.haproxy_state import (
    HaproxyError,
    ServerState,
    SessionCounts,
    TcpAddress,
    UnixAddress,
    parse_servers_state,
    session_counts,
)

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
        return socket.create_connection((self.address.host, self.address.port), timeout=self.timeout)

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
            raise HaproxyError(f"HAProxy socket {self} failed during {command!r}: {exc.strerror or exc}") from exc
        return b"".join(chunks).decode("utf-8", errors="replace")


def read_states(api: RuntimeApi, backend: str, names: list[str]) -> dict[str, ServerState]:
    """The named servers' states from one `show servers state`; an unknown name is an error."""
    servers = parse_servers_state(api.run(f"show servers state {backend}"), backend, str(api))
    for name in names:
        if name not in servers:
            known = ", ".join(sorted(servers)) or "none"
            raise HaproxyError(
                f"server {name!r} not found in backend {backend!r} on {api} "
                f"(servers there: {known}); check the server name"
            )
    return {name: servers[name] for name in names}


def read_counts(api: RuntimeApi, backend: str, names: list[str]) -> dict[str, SessionCounts]:
    """The named servers' sessions and queue from one `show stat`."""
    # "<proxy> 4 -1": only this backend's server rows, so the answer stays small.
    text = api.run(f"show stat {backend} 4 -1")
    return {name: session_counts(text, backend, name) for name in names}
