"""The watcher's own metrics (prometheus-client), served on --metrics-port while it runs.

One unit per metric (Prometheus naming): the last SLI values are three gauges by side. The old
`edge_canary_watcher_sli{sli=...}` (three units in one metric) is still exported, with the same
values, for one release (0.2.x) so that dashboards and rules can move; it goes in 0.3.0.
"""

from __future__ import annotations

import contextlib
import errno
import threading
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from watcher.judge import ProbeInput, ProbeResult, State
from watcher.notify import VERDICT_EVENTS
from watcher.sli import SideSLI

_P = "edge_canary_watcher"
# While another process (the previous rollout stage's watcher, lingering for its last scrapes) holds
# the port, retry this often in the background: metrics never hold up or fail a watch.
BIND_RETRY_SECONDS = 1.0
VERDICTS = ("promote", "reverted", "hold", "revert_failed")
# The mixed-unit gauge, kept for one release beside its replacements.
DEPRECATED_SLI_HELP = (
    "DEPRECATED (removed in 0.3.0): use edge_canary_watcher_requests_per_second, "
    "edge_canary_watcher_error_ratio and edge_canary_watcher_latency_p95_seconds"
)


class WatcherMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.probes = Counter(f"{_P}_probes", "Probes by result", ["result"], registry=r)
        self.requests_per_second = Gauge(
            f"{_P}_requests_per_second", "Request rate the last probe saw, by side", ["side"],
            registry=r)
        self.error_ratio = Gauge(
            f"{_P}_error_ratio", "5xx share of requests the last probe saw, by side", ["side"],
            registry=r)
        self.latency_p95_seconds = Gauge(
            f"{_P}_latency_p95_seconds", "p95 latency the last probe saw, by side", ["side"],
            registry=r)
        self.sli = Gauge(f"{_P}_sli", DEPRECATED_SLI_HELP, ["side", "sli"], registry=r)
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
        self.notifications = Counter(
            f"{_P}_notifications", "Deploy events posted to Alertmanager, by outcome (sent, failed)",
            ["outcome"], registry=r)
        self.deploy_info = Gauge(
            "edge_canary_deploy_info",
            "1 for the deploy's phase: watching (the canary's SLI window), then its verdict's event "
            "(promoted, reverted, held, revert_failed, would_revert); the dashboard's annotations",
            ["deploy_id", "canary", "release", "event"], registry=r)
        self._deploy: tuple[str, str, str] | None = None
        for outcome in ("sent", "failed"):
            self.notifications.labels(outcome)
        for state in State:
            self.probes.labels(state.value)
        for verdict in VERDICTS:
            self.verdict.labels(verdict).set(0)
        self._server: Any = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._retry: threading.Thread | None = None

    def serve(self, port: int, addr: str) -> bool:
        """Serve /metrics on addr:port (0 = off). True when serving; False when off, or when the port
        is in use: then a background thread takes it as soon as it is free (until stop()). Any other
        error (a bad address, a privileged port) raises OSError."""
        self._stopping = threading.Event()
        if not port:
            return False
        try:
            self._bind(port, addr)
            return True
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
        self._retry = threading.Thread(target=self._bind_when_free, args=(port, addr),
                                       name="metrics-bind", daemon=True)
        self._retry.start()
        return False

    @property
    def serving(self) -> bool:
        return self._server is not None

    def _bind(self, port: int, addr: str) -> None:
        self._server = start_http_server(port, addr=addr, registry=self.registry)

    def _bind_when_free(self, port: int, addr: str) -> None:
        while not self._stopping.wait(BIND_RETRY_SECONDS):
            with self._lock:
                if self._stopping.is_set():
                    return
                try:
                    self._bind(port, addr)
                    return
                except OSError:
                    continue

    def stop(self) -> None:
        with self._lock:
            self._stopping.set()
            if self._server is not None:
                server = self._server[0] if isinstance(self._server, tuple) else self._server
                server.shutdown()
                server.server_close()
                self._server = None

    def _side(self, side: str, sli: SideSLI | None) -> None:
        if sli is None:
            return
        nan = float("nan")
        ratio = sli.error_ratio if sli.error_ratio is not None else nan
        p95 = sli.p95 if sli.p95 is not None else nan
        self.requests_per_second.labels(side).set(sli.request_rate)
        self.error_ratio.labels(side).set(ratio)
        self.latency_p95_seconds.labels(side).set(p95)
        self.sli.labels(side, "request_rate").set(sli.request_rate)
        self.sli.labels(side, "error_ratio").set(ratio)
        self.sli.labels(side, "p95_seconds").set(p95)

    def probe(self, probe: ProbeInput, result: ProbeResult, seconds: float, blind: float) -> None:
        self.probes.labels(result.state.value).inc()
        self.query_seconds.observe(seconds)
        if blind > 0:
            self.blind.inc(blind)
        self._side("canary", probe.canary)
        self._side("control", probe.control)

    def progress(self, done: int, planned: int) -> None:
        self.window_progress.set(done / planned if planned else 0.0)

    def deploy(self, deploy_id: str, canary: str, release: str) -> None:
        """Name the deploy this watcher judges: edge_canary_deploy_info{event="watching"} from now on."""
        self._deploy = (deploy_id, canary, release)
        self.deploy_info.labels(*self._deploy, "watching").set(1)

    def final(self, verdict: str, replacing: str = "") -> None:
        """The final verdict; `replacing` an earlier one (a promote undone while awaiting approval)."""
        if replacing:
            self.verdict.labels(replacing).set(0)
        self.verdict.labels(verdict).set(1)
        if self._deploy is not None:
            earlier = VERDICT_EVENTS.get(replacing, replacing) if replacing else "watching"
            with contextlib.suppress(KeyError):
                self.deploy_info.remove(*self._deploy, earlier)
            self.deploy_info.labels(*self._deploy, VERDICT_EVENTS.get(verdict, verdict)).set(1)

    def notified(self, outcome: str) -> None:
        self.notifications.labels(outcome).inc()

    def revert(self, ok: bool, shadow: bool) -> None:
        self.reverts.labels("shadow" if shadow else ("ok" if ok else "failed")).inc()
