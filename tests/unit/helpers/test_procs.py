import socket
from pathlib import Path

from tests.helpers.procs import free_port


def ephemeral_range() -> range:
    low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    return range(int(low), int(high) + 1)


def test_free_ports_are_outside_the_range_outgoing_connections_take_theirs_from() -> None:
    ports = {free_port() for _ in range(50)}
    assert not ports & set(ephemeral_range())
    assert all(port < 18000 for port in ports)  # the test labs' ports start there


def test_a_free_port_can_be_bound_at_once() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", free_port()))
