"""The machine's loopback services, reachable at the same 127.0.0.1:<port> inside a lab node's network
namespace: what an execution node needs when the play it runs treats the control host's Prometheus and
Alertmanager (the lab's, on the machine's loopback) as its own.

A listening socket is made inside the namespace (setns(2) on one short-lived thread: a network namespace
is per thread, and a socket stays in the namespace it was made in); every connection it accepts is
joined, from this process's own namespace, to the same port on the machine's loopback. Nothing is
started: the forwarding lives in threads of the caller and ends with the context.
"""

from __future__ import annotations

import ctypes
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

CLONE_NEWNET = 0x40000000


def _listen_inside(netns: str, port: int) -> socket.socket:
    made: list[socket.socket | BaseException] = []

    def make() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns into {netns}")
            finally:
                os.close(fd)
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", port))
            listener.listen(64)
            made.append(listener)
        except BaseException as exc:  # handed to the caller's thread
            made.append(exc)

    thread = threading.Thread(target=make)  # ends right away: its namespace goes with it
    thread.start()
    thread.join()
    if isinstance(made[0], BaseException):
        raise made[0]
    return made[0]


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, target):
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _serve(listener: socket.socket, port: int) -> None:
    while True:
        try:
            inside, _ = listener.accept()
        except OSError:
            return  # closed: the context ended
        try:
            outside = socket.create_connection(("127.0.0.1", port), timeout=10)
        except OSError:
            inside.close()
            continue
        outside.settimeout(None)
        threading.Thread(target=_pump, args=(inside, outside), daemon=True).start()
        threading.Thread(target=_pump, args=(outside, inside), daemon=True).start()


@contextmanager
def loopback_ports_in(netns: str, ports: list[int]) -> Iterator[None]:
    """While inside the context, 127.0.0.1:<port> in `netns` reaches 127.0.0.1:<port> of the machine."""
    listeners = [_listen_inside(netns, port) for port in ports]
    try:
        for listener, port in zip(listeners, ports, strict=True):
            threading.Thread(target=_serve, args=(listener, port), daemon=True).start()
        yield
    finally:
        for listener in listeners:
            with suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes its accept()
            listener.close()
