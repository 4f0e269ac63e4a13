"""Request metrics and their Prometheus text exposition (format 0.0.4), written by hand.

Every series the SLI queries use is pre-initialised at 0, so that rate()/increase() see the
very first errors of a bad release instead of a series that appears out of nowhere.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
VARIANTS = ("legacy", "new")
PREINIT_CODES = (200, 500, 502, 503, 504)
# Fine enough around 50-500 ms to tell a healthy node from one with added latency.
BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3,
    0.4, 0.5, 0.6, 0.75, 1.0, 1.5, 2.5, 5.0,
)  # fmt: skip


@dataclass(frozen=True)
class Histogram:
    counts: tuple[int, ...]  # per bucket (not cumulative), the last one is +Inf
    total: float
    count: int


@dataclass(frozen=True)
class MetricsSnapshot:
    requests: dict[tuple[int, str], int]  # (code, variant) -> count
    durations: dict[str, Histogram]  # variant -> histogram


class RequestMetrics:
    """Thread-safe counters for the request path; snapshot() gives an immutable copy."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests = {(code, v): 0 for v in VARIANTS for code in PREINIT_CODES}
        self._counts = {v: [0] * (len(BUCKETS) + 1) for v in VARIANTS}
        self._sums = dict.fromkeys(VARIANTS, 0.0)

    def observe(self, code: int, variant: str, seconds: float) -> None:
        index = next((i for i, le in enumerate(BUCKETS) if seconds <= le), len(BUCKETS))
        with self._lock:
            self._requests[(code, variant)] = self._requests.get((code, variant), 0) + 1
            counts = self._counts.setdefault(variant, [0] * (len(BUCKETS) + 1))
            counts[index] += 1
            self._sums[variant] = self._sums.get(variant, 0.0) + seconds

    def snapshot(self) -> MetricsSnapshot:
        with self._lock:
            return MetricsSnapshot(
                requests=dict(self._requests),
                durations={
                    v: Histogram(tuple(c), self._sums[v], sum(c)) for v, c in self._counts.items()
                },
            )


def escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: str) -> str:
    inner = ",".join(f'{k}="{escape_label_value(v)}"' for k, v in labels.items())
    return "{" + inner + "}" if inner else ""


def _value(value: float) -> str:
    return str(value) if isinstance(value, int) else repr(float(value))


def _le(bound: float) -> str:
    return repr(float(bound))


def render(snapshot: MetricsSnapshot, version: str, fault: str, rollout_pct: int) -> str:
    """The whole /metrics body, series in a stable order."""
    lines = [
        "# HELP edge_http_requests_total Requests answered (health, version, metrics excluded).",
        "# TYPE edge_http_requests_total counter",
    ]
    by_variant_then_code = sorted(snapshot.requests.items(), key=lambda kv: (kv[0][1], kv[0][0]))
    for (code, variant), count in by_variant_then_code:
        lines.append(f"edge_http_requests_total{_labels(code=str(code), variant=variant)} {count}")
    name = "edge_http_request_duration_seconds"
    lines += [
        f"# HELP {name} Time to answer a request, including any injected latency.",
        f"# TYPE {name} histogram",
    ]
    for variant, hist in sorted(snapshot.durations.items()):
        cumulative = 0
        for bound, count in zip((*map(_le, BUCKETS), "+Inf"), hist.counts, strict=True):
            cumulative += count
            lines.append(f"{name}_bucket{_labels(variant=variant, le=bound)} {cumulative}")
        lines.append(f"{name}_sum{_labels(variant=variant)} {_value(hist.total)}")
        lines.append(f"{name}_count{_labels(variant=variant)} {hist.count}")
    lines += [
        "# HELP edge_build_info The running build: version and baked fault profile.",
        "# TYPE edge_build_info gauge",
        f"edge_build_info{_labels(version=version, fault=fault)} 1",
        "# HELP edge_config_rollout_pct The rollout_pct in force (0 when absent or invalid).",
        "# TYPE edge_config_rollout_pct gauge",
        f"edge_config_rollout_pct {rollout_pct}",
    ]
    return "\n".join(lines) + "\n"
