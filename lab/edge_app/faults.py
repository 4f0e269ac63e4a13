"""Fault profiles baked into a build: parsing (pure) and the per-request decisions.

SPEC is comma-separated and combinable, e.g. ``errors=0.02:502,latency=0.4~0.1,scope=new``:

- ``errors=RATIO[:CODE]``  answer RATIO (0 < RATIO <= 1) of requests with CODE (400-599, def. 500)
- ``latency=S[~J]``        add S seconds (0..60), optionally with +/-J seconds of jitter (J <= S)
- ``health=fail``          /health answers 503
- ``crash=start``          exit 1 at start, before listening
- ``scope=new|legacy|all`` only requests of that variant get the errors/latency (default all)
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace

KNOWN_KEYS = ("errors", "latency", "health", "crash", "scope")
SCOPES = ("all", "new", "legacy")
MAX_LATENCY_S = 60.0
NO_FAULT = "none"


class FaultSpecError(ValueError):
    """A fault SPEC that cannot be used; the message is one line saying what to fix."""


@dataclass(frozen=True)
class FaultProfile:
    error_ratio: float = 0.0
    error_code: int = 500
    latency_s: float = 0.0
    jitter_s: float = 0.0
    health_fail: bool = False
    crash_start: bool = False
    scope: str = "all"

    def applies_to(self, variant: str) -> bool:
        return self.scope == "all" or self.scope == variant


def _number(key: str, text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise FaultSpecError(f"fault {key}: {what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise FaultSpecError(f"fault {key}: {what} {text!r} must be a finite number")
    return value


def _parse_errors(value: str) -> tuple[float, int]:
    ratio_text, sep, code_text = value.partition(":")
    ratio = _number("errors", ratio_text, "ratio")
    if not 0.0 < ratio <= 1.0:
        raise FaultSpecError(f"fault errors: ratio {ratio_text!r} must be > 0 and <= 1 (e.g. 0.02)")
    code = 500
    if sep:
        if not code_text.isdigit():
            raise FaultSpecError(f"fault errors: status code {code_text!r} is not an integer")
        code = int(code_text)
        if not 400 <= code <= 599:
            raise FaultSpecError(f"fault errors: status code {code} must be between 400 and 599")
    return ratio, code


def _parse_latency(value: str) -> tuple[float, float]:
    base_text, sep, jitter_text = value.partition("~")
    base = _number("latency", base_text, "seconds")
    if not 0.0 <= base <= MAX_LATENCY_S:
        raise FaultSpecError(
            f"fault latency: {base_text!r} must be between 0 and {MAX_LATENCY_S:g} seconds"
        )
    jitter = _number("latency", jitter_text, "jitter") if sep else 0.0
    if not 0.0 <= jitter <= base:
        raise FaultSpecError(
            f"fault latency: jitter {jitter_text!r} must be between 0 and the latency ({base:g})"
        )
    return base, jitter


def _parse_flag(key: str, value: str, expected: str) -> bool:
    if value != expected:
        raise FaultSpecError(f"fault {key}: {value!r} is not supported (use {key}={expected})")
    return True


def parse_fault_spec(spec: str) -> FaultProfile:
    """Parse SPEC into a FaultProfile; "" and "none" mean no fault. Raises FaultSpecError."""
    spec = spec.strip()
    if spec in ("", NO_FAULT):
        return FaultProfile()
    profile = FaultProfile()
    seen: set[str] = set()
    for item in spec.split(","):
        key, sep, value = (part.strip() for part in item.partition("="))
        if not item.strip():
            raise FaultSpecError(f"fault spec {spec!r} has an empty item (stray comma?)")
        if key not in KNOWN_KEYS:
            raise FaultSpecError(f"unknown fault key {key!r} (known: {', '.join(KNOWN_KEYS)})")
        if not sep or not value:
            raise FaultSpecError(f"fault {key} needs a value, e.g. {_EXAMPLES[key]}")
        if key in seen:
            raise FaultSpecError(f"fault {key} is given twice; give each key once")
        seen.add(key)
        if key == "errors":
            ratio, code = _parse_errors(value)
            profile = replace(profile, error_ratio=ratio, error_code=code)
        elif key == "latency":
            base, jitter = _parse_latency(value)
            profile = replace(profile, latency_s=base, jitter_s=jitter)
        elif key == "health":
            profile = replace(profile, health_fail=_parse_flag(key, value, "fail"))
        elif key == "crash":
            profile = replace(profile, crash_start=_parse_flag(key, value, "start"))
        else:
            if value not in SCOPES:
                raise FaultSpecError(f"fault scope: {value!r} is not one of {', '.join(SCOPES)}")
            profile = replace(profile, scope=value)
    return profile


_EXAMPLES = {
    "errors": "errors=0.02:502",
    "latency": "latency=0.4~0.1",
    "health": "health=fail",
    "crash": "crash=start",
    "scope": "scope=new",
}


def _num(value: float) -> str:
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def format_fault_spec(profile: FaultProfile) -> str:
    """The canonical SPEC for a profile ("none" when it has no fault); parse() round-trips it."""
    parts = []
    if profile.error_ratio:
        parts.append(f"errors={_num(profile.error_ratio)}:{profile.error_code}")
    if profile.latency_s:
        jitter = f"~{_num(profile.jitter_s)}" if profile.jitter_s else ""
        parts.append(f"latency={_num(profile.latency_s)}{jitter}")
    if profile.health_fail:
        parts.append("health=fail")
    if profile.crash_start:
        parts.append("crash=start")
    if profile.scope != "all":
        parts.append(f"scope={profile.scope}")
    return ",".join(parts) or NO_FAULT


def added_latency(profile: FaultProfile, variant: str, rng: random.Random) -> float:
    """Seconds to sleep before answering a request of ``variant`` (never negative)."""
    if not profile.latency_s or not profile.applies_to(variant):
        return 0.0
    jitter = rng.uniform(-profile.jitter_s, profile.jitter_s) if profile.jitter_s else 0.0
    return max(0.0, profile.latency_s + jitter)


def injected_error(profile: FaultProfile, variant: str, rng: random.Random) -> int | None:
    """The status code to fail this request with, or None to answer normally."""
    if not profile.error_ratio or not profile.applies_to(variant):
        return None
    return profile.error_code if rng.random() < profile.error_ratio else None


NOISE_CODES = (503, 503, 502, 500)  # a fleet's background 5xx: mostly upstream 503s


def noise_delay(median: float, rng: random.Random) -> float:
    """A heavy-tailed delay (lognormal, sigma 1) of that median, capped at 20 medians."""
    if median <= 0:
        return 0.0
    return min(20 * median, rng.lognormvariate(math.log(median), 1.0))


def noise_error(share: float, rng: random.Random) -> int | None:
    """A background 5xx for `share` of requests, else None."""
    if share <= 0 or rng.random() >= share:
        return None
    return rng.choice(NOISE_CODES)
