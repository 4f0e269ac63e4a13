"""FNV-1a vectors, the rollout bucket contract, and how requests are routed to a variant."""

from __future__ import annotations

import ipaddress

import pytest
from edge_app.fnv import bucket, fnv1a32
from edge_app.server import choose_variant, client_ip


def test_pinned_bucket_vectors() -> None:
    assert bucket("1.2.3.4") == 85
    assert bucket("") == 61


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", 0x811C9DC5),  # the offset basis itself
        (b"a", 0xE40C292C),  # published FNV-1a 32 test vectors
        (b"foobar", 0xBF9CF968),
    ],
)
def test_fnv1a32_published_vectors(data: bytes, expected: int) -> None:
    assert fnv1a32(data) == expected


def test_bucket_hashes_utf8_bytes() -> None:
    assert bucket("é") == fnv1a32("é".encode()) % 100


def _distinct_ips(n: int) -> list[str]:
    first = int(ipaddress.IPv4Address("10.0.0.1"))
    return [str(ipaddress.IPv4Address(first + i)) for i in range(n)]


@pytest.mark.parametrize("pct", [5, 10, 25, 50, 75, 90])
def test_split_of_1000_ips_is_within_5_points(pct: int) -> None:
    ips = _distinct_ips(1000)
    new = sum(choose_variant(ip, pct) == "new" for ip in ips)
    assert abs(new / 10 - pct) <= 5, f"{new / 10}% new for rollout_pct={pct}"


def test_rollout_0_and_100_are_all_or_nothing() -> None:
    ips = [*_distinct_ips(300), "", "1.2.3.4"]
    assert {choose_variant(ip, 0) for ip in ips} == {"legacy"}
    assert {choose_variant(ip, 100) for ip in ips} == {"new"}


def test_variant_boundary_is_strictly_less_than() -> None:
    assert choose_variant("1.2.3.4", 85) == "legacy"
    assert choose_variant("1.2.3.4", 86) == "new"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, "192.0.2.9"),
        ("10.1.2.3", "10.1.2.3"),
        ("10.1.2.3, 172.16.0.1", "10.1.2.3"),
        ("  10.1.2.3  ,172.16.0.1", "10.1.2.3"),
        ("", ""),
    ],
)
def test_client_ip_is_first_forwarded_for_else_peer(header: str | None, expected: str) -> None:
    assert client_ip(header, "192.0.2.9") == expected
