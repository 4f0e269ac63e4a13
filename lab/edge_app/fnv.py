"""FNV-1a 32-bit hash and the rollout bucket derived from it (the config-key contract)."""

from __future__ import annotations

FNV32_OFFSET = 2166136261
FNV32_PRIME = 16777619


def fnv1a32(data: bytes) -> int:
    """FNV-1a over ``data``: XOR each byte in, then multiply by the prime, modulo 2**32."""
    h = FNV32_OFFSET
    for byte in data:
        h ^= byte
        h = (h * FNV32_PRIME) & 0xFFFFFFFF
    return h


def bucket(client_ip: str) -> int:
    """The client's rollout bucket, 0..99: it takes the new path when bucket < rollout_pct."""
    return fnv1a32(client_ip.encode("utf-8")) % 100
