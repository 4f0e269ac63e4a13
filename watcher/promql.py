"""PromQL query templates: `${selector}` and `${range}` placeholders, rendered per side.

The defaults match the lab's edge binary; other metric names are a config-file change
(`query_requests`, `query_p95`, `query_freshness`), not a code change.
"""

from __future__ import annotations

from dataclasses import dataclass
from string import Template

DEFAULT_REQUESTS = "sum by (code) (increase(edge_http_requests_total{${selector}}[${range}]))"
DEFAULT_P95 = (
    "histogram_quantile(0.95, sum by (le) "
    "(rate(edge_http_request_duration_seconds_bucket{${selector}}[${range}])))"
)
DEFAULT_FRESHNESS = "max(timestamp(edge_http_requests_total{${selector}}))"
# What the judge counts: raw counters per series, read at the probe's pinned time and differenced
# by the watcher itself (true counts, resets handled per series; no increase() extrapolation).
DEFAULT_COUNTS = "edge_http_requests_total{${selector}}"
DEFAULT_BUCKETS = "edge_http_request_duration_seconds_bucket{${selector}}"

PLACEHOLDERS = frozenset({"selector", "range"})


@dataclass(frozen=True)
class Queries:
    """The templates one probe runs for each side (canary, control): counts, buckets, freshness.
    requests and p95 (rates over a range) are for dashboards and game-day reports."""

    requests: str = DEFAULT_REQUESTS  # one series per `code` label: request counts in range
    p95: str = DEFAULT_P95  # one series (or none): p95 latency in seconds over range
    freshness: str = DEFAULT_FRESHNESS  # one series (or none): newest sample timestamp
    counts: str = DEFAULT_COUNTS  # raw request counters, each series with a `code` label
    buckets: str = DEFAULT_BUCKETS  # raw histogram bucket counters, each with an `le` label


@dataclass(frozen=True)
class RenderedQueries:
    requests: str
    p95: str
    freshness: str
    counts: str = ""
    buckets: str = ""


def template_problem(template: str) -> str | None:
    """Why a template cannot be used, or None when it is fine."""
    tpl = Template(template)
    if not tpl.is_valid():
        return "is not a valid template (use ${selector} and ${range}; write $$ for a literal $)"
    names = set(tpl.get_identifiers())
    unknown = names - PLACEHOLDERS
    if unknown:
        return f"uses unknown placeholder(s) {', '.join(sorted(unknown))} (known: selector, range)"
    if "selector" not in names:
        return "does not use ${selector}, so canary and control would be the same query"
    return None


def format_range(seconds: float) -> str:
    """A PromQL duration for a range in seconds (whole seconds, else milliseconds)."""
    if float(seconds).is_integer():
        return f"{int(seconds)}s"
    return f"{round(seconds * 1000)}ms"


def render(queries: Queries, selector: str, range_seconds: float) -> RenderedQueries:
    values = {"selector": selector, "range": format_range(range_seconds)}
    return RenderedQueries(
        requests=Template(queries.requests).substitute(values),
        p95=Template(queries.p95).substitute(values),
        freshness=Template(queries.freshness).substitute(values),
        counts=Template(queries.counts).substitute(values),
        buckets=Template(queries.buckets).substitute(values),
    )
