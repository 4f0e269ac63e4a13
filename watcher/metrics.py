"""The watcher's own metrics (prometheus-client), served on --metrics-port while it runs."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from watcher.judge import ProbeInput, ProbeResult, State
from watcher.sli import SideSLI

_P = "edge_canary_watcher"
VERDICTS = ("promote", "reverted", "hold", "revert_failed")


class WatcherMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.probes = Counter(f"{_P}_probes", "Probes by result", ["result"], registry=r)
        self.sli = Gauge(f"{_P}_sli", "Last SLI values seen", ["side", "sli"], registry=r)
        self.verdict = Gauge(f"{_P}_verdict", "1 for the final verdict", ["verdict"], registry=r)
        self.reverts = Counter(f"{_P}_reverts", "Revert attempts by outcome", ["outcome"],
                               registry=r)  # fmt: skip
        self.blind = Counter(f"{_P}_blind_seconds", "Seconds without fresh data", registry=r)
        self.query_seconds = Histogram(
            f"{_P}_query_duration_seconds",
            "Time to run one probe's queries",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.window_progress = Gauge(f"{_P}_probes_done_ratio", "Share of planned probes done",
                                     registry=r)  # fmt: skip
        for state in State:
            self.probes.labels(state.value)
        for verdict in VERDICTS:
            self.verdict.labels(verdict).set(0)
        self._server: Any = None

    def serve(self, port: int, addr: str) -> None:
        if port:
            self._server = start_http_server(port, addr=addr, registry=self.registry)

    def stop(self) -> None:
        if self._server is not None:
            server = self._server[0] if isinstance(self._server, tuple) else self._server
            server.shutdown()
            server.server_close()
            self._server = None

    def _side(self, side: str, sli: SideSLI | None) -> None:
        if sli is None:
            return
        self.sli.labels(side, "request_rate").set(sli.request_rate)
        ratio = sli.error_ratio
        self.sli.labels(side, "error_ratio").set(ratio if ratio is not None else float("nan"))
        self.sli.labels(side, "p95_seconds").set(sli.p95 if sli.p95 is not None else float("nan"))

    def probe(self, probe: ProbeInput, result: ProbeResult, seconds: float, blind: float) -> None:
        self.probes.labels(result.state.value).inc()
        self.query_seconds.observe(seconds)
        if blind > 0:
            self.blind.inc(blind)
        self._side("canary", probe.canary)
        self._side("control", probe.control)

    def progress(self, done: int, planned: int) -> None:
        self.window_progress.set(done / planned if planned else 0.0)

    def final(self, verdict: str) -> None:
        self.verdict.labels(verdict).set(1)

    def revert(self, ok: bool, shadow: bool) -> None:
        self.reverts.labels("shadow" if shadow else ("ok" if ok else "failed")).inc()
