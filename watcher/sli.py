"""From query results to SLI values, checking that each result has exactly the expected shape.

Pure functions. NaN and empty results mean "no data" (None), never a number. A result with
the wrong shape (several series where one is expected, a missing `code` label) raises
ShapeError naming the query and what came back, rather than silently picking one series.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from watcher.prom import QueryResult, Sample

_MAX_DESCRIBED = 4


class ShapeError(Exception):
    """A query returned something other than the series it is meant to return."""


@dataclass(frozen=True)
class SideSLI:
    """One side's (canary or control) SLIs over the probe's range."""

    requests: float  # requests in range, all codes
    codes: Mapping[str, float] = field(default_factory=dict)  # code -> requests in range
    p95: float | None = None  # seconds; None = no data
    newest_sample_age: float | None = None  # seconds behind Prometheus' clock; None = no series
    range_seconds: float = 60.0
    buckets: Mapping[float, float] = field(default_factory=dict)  # le -> cumulative count

    @property
    def errors(self) -> float:
        return sum(n for code, n in self.codes.items() if is_5xx(code))

    @property
    def error_codes(self) -> dict[str, float]:
        """The 5xx codes actually served in range, with their counts."""
        return {c: n for c, n in sorted(self.codes.items()) if is_5xx(c) and n > 0}

    @property
    def error_ratio(self) -> float | None:
        return self.errors / self.requests if self.requests > 0 else None

    @property
    def request_rate(self) -> float:
        return self.requests / self.range_seconds if self.range_seconds > 0 else 0.0


def is_5xx(code: str) -> bool:
    return len(code) == 3 and code.startswith("5") and code.isdigit()


def describe(result: QueryResult) -> str:
    """A short account of what a query returned, for error messages."""
    if result.result_type not in ("vector", "scalar"):
        return f"a {result.result_type} result"
    if not result.samples:
        return "no series"
    shown = ", ".join(_describe_sample(s) for s in result.samples[:_MAX_DESCRIBED])
    more = len(result.samples) - _MAX_DESCRIBED
    suffix = f", and {more} more" if more > 0 else ""
    return f"{len(result.samples)} series: {shown}{suffix}"


def _describe_sample(sample: Sample) -> str:
    labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
    return f"{{{labels}}} {sample.value:g}"


def _check_instant(result: QueryResult, expected: str) -> None:
    if result.result_type not in ("vector", "scalar"):
        raise ShapeError(
            f"query {result.query!r} returned {describe(result)}, expected {expected}; "
            "fix the query template"
        )


def requests_by_code(result: QueryResult) -> dict[str, float]:
    """Request counts per status code: one series per `code` label and no other label."""
    expected = "one series per status code, each with only a `code` label"
    _check_instant(result, expected)
    counts: dict[str, float] = {}
    for sample in result.samples:
        if set(sample.labels) != {"code"}:
            raise ShapeError(
                f"query {result.query!r} returned {describe(result)}, expected {expected} "
                "(aggregate with `sum by (code)`)"
            )
        code = sample.labels["code"]
        if code in counts:
            raise ShapeError(
                f"query {result.query!r} returned code {code} twice ({describe(result)}), "
                f"expected {expected}"
            )
        if math.isnan(sample.value):
            continue  # no data for this code in range
        if math.isinf(sample.value) or sample.value < 0:
            raise ShapeError(
                f"query {result.query!r} returned {sample.value:g} requests for code {code}, "
                "expected a finite count >= 0"
            )
        counts[code] = sample.value
    return counts


def single_value(result: QueryResult) -> float | None:
    """The value of a query that yields at most one series; None for empty or NaN."""
    expected = "at most one series (aggregate it, e.g. with max() or sum by (le))"
    _check_instant(result, expected)
    if len(result.samples) > 1:
        raise ShapeError(f"query {result.query!r} returned {describe(result)}, expected {expected}")
    if not result.samples or math.isnan(result.samples[0].value):
        return None
    return result.samples[0].value


def newest_sample_age(result: QueryResult) -> float | None:
    """How far the newest sample lags Prometheus' own evaluation time (both on its clock)."""
    newest = single_value(result)
    if newest is None or math.isinf(newest):
        return None
    return max(0.0, result.samples[0].timestamp - newest)


def side_sli(
    requests: QueryResult,
    p95: QueryResult,
    freshness: QueryResult,
    range_seconds: float,
) -> SideSLI:
    codes = requests_by_code(requests)
    return SideSLI(
        requests=sum(codes.values()),
        codes=codes,
        p95=single_value(p95),
        newest_sample_age=newest_sample_age(freshness),
        range_seconds=range_seconds,
    )


SeriesKey = frozenset[tuple[str, str]]


def raw_counters(result: QueryResult, label: str) -> dict[SeriesKey, tuple[str, float]]:
    """Raw counter values, one per series (all its labels), each with its `label` value."""
    expected = f"raw counter series (no aggregation, no rate()), each with a `{label}` label"
    _check_instant(result, expected)
    values: dict[SeriesKey, tuple[str, float]] = {}
    for sample in result.samples:
        if label not in sample.labels:
            raise ShapeError(f"query {result.query!r} returned {describe(result)}, expected {expected}")
        if math.isnan(sample.value):
            continue
        if math.isinf(sample.value) or sample.value < 0:
            raise ShapeError(
                f"query {result.query!r} returned {sample.value:g} for {_describe_sample(sample)}, "
                "expected a finite counter value >= 0"
            )
        values[frozenset(sample.labels.items())] = (sample.labels[label], sample.value)
    return values


def parse_le(text: str) -> float:
    try:
        return float(text)  # "+Inf" parses as inf
    except ValueError:
        raise ShapeError(f"bucket bound le={text!r} is not a number") from None
