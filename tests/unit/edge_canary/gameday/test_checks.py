"""The drill's own judgement (edge_canary/gameday/checks.py): who is to blame for a failed request, who was
reverted, and each expectation's check, on hand-made readings."""

from __future__ import annotations

import json

import pytest

from edge_canary.gameday import checks as chk
from edge_canary.gameday.fleet import FileState, NodeFiles, Sample, ServerState

LKG, BAD, OTHER = "a" * 64, "b" * 64, "c" * 64


def req(start: float, status: int | None, version: str | None, latency: float = 0.01, error: str | None = None,
        variant: str | None = "legacy") -> str:
    return json.dumps({"start": start, "latency_s": latency, "status": status, "error": error, "client_ip": "10.0.0.1",
                       "version": version, "variant": variant})


def files(binary: str | None = LKG, previous: str | None = LKG, rolled_back: str | None = None,
          rolled_back_mtime: float | None = None, config: str = "rollout_pct=0\n") -> NodeFiles:
    return NodeFiles(FileState(binary), FileState(previous), FileState(rolled_back, rolled_back_mtime),
                     FileState("f" * 64), config)


READY = ServerState("READY", True)


# --- traffic ------------------------------------------------------------------------------------


def test_failures_are_blamed_on_the_release_only_when_it_answered_them() -> None:
    lines = [
        req(1.0, 200, "v1"),
        req(2.0, 502, "v2-errors"),
        req(3.0, 200, "v2-errors"),
        req(4.0, 503, None),  # the load balancer itself: no edge node answered
        req(5.0, None, None, error="connection refused"),
        req(6.0, 500, "v1"),
        req(7.0, None, None, error=chk.NOT_SENT),
        "{cut short",
    ]
    t = chk.traffic(chk.parse_requests(lines), "v2-errors", 0.3)
    assert (t.sent, t.failed, t.failed_by_release, t.collateral, t.not_sent) == (6, 4, 1, 3, 1)
    assert t.served_by_release == 2
    assert t.first_bad_at == 2.0
    assert t.collateral_examples == ("503 from no edge node", "connection refused from no edge node", "500 from v1")


def test_slow_answers_of_the_release_count_as_bad_but_not_as_failed() -> None:
    lines = [req(1.0, 200, "v2-slow", latency=0.2), req(2.0, 200, "v2-slow", latency=0.61),
             req(3.0, 200, "v1", latency=0.9)]
    t = chk.traffic(chk.parse_requests(lines), "v2-slow", 0.3)
    assert (t.failed, t.slow_by_release, t.first_bad_at, t.collateral) == (0, 1, 2.0, 0)


def test_a_rollout_blames_only_the_new_code_path() -> None:
    lines = [req(1.0, 502, "v2-dark", variant="new"), req(2.0, 502, "v2-dark", variant="legacy")]
    t = chk.traffic(chk.parse_requests(lines), "v2-dark", 0.3, variant="new")
    assert (t.failed_by_release, t.collateral) == (1, 1)


def test_no_requests_at_all_is_reported_not_hidden() -> None:
    t = chk.traffic([], "v2", 0.3)
    assert not chk.check_traffic_flowed(t).ok
    assert t.first_bad_at is None


# --- who was reverted -------------------------------------------------------------------------


def test_reverted_means_the_release_was_put_aside_during_the_drill() -> None:
    before = {"edge-1": files(), "edge-2": files(rolled_back=BAD, rolled_back_mtime=10.0),
              "edge-3": files(rolled_back=BAD, rolled_back_mtime=10.0), "edge-4": files(rolled_back=OTHER,
                                                                                        rolled_back_mtime=5.0)}
    after = {"edge-1": files(rolled_back=BAD, rolled_back_mtime=20.0),
             "edge-2": files(rolled_back=BAD, rolled_back_mtime=10.0),  # an older drill's leftover
             "edge-3": files(rolled_back=BAD, rolled_back_mtime=30.0),  # reverted again
             "edge-4": files(rolled_back=OTHER, rolled_back_mtime=5.0)}
    assert chk.reverted_nodes(before, after, BAD) == {"edge-1", "edge-3"}


def test_check_reverted_names_both_sides() -> None:
    check = chk.check_reverted({"edge-1"}, set())
    assert not check.ok and "expected edge-1, reverted: none" in check.detail
    assert chk.check_reverted({"edge-1"}, {"edge-1"}).ok


def test_peers_are_untouched_only_if_their_files_and_versions_never_changed() -> None:
    before = {"edge-2": files(), "edge-3": files()}
    samples = [Sample(1.0, {"edge-2": "v1", "edge-3": "v1"}, {})]
    assert chk.check_untouched(["edge-2", "edge-3"], before, dict(before), samples, "v2").ok
    changed = {"edge-2": files(binary=BAD), "edge-3": files()}
    assert "edge-2" in chk.check_untouched(["edge-2", "edge-3"], before, changed, samples, "v2").detail
    served = samples + [Sample(2.0, {"edge-2": "v1", "edge-3": "v2"}, {})]
    check = chk.check_untouched(["edge-2", "edge-3"], before, dict(before), served, "v2")
    assert not check.ok and "served v2: edge-3" in check.detail


# --- the fleet after --------------------------------------------------------------------------


def test_versions_check_wants_every_node_on_the_release_by_version_and_by_sha() -> None:
    after = {"edge-1": files(), "edge-2": files(binary=BAD)}
    check = chk.check_versions({"edge-1": "v1", "edge-2": None}, after, "v1", LKG, "back on v1")
    assert not check.ok
    assert "edge-2 serves nothing" in check.detail and "edge-2 has binary sha256 bbbbbbbbbbbb" in check.detail
    assert chk.check_versions({"edge-1": "v1"}, {"edge-1": files()}, "v1", LKG, "back on v1").ok


@pytest.mark.parametrize("state, expected", [
    (ServerState("READY", True), True),
    (ServerState("DRAIN", True), False),
    (ServerState("MAINT", False), False),
    (ServerState("READY", False), False),
])
def test_ready_means_ready_and_up_on_every_lb(state: ServerState, expected: bool) -> None:
    lbs = {"lb-1": {"edge-1": READY}, "lb-2": {"edge-1": state}}
    assert chk.check_ready(lbs, {"edge-1": ("lb-1", "lb-2")}).ok is expected


def test_an_unreadable_lb_or_a_node_missing_from_it_fails_ready() -> None:
    unreadable = chk.check_ready({"lb-1": {"edge-1": READY}, "lb-2": {}}, {"edge-1": ("lb-1", "lb-2")})
    assert "lb-2: admin socket unreadable" in unreadable.detail
    missing = chk.check_ready({"lb-1": {"edge-1": READY}}, {"edge-1": ("lb-1",), "edge-2": ("lb-1",)})
    assert "edge-2 on lb-1: unknown" in missing.detail


def test_ready_asks_each_node_only_of_its_own_points_of_presence_load_balancers() -> None:
    """Across PoPs each LB serves its PoP's nodes only: edge-2 unknown to lb-1 is as it should be."""
    lbs = {"lb-1": {"edge-1": READY}, "lb-2": {"edge-2": READY}}
    assert chk.check_ready(lbs, {"edge-1": ("lb-1",), "edge-2": ("lb-2",)}).ok
    drained = {"lb-1": {"edge-1": READY}, "lb-2": {"edge-2": ServerState("DRAIN", True)}}
    assert chk.check_ready(drained, {"edge-1": ("lb-1",), "edge-2": ("lb-2",)}).detail == "edge-2 on lb-2: DRAIN"


def test_previous_must_stay_a_last_known_good() -> None:
    before = {"edge-1": files(previous=OTHER), "edge-2": files(), "edge-3": files(), "edge-4": files()}
    after = {"edge-1": files(previous=OTHER),  # as before: fine
             "edge-2": files(previous=None),
             "edge-3": files(previous=BAD),
             "edge-4": files(previous="d" * 64)}
    check = chk.check_previous(before, after, LKG, BAD)
    assert not check.ok
    assert "edge-1" not in check.detail
    assert "edge-2: .previous is gone" in check.detail
    assert "edge-3: .previous is the drill's release" in check.detail
    assert "edge-4: .previous changed" in check.detail
    assert chk.check_previous(before, {**before, "edge-1": files(previous=LKG)}, LKG, BAD).ok


def test_config_checks_compare_keys_and_rollout_pct() -> None:
    before = {"edge-1": files(config="rollout_pct=0\n# note\n")}
    assert chk.check_config(before, {"edge-1": files(config="rollout_pct=0\n")}).ok
    assert not chk.check_config(before, {"edge-1": files(config="rollout_pct=10\n")}).ok
    assert chk.check_rollout_off({"edge-1": files(config="x=1\n")}).ok  # absent means 0
    assert not chk.check_rollout_off({"edge-1": files(config="rollout_pct=50\n")}).ok


def test_collateral_is_allowed_up_to_the_limit_and_named() -> None:
    t = chk.traffic(chk.parse_requests([req(1.0, 503, None)]), "v2", 0.3)
    assert not chk.check_collateral(t, 0).ok
    assert chk.check_collateral(t, 1).ok
    assert "503 from no edge node" in chk.check_collateral(t, 0).detail


def test_background_allowance_is_the_binomial_tail_of_the_fleets_own_5xx_share() -> None:
    assert chk.background_allowance(1000, 0.0) == 0 and chk.background_allowance(0, 0.002) == 0
    # 1000 answers at 0.2 %: 2 expected; P(X > 8) = 0.00023 is under 1 in 1000, P(X > 7) = 0.00108 is not.
    assert chk.background_allowance(1000, 0.002) == 8
    assert chk.background_allowance(100, 0.002) == 3  # P(X > 2) = 0.00112, P(X > 3) = 0.00005


def test_the_good_releases_own_failures_within_the_background_are_not_collateral() -> None:
    answered = [req(i, 200, "v1") for i in range(996)]
    own = [req(1000.0 + i, 503, "v1") for i in range(4)]  # its own 503s, with its version header
    haproxy = req(2000.0, 503, None)  # HAProxy's own answer: never background
    requests = chk.parse_requests(answered + own + [haproxy])
    t, within = chk.split_background(requests, chk.traffic(requests, "v2", 0.3), "v1", 0.002)
    assert within.ok and "4 failure(s) answered by v1 itself, of 1000 it answered" in within.detail, within
    assert (t.collateral, t.background, t.failed) == (1, 4, 5)
    assert not chk.check_collateral(t, 0).ok and chk.check_collateral(t, 1).ok
    # More than the background gives: the good release failing is the drill's doing, all of it collateral.
    many = chk.parse_requests(answered + [req(3000.0 + i, 503, "v1") for i in range(9)])
    t, within = chk.split_background(many, chk.traffic(many, "v2", 0.3), "v1", 0.002)
    assert not within.ok and "MORE than" in within.detail and (t.collateral, t.background) == (9, 0)


def test_collateral_while_the_drills_own_direct_reads_stalled_is_counted_apart() -> None:
    ready = {"lb-1": {n: ServerState("READY", True) for n in ("edge-1", "edge-2")}}
    t = chk.traffic(chk.parse_requests([req(50.0, 503, None), req(50.2, 503, None)]), "v2", 0.3)
    prompt = {"edge-1": 0.003, "edge-2": 0.002, "lb-1": 0.001}
    steady = [Sample(at, {}, ready, prompt) for at in (47.0, 48.0, 49.0, 50.0, 51.0, 52.0)]
    charged = chk.check_collateral(t, 0, steady)
    assert not charged.ok and charged.detail.startswith("2 failed request(s)")
    assert "503 from no edge node" in charged.detail
    stalled = [*steady[:3], Sample(50.1, {}, ready, {**prompt, "edge-1": 3.5}), *steady[4:]]
    excused = chk.check_collateral(t, 0, stalled)
    assert excused.ok, excused.detail
    assert excused.detail == ("0 failed request(s) the release did not fail itself (allowed 0); 2 more while the "
                              "lab machine itself stalled (edge-1 took 3.5 s to answer the drill directly)")
    # A stall long after the failures excuses nothing.
    late = [*steady, Sample(60.0, {}, ready, {**prompt, "lb-1": 4.0})]
    assert not chk.check_collateral(t, 0, late).ok


@pytest.mark.parametrize("expected, lines, ok", [
    ("failures", [req(1.0, 502, "v2")], True),
    ("failures", [req(1.0, 200, "v2")], False),
    ("slow", [req(1.0, 200, "v2", latency=0.5)], True),
    ("slow", [req(1.0, 200, "v2", latency=0.1)], False),
    ("none", [req(1.0, 200, "v1")], True),
    ("none", [req(1.0, 200, "v2")], False),
    ("ok", [req(1.0, 200, "v2")], True),
    ("ok", [req(1.0, 500, "v2")], False),
    ("ok", [req(1.0, 200, "v1")], False),  # a good release that never served proves nothing
])
def test_the_release_traffic_expectation(expected: str, lines: list[str], ok: bool) -> None:
    t = chk.traffic(chk.parse_requests(lines), "v2", 0.3)
    assert chk.check_release_traffic(expected, t, "v2").ok is ok


def test_tool_verdict_check() -> None:
    assert chk.check_tool_verdict("reverted", "reverted").ok
    check = chk.check_tool_verdict("reverted", "revert_failed")
    assert not check.ok and check.detail == "expected reverted, the tool said revert_failed"


# --- times --------------------------------------------------------------------------------------


def test_restored_is_the_first_sample_serving_the_old_version_ready_everywhere_after_detection() -> None:
    drain = {"lb-1": {"edge-1": ServerState("DRAIN", True)}}
    ready = {"lb-1": {"edge-1": READY}}
    samples = [
        Sample(1.0, {"edge-1": "v1"}, ready),  # before the deploy: not a restore
        Sample(5.0, {"edge-1": "v2"}, ready),
        Sample(8.0, {"edge-1": "v1"}, drain),  # back on v1 but still drained
        Sample(9.0, {"edge-1": "v1"}, ready),
    ]
    assert chk.restored_at(samples, "edge-1", "v1", after=6.0, lbs=("lb-1",)) == 9.0
    assert chk.restored_at(samples, "edge-1", "v1", after=None, lbs=("lb-1",)) is None
    # Another PoP's load balancer, which does not serve edge-1, does not hold its restore back.
    other_pop = [Sample(s.at, s.versions, {**s.lbs, "lb-2": {"edge-4": READY}}) for s in samples]
    assert chk.restored_at(other_pop, "edge-1", "v1", after=6.0, lbs=("lb-1",)) == 9.0
    assert chk.first_seen(samples, "edge-1", "v2") == 5.0
    assert chk.seconds_between(2.0, 9.04) == 7.0
    assert chk.seconds_between(None, 9.0) is None


def test_a_cut_node_may_fail_requests_only_while_haproxy_notices() -> None:
    around = chk.parse_requests([req(99.5, None, None, error="timeout"), req(100.0, 503, None),
                                 req(104.0, 503, None), req(101.0, 200, "v1"), req(120.0, 502, "v2")])
    ok = chk.check_routed_around(around, "v2", cut_at=100.0, grace=6.0)
    assert ok.ok and ok.detail.startswith("3 request(s) failed within 6 s of the cut, 0 outside it (allowed 0)")
    late = chk.check_routed_around(around + chk.parse_requests([req(107.0, 503, None), req(50.0, 503, "v1")]),
                                   "v2", cut_at=100.0, grace=6.0)
    assert not late.ok and "2 outside it (allowed 0): 503 at +7.0 s, 503 at -50.0 s" in late.detail
    assert chk.check_routed_around(around + chk.parse_requests([req(107.0, 503, None)]), "v2", 100.0, 6.0, 1).ok
    assert not chk.check_routed_around(around, "v2", cut_at=None, grace=6.0).ok


def test_failures_outside_the_cut_name_what_the_load_balancers_saw_then() -> None:
    samples = [Sample(106.0, {}, {"lb-1": {"edge-1": ServerState("READY", False), "edge-2": ServerState("READY", False),
                                           "edge-3": ServerState("DRAIN", True)}, "lb-2": {}}),
               Sample(109.0, {}, {"lb-1": {}})]
    late = chk.check_routed_around(chk.parse_requests([req(107.5, 503, None), req(108.0, 503, None)]), "v2",
                                   cut_at=100.0, grace=6.0, samples=samples)
    assert not late.ok
    assert late.detail.endswith("; at +7.5 s lb-1 saw edge-1 DOWN, edge-2 DOWN, edge-3 UP DRAIN; lb-2 unreadable")


def test_failures_while_the_drills_own_direct_reads_stalled_are_counted_apart_not_charged_to_haproxy() -> None:
    ready = {"lb-1": {n: ServerState("READY", True) for n in ("edge-1", "edge-2", "edge-3")}}
    timeouts = chk.parse_requests([req(189.1, None, None, latency=10.0, error="timeout"),
                                   req(189.5, None, None, latency=10.0, error="timeout")])

    def routed(samples: list[Sample]) -> chk.Check:
        return chk.check_routed_around(timeouts, "v2", cut_at=100.0, grace=6.0, samples=samples, cut_node="edge-2")

    prompt = {"edge-1": 0.003, "edge-2": 0.002, "edge-3": 0.004, "lb-1": 0.001}
    steady = [Sample(at, {}, ready, prompt) for at in (188.0, 189.0, 190.0, 192.0, 195.0, 198.0, 200.0)]
    charged = routed(steady)
    assert not charged.ok
    assert charged.detail.endswith("(slowest direct read: edge-3 0.00 s)")

    stalled = [*steady[:3], Sample(194.5, {}, ready, {**prompt, "edge-3": 4.2}), *steady[4:]]
    excused = routed(stalled)
    assert excused.ok, excused.detail
    assert ("0 outside it (allowed 0); 2 more while the lab machine itself stalled (edge-3 took 4.2 s to answer "
            "the drill directly)") in excused.detail

    # Slow reads of the cut node itself are the cut, not a stall; a slow read long after the requests is unrelated.
    assert not routed([*steady[:3], Sample(194.5, {}, ready, {**prompt, "edge-2": 2.0}), *steady[4:]]).ok
    assert not routed([*steady, Sample(203.0, {}, ready, prompt), Sample(206.0, {}, ready, {**prompt, "lb-1": 3.0})]).ok

    silent = routed([steady[0], Sample(199.0, {}, ready, prompt)])
    assert silent.ok and "the drill's sampler could not run for 11.0 s" in silent.detail
