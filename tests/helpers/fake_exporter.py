"""A fake edge node for watcher tests: the edge binary's request metrics, steered at runtime.

Traffic is simulated from the clock: every scrape advances the counters by rps x elapsed time,
split by the error ratio, with every request taking `latency` seconds. Series the SLI queries
use are pre-initialised at 0 (like the real edge binary), so the first errors show in increase().

    with FakeExporter(rps=50) as node:      # in-process, on a free port
        node.set(error_ratio=0.5)           # or POST {"error_ratio": 0.5} to /control

Run it standalone too: `python tests/helpers/fake_exporter.py --port 18999 --rps 20`.
"""

from __future__ import annotations

import argparse
import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# The lab edge binary's buckets (lab/edge_app/metrics.py).
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.75, 1.0,
           1.5, 2.5, 5.0)  # fmt: skip
PREINIT_CODES = ("200", "500", "502", "503", "504")


@dataclass(frozen=True)
class Traffic:
    rps: float = 50.0  # simulated requests per second
    error_ratio: float = 0.0  # share of requests answered with error_code
    error_code: str = "500"
    latency: float = 0.02  # seconds every request takes
    variant: str = "legacy"


class SimulatedEdge:
    """Counters that advance with the clock according to the current Traffic."""

    def __init__(self, traffic: Traffic, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._last = clock()
        self.traffic = traffic
        self._carry_ok = 0.0
        self._carry_err = 0.0
        self.requests: dict[tuple[str, str], int] = {}
        self.buckets: dict[str, list[int]] = {}
        self.sums: dict[str, float] = {}
        self._ensure(traffic.variant)

    def _ensure(self, variant: str) -> None:
        for code in PREINIT_CODES:
            self.requests.setdefault((code, variant), 0)
        self.buckets.setdefault(variant, [0] * (len(BUCKETS) + 1))
        self.sums.setdefault(variant, 0.0)

    def _advance(self) -> None:
        now = self._clock()
        elapsed, self._last = max(0.0, now - self._last), now
        t = self.traffic
        self._carry_ok += t.rps * elapsed * (1.0 - t.error_ratio)
        self._carry_err += t.rps * elapsed * t.error_ratio
        ok, err = math.floor(self._carry_ok), math.floor(self._carry_err)
        self._carry_ok -= ok
        self._carry_err -= err
        self._ensure(t.variant)
        self.requests[("200", t.variant)] += ok
        key = (t.error_code, t.variant)
        self.requests[key] = self.requests.get(key, 0) + err
        index = next((i for i, le in enumerate(BUCKETS) if t.latency <= le), len(BUCKETS))
        self.buckets[t.variant][index] += ok + err
        self.sums[t.variant] += (ok + err) * t.latency

    def set(self, **changes: Any) -> Traffic:
        with self._lock:
            self._advance()  # traffic so far happened under the old settings
            self.traffic = replace(self.traffic, **changes)
            return self.traffic

    def render(self) -> str:
        with self._lock:
            self._advance()
            lines = ["# TYPE edge_http_requests_total counter"]
            for (code, variant), count in sorted(self.requests.items()):
                labels = f'code="{code}",variant="{variant}"'
                lines.append(f"edge_http_requests_total{{{labels}}} {count}")
            name = "edge_http_request_duration_seconds"
            lines.append(f"# TYPE {name} histogram")
            for variant, counts in sorted(self.buckets.items()):
                cumulative = 0
                for bound, count in zip((*map(repr, BUCKETS), "+Inf"), counts, strict=True):
                    cumulative += count
                    lines.append(f'{name}_bucket{{variant="{variant}",le="{bound}"}} {cumulative}')
                lines.append(f'{name}_sum{{variant="{variant}"}} {self.sums[variant]!r}')
                lines.append(f'{name}_count{{variant="{variant}"}} {cumulative}')
            return "\n".join(lines) + "\n"


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a scrape cancelled mid-answer (Prometheus timing out) is no test failure


class FakeExporter:
    """SimulatedEdge served over HTTP (GET /metrics, GET/POST /control) on a free port."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, **traffic: Any) -> None:
        self.edge = SimulatedEdge(Traffic(**traffic))
        edge = self.edge

        class Handler(BaseHTTPRequestHandler):
            def _send(self, status: int, body: str, ctype: str) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path == "/metrics":
                    self._send(200, edge.render(), "text/plain; version=0.0.4")
                elif self.path == "/control":
                    self._send(200, json.dumps(asdict(edge.traffic)), "application/json")
                else:
                    self._send(404, "not found\n", "text/plain")

            def do_POST(self) -> None:  # noqa: N802
                if self.path != "/control":
                    self._send(404, "not found\n", "text/plain")
                    return
                length = int(self.headers.get("Content-Length", "0"))
                try:
                    traffic = edge.set(**json.loads(self.rfile.read(length) or b"{}"))
                except (ValueError, TypeError) as exc:
                    self._send(400, f"bad control request: {exc}\n", "text/plain")
                    return
                self._send(200, json.dumps(asdict(traffic)), "application/json")

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = _Server((host, port), Handler)
        self.host = host
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def set(self, **changes: Any) -> Traffic:
        return self.edge.set(**changes)

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeExporter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rps", type=float, default=50.0)
    parser.add_argument("--error-ratio", type=float, default=0.0)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--variant", default="legacy")
    args = parser.parse_args()
    exporter = FakeExporter(
        port=args.port, rps=args.rps, error_ratio=args.error_ratio, latency=args.latency,
        variant=args.variant,
    )  # fmt: skip
    print(f"fake edge exporter on http://{exporter.address}/metrics", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        exporter.close()


if __name__ == "__main__":
    main()
