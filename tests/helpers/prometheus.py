"""A real Prometheus for tests: free port, temp storage, 1 s scrapes, always stopped.

    with running_prometheus(tmp_path, {"edge-1": "127.0.0.1:40001"}) as prom:
        wait_for_samples(prom.url, 'edge_http_requests_total{node="edge-1"}', count=3)

Each target gets a `node` label through static_configs labels, as in the lab.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.helpers.procs import free_port, read_text, running, stop, wait_http

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


@dataclass
class PromServer:
    url: str
    port: int
    proc: subprocess.Popen[Any]
    log_path: Path

    def stop(self) -> int:
        """Stop Prometheus now (mid-test outages); the fixture's cleanup is then a no-op."""
        return stop(self.proc)

    def log(self) -> str:
        return read_text(self.log_path)


def prometheus_config(
    targets: Mapping[str, str],
    scrape_interval: str = "1s",
    labels: Mapping[str, Mapping[str, str]] | None = None,
) -> str:
    """targets: node name -> host:port; labels: extra target labels per node."""
    extra = labels or {}
    static = [
        {"targets": [address], "labels": {"node": node, **extra.get(node, {})}}
        for node, address in targets.items()
    ]
    config = {
        "global": {
            "scrape_interval": scrape_interval,
            "scrape_timeout": scrape_interval,
            "evaluation_interval": scrape_interval,
        },
        "scrape_configs": [{"job_name": "edge", "static_configs": static}],
    }
    return json.dumps(config, indent=2)  # JSON is YAML


@contextlib.contextmanager
def running_prometheus(
    tmp_path: Path,
    targets: Mapping[str, str],
    scrape_interval: str = "1s",
    labels: Mapping[str, Mapping[str, str]] | None = None,
) -> Iterator[PromServer]:
    """Prometheus scraping targets; it starts scraping about 5 s in (discovery is throttled)."""
    workdir = tmp_path / "prometheus"
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text(prometheus_config(targets, scrape_interval, labels))
    port = free_port()
    log_path = workdir / "prometheus.log"
    argv = [
        PROMETHEUS,
        f"--config.file={config}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--storage.tsdb.retention.time=1h",
        "--log.level=warn",
    ]
    with running(argv, log_path=log_path) as proc:
        url = f"http://127.0.0.1:{port}"
        try:
            wait_http(f"{url}/-/ready", timeout=60, proc=proc)
        except (TimeoutError, RuntimeError) as exc:
            raise RuntimeError(f"Prometheus did not start: {exc}\n{read_text(log_path)}") from exc
        yield PromServer(url, port, proc, log_path)


def query(url: str, promql: str, timeout: float = 5.0) -> list[dict[str, Any]]:
    """The result list of an instant query (raises on API errors)."""
    full = f"{url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    with urllib.request.urlopen(full, timeout=timeout) as response:
        payload = json.loads(response.read())
    if payload.get("status") != "success":
        raise RuntimeError(f"query {promql!r} failed: {payload}")
    return list(payload["data"]["result"])


def wait_for_samples(url: str, selector: str, count: int = 3, timeout: float = 60.0) -> None:
    """Wait until every series matching selector has at least `count` samples in the last minute."""
    promql = f"min(count_over_time({selector}[1m]))"
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError, RuntimeError):
            result = query(url, promql)
            last = result
            if result and float(result[0]["value"][1]) >= count:
                return
        time.sleep(0.2)
    raise TimeoutError(f"Prometheus at {url} has no {count} samples of {selector} (last: {last})")
