"""What a bench run keeps of an earlier run's results (--merge): the phases and fleets it does not redo."""

from __future__ import annotations

from edge_canary.bench.cli import OP_PHASES, kept_reverts, kept_rolls
from edge_canary.bench.report import OP_TITLES

EARLIER = [{"nodes": 3, "batch": 1}, {"nodes": 10, "batch": 5}, {"nodes": 30, "batch": 10}]


def test_a_larger_fleet_joins_the_earlier_rolls() -> None:
    assert kept_rolls(EARLIER, {"roll"}, [(100, [25])]) == EARLIER


def test_a_fleet_and_batch_rolled_again_replaces_its_earlier_rolls_only() -> None:
    assert kept_rolls(EARLIER, {"roll"}, [(10, [5]), (30, [5])]) == [EARLIER[0], EARLIER[2]]


def test_without_the_roll_phase_every_earlier_roll_is_kept() -> None:
    assert kept_rolls(EARLIER, {"green", "watcher"}, [(3, [1])]) == EARLIER


def test_every_operation_the_report_prints_belongs_to_a_phase() -> None:
    # an operation missing here would be carried over from the earlier run and measured again: twice
    assert set(OP_PHASES) == set(OP_TITLES)
    assert OP_PHASES["green-check"] == "green"


REVERTS = [{"release": "v2-errors", "run": 1}, {"release": "v2-errors", "run": 1, "lab": "hosts"}]


def test_reverts_measured_again_replace_those_of_the_same_lab_only() -> None:
    assert kept_reverts(REVERTS, {"revert"}, "hosts") == [REVERTS[0]]  # an earlier run has no "lab": loopback
    assert kept_reverts(REVERTS, {"revert"}, "loopback") == [REVERTS[1]]
    assert kept_reverts(REVERTS, {"roll"}, "loopback") == REVERTS
