"""Fault SPEC parsing (valid combinations, every invalid kind) and the per-request decisions."""

from __future__ import annotations

import random

import pytest
from edge_app.faults import (
    FaultProfile,
    FaultSpecError,
    added_latency,
    format_fault_spec,
    injected_error,
    parse_fault_spec,
)


@pytest.mark.parametrize("spec", ["", "none", "  none  "])
def test_no_fault(spec: str) -> None:
    assert parse_fault_spec(spec) == FaultProfile()
    assert format_fault_spec(parse_fault_spec(spec)) == "none"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("errors=0.02:502", FaultProfile(error_ratio=0.02, error_code=502)),
        ("errors=0.02", FaultProfile(error_ratio=0.02, error_code=500)),
        ("errors=1:429", FaultProfile(error_ratio=1.0, error_code=429)),
        ("latency=0.4", FaultProfile(latency_s=0.4)),
        ("latency=0.4~0.1", FaultProfile(latency_s=0.4, jitter_s=0.1)),
        ("latency=0", FaultProfile()),
        ("health=fail", FaultProfile(health_fail=True)),
        ("crash=start", FaultProfile(crash_start=True)),
        ("scope=new", FaultProfile(scope="new")),
        (
            "errors=0.2:503, latency=0.3~0.05 ,scope=new",
            FaultProfile(
                error_ratio=0.2, error_code=503, latency_s=0.3, jitter_s=0.05, scope="new"
            ),
        ),
        (
            "scope=legacy,health=fail,crash=start,errors=0.5",
            FaultProfile(error_ratio=0.5, health_fail=True, crash_start=True, scope="legacy"),
        ),
    ],
)
def test_valid_specs(spec: str, expected: FaultProfile) -> None:
    assert parse_fault_spec(spec) == expected


@pytest.mark.parametrize(
    ("spec", "canonical"),
    [
        (
            "scope=new,latency=0.40~0.10,errors=0.020:502",
            "errors=0.02:502,latency=0.4~0.1,scope=new",
        ),
        ("errors=0.5", "errors=0.5:500"),
        ("latency=1", "latency=1"),
        ("health=fail,crash=start,scope=all", "health=fail,crash=start"),
    ],
)
def test_canonical_form_round_trips(spec: str, canonical: str) -> None:
    profile = parse_fault_spec(spec)
    assert format_fault_spec(profile) == canonical
    assert parse_fault_spec(canonical) == profile


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("bogus=1", "unknown fault key 'bogus'"),
        ("errors", "fault errors needs a value"),
        ("errors=", "fault errors needs a value"),
        ("errors=0.1,errors=0.2", "given twice"),
        ("errors=0.1,", "empty item"),
        (",errors=0.1", "empty item"),
        ("errors=abc", "ratio 'abc' is not a number"),
        ("errors=nan", "must be a finite number"),
        ("errors=inf", "must be a finite number"),
        ("errors=0", "must be > 0 and <= 1"),
        ("errors=1.5", "must be > 0 and <= 1"),
        ("errors=-0.1", "must be > 0 and <= 1"),
        ("errors=0.1:abc", "status code 'abc' is not an integer"),
        ("errors=0.1:", "status code '' is not an integer"),
        ("errors=0.1:200", "must be between 400 and 599"),
        ("errors=0.1:600", "must be between 400 and 599"),
        ("latency=slow", "seconds 'slow' is not a number"),
        ("latency=-1", "must be between 0 and 60"),
        ("latency=61", "must be between 0 and 60"),
        ("latency=0.4~x", "jitter 'x' is not a number"),
        ("latency=0.1~0.2", "jitter '0.2' must be between 0 and the latency"),
        ("latency=0.4~-0.1", "jitter '-0.1' must be between 0"),
        ("health=ok", "fault health: 'ok' is not supported (use health=fail)"),
        ("crash=later", "fault crash: 'later' is not supported (use crash=start)"),
        ("scope=canary", "fault scope: 'canary' is not one of all, new, legacy"),
    ],
)
def test_invalid_specs_give_one_line_errors(spec: str, message: str) -> None:
    with pytest.raises(FaultSpecError) as info:
        parse_fault_spec(spec)
    text = str(info.value)
    assert message in text
    assert "\n" not in text


class _FixedRng(random.Random):
    def __init__(self, value: float) -> None:
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.value


def test_errors_follow_ratio_and_code() -> None:
    profile = parse_fault_spec("errors=0.2:502")
    assert injected_error(profile, "legacy", _FixedRng(0.19)) == 502
    assert injected_error(profile, "legacy", _FixedRng(0.2)) is None
    rng = random.Random(1234)
    hits = sum(injected_error(profile, "new", rng) == 502 for _ in range(20_000))
    assert 0.18 <= hits / 20_000 <= 0.22


def test_latency_with_jitter_stays_in_range() -> None:
    profile = parse_fault_spec("latency=0.4~0.1")
    assert added_latency(profile, "legacy", _FixedRng(0.0)) == pytest.approx(0.3)
    assert added_latency(profile, "legacy", _FixedRng(1.0)) == pytest.approx(0.5)
    rng = random.Random(7)
    samples = [added_latency(profile, "new", rng) for _ in range(1000)]
    assert all(0.3 <= s <= 0.5 for s in samples)
    assert min(samples) < 0.35 and max(samples) > 0.45


def test_no_latency_without_fault() -> None:
    assert added_latency(FaultProfile(), "new", _FixedRng(0.5)) == 0.0
    assert injected_error(FaultProfile(), "new", _FixedRng(0.0)) is None


@pytest.mark.parametrize(
    ("scope", "hit"),
    [("all", {"legacy", "new"}), ("new", {"new"}), ("legacy", {"legacy"})],
)
def test_scope_limits_errors_and_latency_to_a_variant(scope: str, hit: set[str]) -> None:
    profile = parse_fault_spec(f"errors=1:503,latency=0.2,scope={scope}")
    for variant in ("legacy", "new"):
        expected_code = 503 if variant in hit else None
        expected_delay = 0.2 if variant in hit else 0.0
        assert injected_error(profile, variant, _FixedRng(0.5)) == expected_code
        assert added_latency(profile, variant, _FixedRng(0.5)) == expected_delay


def test_noise_is_background_5xx_and_a_heavy_tailed_delay() -> None:
    from edge_app.faults import NOISE_CODES, noise_delay, noise_error

    rng = random.Random(3)
    codes = [noise_error(0.01, rng) for _ in range(20000)]
    errors = [c for c in codes if c is not None]
    assert 120 < len(errors) < 280 and set(errors) <= set(NOISE_CODES)
    assert noise_error(0.0, rng) is None and noise_delay(0.0, rng) == 0.0
    delays = sorted(noise_delay(0.02, rng) for _ in range(5000))
    assert 0.015 < delays[2500] < 0.025  # the median
    assert delays[-1] <= 0.4 and delays[4750] > 3 * 0.02  # a tail, capped at 20 medians
