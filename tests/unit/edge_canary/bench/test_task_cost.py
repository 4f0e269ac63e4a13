"""The bench callback's count of module runs behind a task result (edge_canary/bench/callbacks/task_cost.py)."""

from __future__ import annotations

from edge_canary.bench.callbacks.task_cost import module_runs


def test_a_modules_own_attempts_key_is_one_run() -> None:
    # edge_service_health reports its health polls as `attempts`: still one module run. The 100-node
    # roll's "17 module runs per peer" were these polls on a saturated machine.
    assert module_runs({"changed": True, "attempts": 11}, retried=False) == 1


def test_until_attempts_are_module_runs() -> None:
    assert module_runs({"attempts": 3}, retried=True) == 3
    assert module_runs({}, retried=True) == 1


def test_each_loop_item_is_a_run_and_its_until_attempts_count_when_retried() -> None:
    items = {"results": [{"attempts": 2}, {"attempts": 1}, {"item": "lb-3"}]}
    assert module_runs(items, retried=True) == 4
    assert module_runs(items, retried=False) == 3
