"""haproxy_plan: the `set server` commands for a wanted state, what blocks ready, the wait for idle."""

from __future__ import annotations

import pytest
from ansible_collections.edge.canary.plugins.module_utils.haproxy_plan import (
    plan_change,
    ready_blocker,
    wait_until_idle,
)
from ansible_collections.edge.canary.plugins.module_utils.haproxy_state import HaproxyError, ServerState, SessionCounts

FMAINT, IMAINT, CMAINT, FDRAIN, IDRAIN, RMAINT, HMAINT = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40


def state(bits: int = 0, op: int = 2, weight: int = 1, name: str = "n1"):
    return ServerState(name=name, admin_bits=bits, op_state=op, weight=weight)


class TestPlan:
    @pytest.mark.parametrize(
        ("bits", "wanted", "changes", "after_bits"),
        [
            (0, "ready", False, 0),
            (0, "drain", True, FDRAIN),
            (0, "maint", True, FMAINT),
            (FDRAIN, "drain", False, FDRAIN),
            (FDRAIN, "maint", True, FMAINT),  # HAProxy clears the forced drain on maint
            (FDRAIN, "ready", True, 0),
            (FMAINT, "maint", False, FMAINT),
            (FMAINT, "drain", True, FDRAIN),
            (FMAINT, "ready", True, 0),
            (FMAINT | CMAINT, "ready", True, CMAINT),
            (IDRAIN, "drain", True, IDRAIN | FDRAIN),  # inherited drain is not ours to rely on
            (IMAINT, "maint", True, IMAINT | FMAINT),
        ],
    )
    def test_state_transitions(self, bits, wanted, changes, after_bits):
        plan = plan_change(state(bits), "edge", wanted, None)
        assert plan.changed is changes
        assert plan.commands == ([f"set server edge/n1 state {wanted}"] if changes else [])
        assert plan.predicted.admin_bits == after_bits
        assert plan.predicted.forced_admin_state == wanted

    def test_weight_only_when_different_and_before_the_state(self):
        plan = plan_change(state(FMAINT, weight=1), "edge", "ready", 50)
        assert plan.commands == ["set server edge/n1 weight 50", "set server edge/n1 state ready"]
        assert plan.predicted.weight == 50
        assert not plan_change(state(weight=50), "edge", "ready", 50).changed
        assert not plan_change(state(weight=50), "edge", "ready", None).changed

    def test_names_are_checked_again_when_building_commands(self):
        with pytest.raises(HaproxyError, match="invalid backend name"):
            plan_change(state(), "edge;show info", "drain", None)
        with pytest.raises(HaproxyError, match="invalid server name"):
            plan_change(state(name="n1\nshow info"), "edge", "drain", None)

    def test_unknown_state_is_refused(self):
        with pytest.raises(HaproxyError, match="invalid state 'up'"):
            plan_change(state(), "edge", "up", None)

    @pytest.mark.parametrize(
        ("bits", "reason"),
        [
            (IMAINT, "inherits maintenance"),
            (FMAINT | IMAINT, "inherits maintenance"),
            (RMAINT, "does not resolve"),
            (IDRAIN, "inherits drain"),
        ],
    )
    def test_ready_blocked_by_what_set_ready_cannot_clear(self, bits, reason):
        assert reason in (ready_blocker(state(bits)) or "")

    @pytest.mark.parametrize("bits", [0, FMAINT, FDRAIN, FMAINT | CMAINT, HMAINT])
    def test_ready_not_blocked_by_forced_or_config_states(self, bits):
        assert ready_blocker(state(bits)) is None


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class TestWait:
    def test_idle_at_once_returns_without_sleeping(self):
        t = FakeTime()
        out = wait_until_idle(lambda: {"edge-1": SessionCounts(0, 0)}, 30, 0.5, t.clock, t.sleep)
        assert out.done and out.waited == 0 and t.sleeps == []

    def test_waits_until_sessions_and_queue_are_both_zero(self):
        t = FakeTime()
        readings = iter([SessionCounts(2, 0), SessionCounts(0, 1), SessionCounts(0, 0)])
        out = wait_until_idle(lambda: {"edge-1": next(readings)}, 30, 0.5, t.clock, t.sleep)
        assert out.done and out.waited == pytest.approx(1.0)
        assert out.last == {"edge-1": SessionCounts(0, 0)}

    def test_waits_until_every_server_read_is_idle(self):
        t = FakeTime()
        readings = iter([(0, 2), (0, 1), (0, 0)])

        def read():
            first, second = next(readings)
            return {"edge-1": SessionCounts(first, 0), "edge-2": SessionCounts(second, 0)}

        out = wait_until_idle(read, 30, 0.5, t.clock, t.sleep)
        assert out.done and out.waited == pytest.approx(1.0)

    def test_never_idle_stops_at_the_timeout_with_the_last_counts(self):
        t = FakeTime()
        calls = []

        def busy():
            calls.append(t.now)
            return {"edge-1": SessionCounts(3, 1)}

        out = wait_until_idle(busy, 2.2, 0.5, t.clock, t.sleep)
        assert not out.done and out.last == {"edge-1": SessionCounts(3, 1)}
        assert out.waited == pytest.approx(2.2)
        assert max(t.sleeps) <= 0.5 and len(calls) == 6  # 0, .5, 1, 1.5, 2, 2.2


def test_ramp_weights_climb_from_a_tenth_to_the_full_weight_in_half_second_steps() -> None:
    from ansible_collections.edge.canary.plugins.module_utils.haproxy_apply import ramp_weights

    weights = ramp_weights(100, 4)
    assert weights[0] == 10 and weights[-1] == 100 and len(weights) == 9
    assert weights == sorted(set(weights))
    assert ramp_weights(100, 0) == [] and ramp_weights(1, 4) == []  # no time, or no room for a step
    assert ramp_weights(3, 4) == [1, 2, 3]
