"""The haproxy_server module's pure decisions: names, addresses, states, plans, the wait."""

from __future__ import annotations

import pytest

from tests.helpers.haproxy import load_haproxy_module

hs = load_haproxy_module()

FMAINT, IMAINT, CMAINT, FDRAIN, IDRAIN, RMAINT, HMAINT = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40


def state(bits: int = 0, op: int = 2, weight: int = 1, name: str = "n1"):
    return hs.ServerState(name=name, admin_bits=bits, op_state=op, weight=weight)


class TestNames:
    @pytest.mark.parametrize(
        "name", ["n1", "edge-1", "edge_1", "edge.example.com", "a:b", "_x", "9", "a" * 128]
    )
    def test_accepted(self, name):
        assert hs.validate_name("server", name) == name

    @pytest.mark.parametrize(
        "name",
        [
            "",
            "a;b",
            ";",
            "a b",
            " a",
            "a\nb",
            "a\n",
            "a\r",
            "a\tb",
            "a\\b",
            "a<<",
            "<<",
            "a<b",
            "edge/n1",
            "-a",
            ".a",
            ":a",
            "a" * 129,
            "é",
            "a\x00",
            "a'b",
            'a"b',
            "a#b",
        ],
    )
    def test_refused_with_one_line_naming_it(self, name):
        with pytest.raises(hs.HaproxyError) as err:
            hs.validate_name("backend", name)
        msg = str(err.value)
        assert "\n" not in msg and "\r" not in msg
        assert msg.startswith(f"invalid backend name {name!r}")
        assert "nothing was sent" in msg

    def test_non_string_is_refused(self):
        with pytest.raises(hs.HaproxyError):
            hs.validate_name("server", None)


class TestOtherInputs:
    @pytest.mark.parametrize("weight", [None, 0, 1, 256])
    def test_weights_accepted(self, weight):
        assert hs.validate_weight(weight) == weight

    @pytest.mark.parametrize("weight", [-1, 257])
    def test_weights_refused(self, weight):
        with pytest.raises(hs.HaproxyError, match=f"invalid weight {weight}"):
            hs.validate_weight(weight)

    @pytest.mark.parametrize("value", [0, -1])
    def test_timeouts_must_be_positive(self, value):
        with pytest.raises(hs.HaproxyError, match="above 0"):
            hs.validate_timeout("socket_timeout", value)

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("/run/haproxy/admin.sock", hs.UnixAddress("/run/haproxy/admin.sock")),
            ("admin.sock", hs.UnixAddress("admin.sock")),
            ("./odd:1", hs.UnixAddress("./odd:1")),
            ("127.0.0.1:9999", hs.TcpAddress("127.0.0.1", 9999)),
            ("lb-1.example.com:9999", hs.TcpAddress("lb-1.example.com", 9999)),
            ("[::1]:9999", hs.TcpAddress("::1", 9999)),
            (" 127.0.0.1:9999 ", hs.TcpAddress("127.0.0.1", 9999)),
        ],
    )
    def test_socket_addresses(self, text, expected):
        assert hs.parse_socket_address(text) == expected

    def test_tcp_address_prints_back_the_same(self):
        assert str(hs.TcpAddress("::1", 9)) == "[::1]:9"
        assert str(hs.TcpAddress("lb", 9)) == "lb:9"

    @pytest.mark.parametrize(("text", "match"), [("", "socket is empty"), ("h:70000", "1-65535")])
    def test_bad_socket_addresses(self, text, match):
        with pytest.raises(hs.HaproxyError, match=match):
            hs.parse_socket_address(text)

    def test_api_refuses_a_command_with_a_line_break_before_connecting(self):
        api = hs.RuntimeApi(hs.UnixAddress("/nonexistent/never-connected.sock"), 1.0)
        with pytest.raises(hs.HaproxyError, match="line break"):
            api.run("show info\nset server a/b state maint")


class TestStateNames:
    @pytest.mark.parametrize(
        ("bits", "effective", "forced"),
        [
            (0, "ready", "ready"),
            (FMAINT, "maint", "maint"),
            (FMAINT | CMAINT, "maint", "maint"),
            (CMAINT, "ready", "ready"),  # "disabled" in the config, then set ready
            (HMAINT, "ready", "ready"),  # a marker, not a maintenance
            (IMAINT, "maint", "ready"),
            (RMAINT, "maint", "ready"),
            (FDRAIN, "drain", "drain"),
            (IDRAIN, "drain", "ready"),
            (FDRAIN | IMAINT, "maint", "drain"),
            (FMAINT | FDRAIN, "maint", "maint"),
        ],
    )
    def test_effective_and_forced(self, bits, effective, forced):
        s = state(bits)
        assert (s.admin_state, s.forced_admin_state) == (effective, forced)

    def test_flags_and_operational_state(self):
        s = state(FMAINT | CMAINT, op=0)
        assert s.admin_flags == ["FMAINT", "CMAINT"]
        assert s.operational_state == "down"
        assert state(op=1).operational_state == "starting"
        assert state(op=3).operational_state == "stopping"
        assert state(op=7).operational_state == "unknown(7)"

    def test_result_shape(self):
        assert state(FDRAIN, weight=5).as_result() == {
            "admin_state": "drain",
            "forced_admin_state": "drain",
            "operational_state": "up",
            "weight": 5,
            "admin_flags": ["FDRAIN"],
            "admin_bits": FDRAIN,
        }


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
        plan = hs.plan_change(state(bits), "edge", wanted, None)
        assert plan.changed is changes
        assert plan.commands == ([f"set server edge/n1 state {wanted}"] if changes else [])
        assert plan.predicted.admin_bits == after_bits
        assert plan.predicted.forced_admin_state == wanted

    def test_weight_only_when_different_and_before_the_state(self):
        plan = hs.plan_change(state(FMAINT, weight=1), "edge", "ready", 50)
        assert plan.commands == ["set server edge/n1 weight 50", "set server edge/n1 state ready"]
        assert plan.predicted.weight == 50
        assert not hs.plan_change(state(weight=50), "edge", "ready", 50).changed
        assert not hs.plan_change(state(weight=50), "edge", "ready", None).changed

    def test_names_are_checked_again_when_building_commands(self):
        with pytest.raises(hs.HaproxyError, match="invalid backend name"):
            hs.plan_change(state(), "edge;show info", "drain", None)
        with pytest.raises(hs.HaproxyError, match="invalid server name"):
            hs.plan_change(state(name="n1\nshow info"), "edge", "drain", None)

    def test_unknown_state_is_refused(self):
        with pytest.raises(hs.HaproxyError, match="invalid state 'up'"):
            hs.plan_change(state(), "edge", "up", None)

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
        assert reason in hs.ready_blocker(state(bits))

    @pytest.mark.parametrize("bits", [0, FMAINT, FDRAIN, FMAINT | CMAINT, HMAINT])
    def test_ready_not_blocked_by_forced_or_config_states(self, bits):
        assert hs.ready_blocker(state(bits)) is None


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
        out = hs.wait_until_idle(lambda: hs.SessionCounts(0, 0), 30, 0.5, t.clock, t.sleep)
        assert out.done and out.waited == 0 and t.sleeps == []

    def test_waits_until_sessions_and_queue_are_both_zero(self):
        t = FakeTime()
        readings = iter([hs.SessionCounts(2, 0), hs.SessionCounts(0, 1), hs.SessionCounts(0, 0)])
        out = hs.wait_until_idle(lambda: next(readings), 30, 0.5, t.clock, t.sleep)
        assert out.done and out.waited == pytest.approx(1.0)
        assert out.last == hs.SessionCounts(0, 0)

    def test_never_idle_stops_at_the_timeout_with_the_last_counts(self):
        t = FakeTime()
        calls = []

        def busy():
            calls.append(t.now)
            return hs.SessionCounts(3, 1)

        out = hs.wait_until_idle(busy, 2.2, 0.5, t.clock, t.sleep)
        assert not out.done and out.last == hs.SessionCounts(3, 1)
        assert out.waited == pytest.approx(2.2)
        assert max(t.sleeps) <= 0.5 and len(calls) == 6  # 0, .5, 1, 1.5, 2, 2.2
