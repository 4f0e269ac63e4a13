"""A deploy's waves across points of presence: which nodes go in which wave, and in what batches.

Nodes carry their PoP as the inventory variable edge_pop. When the deploy's nodes span two PoPs or more,
wave 1 is the canary's PoP (its canary, the SLI gate, its other nodes in batches) and every further PoP
is a wave of its own: its first node is the wave's canary, judged by its own SLI gate against the rest of
its PoP, then the rest in batches. Without edge_pop, or with one PoP, there is one wave: today's deploy.
Standard library only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def plan_waves(canary: str, peers: Sequence[str], pops: Mapping[str, str], batch: int) -> dict[str, Any]:
    """The waves of a deploy of `canary` then `peers` (their order kept), `pops` naming each node's PoP
    ('' or absent = none).

    Returns {'waves': [{'wave', 'pop', 'canary', 'rest'}] ([] for a single wave), 'first_peers' (the
    peers rolled after the deploy's own canary), 'later' (the nodes of waves 2..n in roll order),
    'serial' (the batch sizes of the later nodes: each wave's canary alone, then its rest in batches of
    `batch`, so no batch spans two waves) and 'without_pop' (the nodes without a PoP when others have
    one: a mixed deploy is refused by the caller, not guessed; it plans as one wave)."""
    if batch < 1:
        raise ValueError(f"batch {batch} is not at least 1")
    order: list[str] = []
    members: dict[str, list[str]] = {}
    for node in [canary, *peers]:
        pop = pops.get(node) or ""
        if pop not in members:
            order.append(pop)
            members[pop] = []
        members[pop].append(node)
    without_pop = members[""] if "" in members and len(order) > 1 else []
    if len(order) < 2 or without_pop:
        return {"waves": [], "first_peers": list(peers), "later": [], "serial": [1], "without_pop": without_pop}
    waves = [{"wave": 1, "pop": order[0], "canary": canary, "rest": members[order[0]][1:]}]
    later: list[str] = []
    serial: list[int] = []
    for number, pop in enumerate(order[1:], start=2):
        first, *rest = members[pop]
        waves.append({"wave": number, "pop": pop, "canary": first, "rest": rest})
        later += [first, *rest]
        serial += [1] + [min(batch, len(rest) - start) for start in range(0, len(rest), batch)]
    return {
        "waves": waves,
        "first_peers": waves[0]["rest"],
        "later": later,
        "serial": serial,
        "without_pop": [],
    }
