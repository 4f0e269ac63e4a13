"""deploy_waves: the waves of a deploy across points of presence, and their batches."""

from __future__ import annotations

import pytest
from ansible_collections.edge.canary.plugins.module_utils.deploy_waves import plan_waves

POPS = {"edge-1": "ams", "edge-2": "ams", "edge-3": "ams", "edge-4": "fra", "edge-5": "fra", "edge-6": "fra",
        "edge-7": "lhr"}


def test_without_pops_or_with_one_pop_there_is_one_wave() -> None:
    for pops in ({}, {"edge-1": "ams", "edge-2": "ams", "edge-3": "ams"}):
        plan = plan_waves("edge-1", ["edge-2", "edge-3"], pops, 2)
        assert plan["waves"] == [] and plan["first_peers"] == ["edge-2", "edge-3"] and plan["later"] == []


def test_the_canarys_pop_is_wave_one_and_each_further_pop_a_wave_with_its_first_node_as_canary() -> None:
    plan = plan_waves("edge-2", ["edge-4", "edge-1", "edge-5", "edge-3", "edge-6", "edge-7"], POPS, 2)
    assert plan["waves"] == [
        {"wave": 1, "pop": "ams", "canary": "edge-2", "rest": ["edge-1", "edge-3"]},
        {"wave": 2, "pop": "fra", "canary": "edge-4", "rest": ["edge-5", "edge-6"]},
        {"wave": 3, "pop": "lhr", "canary": "edge-7", "rest": []},
    ]
    assert plan["first_peers"] == ["edge-1", "edge-3"]
    assert plan["later"] == ["edge-4", "edge-5", "edge-6", "edge-7"]
    assert plan["serial"] == [1, 2, 1]


def test_no_batch_spans_two_waves() -> None:
    pops = {f"edge-{n}": ("ams" if n <= 2 else "fra" if n <= 7 else "lhr") for n in range(1, 11)}
    peers = [f"edge-{n}" for n in range(2, 11)]
    plan = plan_waves("edge-1", peers, pops, 3)
    # fra: canary edge-3, rest edge-4..7 in 3 + 1; lhr: canary edge-8, rest edge-9..10 in 2
    assert plan["serial"] == [1, 3, 1, 1, 2]
    assert sum(plan["serial"]) == len(plan["later"])
    batches, at = [], 0
    for size in plan["serial"]:
        batches.append(plan["later"][at:at + size])
        at += size
    assert all(len({pops[node] for node in batch}) == 1 for batch in batches)
    canaries = [wave["canary"] for wave in plan["waves"][1:]]
    assert [batch[0] for batch in batches if batch[0] in canaries] == canaries


def test_a_bad_batch_is_refused() -> None:
    with pytest.raises(ValueError, match="batch 0"):
        plan_waves("edge-1", ["edge-4"], POPS, 0)


def test_nodes_without_a_pop_are_named_when_others_have_one() -> None:
    assert plan_waves("edge-1", ["edge-8", "edge-4", "edge-9"], POPS, 1)["without_pop"] == ["edge-8", "edge-9"]
    assert plan_waves("edge-8", ["edge-1"], POPS, 1)["without_pop"] == ["edge-8"]
    assert plan_waves("edge-1", ["edge-8"], {}, 1)["without_pop"] == []
    assert plan_waves("edge-1", ["edge-2", "edge-4"], POPS, 1)["without_pop"] == []
