"""The built artifact as a real process: endpoints, metrics, fault profiles, live config, drain."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import signal
import socket
import struct
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from edge_app.fnv import bucket
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.edge import BUILD_ARTIFACT, EdgeNode, build_artifact, serving_edge
from tests.helpers.procs import free_port, read_text

FAULTS = {
    "good": None,
    "errors": "errors=0.2:502",
    "latency": "latency=0.3~0.05",
    "health": "health=fail",
    "crash": "crash=start",
    "scope": "errors=1:503,scope=new",
    "slow": "latency=3",
}


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("artifacts")
    return {
        name: build_artifact(out / f"edge-{name}", f"1.0.0-{name}", fault)
        for name, fault in FAULTS.items()
    }


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "edge.conf"
    path.write_text("rollout_pct=0\n")
    return path


def set_config(path: Path, text: str) -> None:
    """Replace the file atomically, the way the edge_release role does."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


Serve = Callable[[Path], EdgeNode]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def serve(tmp_path: Path, config: Path) -> Iterator[Serve]:
    """serve(artifact) starts it on a free port; every node started is stopped at teardown."""
    with contextlib.ExitStack() as stack:

        def start(artifact: Path) -> EdgeNode:
            log = tmp_path / f"{artifact.name}.log"
            return stack.enter_context(serving_edge(artifact, config, log))

        yield start


def get(node: EdgeNode, path: str, ip: str | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=30)
    try:
        conn.request("GET", path, headers={"X-Forwarded-For": ip} if ip else {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def metric_samples(node: EdgeNode) -> Samples:
    _, _, body = get(node, "/metrics")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def requests_total(samples: Samples, code: int, variant: str) -> float:
    key = frozenset({("code", str(code)), ("variant", variant)})
    return float(samples[("edge_http_requests_total", key)])


def ip_in_bucket_range(low: int, high: int) -> str:
    """A client address whose rollout bucket is in [low, high)."""
    for i in range(1, 100_000):
        ip = f"10.9.{i // 256}.{i % 256}"
        if low <= bucket(ip) < high:
            return ip
    raise AssertionError("no address found")


# --- endpoints ------------------------------------------------------------------------------


def test_health_version_and_request_headers(artifacts: dict[str, Path], serve: Serve) -> None:
    node = serve(artifacts["good"])
    status, headers, body = get(node, "/health")
    assert (status, body) == (200, b"ok\n")
    assert headers["Connection"] == "close"
    status, headers, body = get(node, "/version")
    assert status == 200
    assert json.loads(body) == {"version": "1.0.0-good", "fault": "none", "pid": node.proc.pid}
    status, headers, body = get(node, "/api/anything?x=1", ip="10.0.0.1")
    assert status == 200
    assert headers["X-Edge-Version"] == "1.0.0-good"
    assert headers["X-Edge-Variant"] == "legacy"
    assert headers["Connection"] == "close"
    assert body.startswith(b"edge 1.0.0-good")


def test_version_flag_prints_baked_version_even_for_a_crashing_build(
    artifacts: dict[str, Path],
) -> None:
    for name in ("good", "crash"):
        done = subprocess.run(
            [str(artifacts[name]), "--version"], capture_output=True, text=True, timeout=30
        )
        assert (done.returncode, done.stdout) == (0, f"1.0.0-{name}\n")


def test_metrics_labels_and_preinitialised_series(artifacts: dict[str, Path], serve: Serve) -> None:
    node = serve(artifacts["good"])
    samples = metric_samples(node)
    for variant in ("legacy", "new"):
        for code in (200, 500, 502, 503, 504):
            assert requests_total(samples, code, variant) == 0
        inf = frozenset({("variant", variant), ("le", "+Inf")})
        assert samples[("edge_http_request_duration_seconds_bucket", inf)] == 0
    info = frozenset({("version", "1.0.0-good"), ("fault", "none")})
    assert samples[("edge_build_info", info)] == 1
    assert samples[("edge_config_rollout_pct", frozenset())] == 0

    for path in ("/health", "/version", "/metrics", "/x"):
        get(node, path, ip="10.0.0.1")
    samples = metric_samples(node)
    # Only the /x request counts: health, version and metrics are not traffic.
    assert requests_total(samples, 200, "legacy") == 1
    assert sum(v for (name, _), v in samples.items() if name == "edge_http_requests_total") == 1


# --- fault profiles -------------------------------------------------------------------------


def test_errors_fault_answers_the_configured_ratio(
    artifacts: dict[str, Path], serve: Serve
) -> None:
    node = serve(artifacts["errors"])
    n = 400
    codes = Counter(get(node, "/x", ip=f"10.0.{i // 256}.{i % 256}")[0] for i in range(n))
    assert set(codes) == {200, 502}
    # 20 % of 400: mean 80, sd 8; allow 4 sd either side.
    assert 48 <= codes[502] <= 112, codes
    samples = metric_samples(node)
    assert requests_total(samples, 502, "legacy") == codes[502]
    assert requests_total(samples, 200, "legacy") == codes[200]
    assert get(node, "/health")[0] == 200  # errors never hit health checks


def test_latency_fault_shows_in_timings_and_histogram(
    artifacts: dict[str, Path], serve: Serve
) -> None:
    node = serve(artifacts["latency"])
    n = 8
    timings: list[float] = []

    def one(i: int) -> None:
        began = time.monotonic()
        assert get(node, "/x", ip=f"10.0.0.{i + 1}")[0] == 200
        timings.append(time.monotonic() - began)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(timings) == n and min(timings) >= 0.25  # 0.3 s minus 0.05 s jitter
    assert get(node, "/health")[0] == 200
    samples = metric_samples(node)

    def le(bound: str) -> float:
        key = frozenset({("variant", "legacy"), ("le", bound)})
        return samples[("edge_http_request_duration_seconds_bucket", key)]

    assert le("0.2") == 0
    assert le("1.0") == n  # 0.25-0.35 s each, plus serving time on a possibly busy machine
    count = samples[
        ("edge_http_request_duration_seconds_count", frozenset({("variant", "legacy")}))
    ]
    total = samples[("edge_http_request_duration_seconds_sum", frozenset({("variant", "legacy")}))]
    assert count == n and 0.25 * n <= total <= 1.0 * n


def test_health_fail_answers_503_but_still_serves(artifacts: dict[str, Path], serve: Serve) -> None:
    node = serve(artifacts["health"])
    assert get(node, "/health")[0] == 503
    assert get(node, "/x", ip="10.0.0.1")[0] == 200


def test_crash_start_exits_nonzero_fast_with_a_message(
    artifacts: dict[str, Path], config: Path
) -> None:
    port = free_port()
    done = subprocess.run(
        [str(artifacts["crash"]), "--port", str(port), "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert "crash=start" in done.stderr
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0  # it never listened


def test_scope_new_faults_only_hit_the_new_variant(
    artifacts: dict[str, Path], serve: Serve, config: Path
) -> None:
    set_config(config, "rollout_pct=50\n")
    node = serve(artifacts["scope"])
    new_ip, legacy_ip = ip_in_bucket_range(0, 50), ip_in_bucket_range(50, 100)
    for _ in range(20):
        status, headers, _ = get(node, "/x", ip=new_ip)
        assert (status, headers["X-Edge-Variant"]) == (503, "new")
        status, headers, _ = get(node, "/x", ip=legacy_ip)
        assert (status, headers["X-Edge-Variant"]) == (200, "legacy")
    samples = metric_samples(node)
    assert requests_total(samples, 503, "new") == 20
    assert requests_total(samples, 200, "legacy") == 20
    assert requests_total(samples, 503, "legacy") == 0


# --- live config ----------------------------------------------------------------------------


def _variant_eventually(node: EdgeNode, ip: str, expected: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        seen = get(node, "/x", ip=ip)[1]["X-Edge-Variant"]
        if seen == expected:
            return
        time.sleep(0.1)
    raise AssertionError(f"{ip} still on {seen!r}, expected {expected!r}")


def test_rollout_change_applies_without_restart(
    artifacts: dict[str, Path], serve: Serve, config: Path
) -> None:
    node = serve(artifacts["good"])
    ip = "1.2.3.4"  # pinned: bucket 85
    assert get(node, "/x", ip=ip)[1]["X-Edge-Variant"] == "legacy"
    set_config(config, "rollout_pct=86\n")
    _variant_eventually(node, ip, "new")
    assert metric_samples(node)[("edge_config_rollout_pct", frozenset())] == 86
    set_config(config, "# back off\nrollout_pct=85\n")
    _variant_eventually(node, ip, "legacy")
    assert node.proc.poll() is None
    assert json.loads(get(node, "/version")[2])["pid"] == node.proc.pid  # same process


@pytest.mark.parametrize(
    "text", ["rollout_pct=150\n", "rollout_pct=abc\n", "rollout_pct=-5\n", None]
)
def test_invalid_or_absent_rollout_is_legacy(
    artifacts: dict[str, Path], serve: Serve, config: Path, text: str | None
) -> None:
    node = serve(artifacts["good"])
    set_config(config, "rollout_pct=100\n")
    ip = ip_in_bucket_range(0, 5)
    _variant_eventually(node, ip, "new")  # proves the file is read before it goes bad
    if text is None:
        config.unlink()
    else:
        set_config(config, text)
    _variant_eventually(node, ip, "legacy")
    assert metric_samples(node)[("edge_config_rollout_pct", frozenset())] == 0


# --- graceful shutdown ----------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_drains_slow_requests_then_exits_0(
    artifacts: dict[str, Path], config: Path, tmp_path: Path, sig: signal.Signals
) -> None:
    with serving_edge(artifacts["slow"], config, tmp_path / "slow.log") as node:
        # Connected and sent before the signal: these 3 s requests are in flight when it lands.
        socks = [socket.create_connection(("127.0.0.1", node.port), timeout=30) for _ in range(5)]
        for i, sock in enumerate(socks):
            sock.sendall(f"GET /x HTTP/1.1\r\nX-Forwarded-For: 10.0.0.{i}\r\n\r\n".encode())
        time.sleep(0.5)
        os.kill(node.proc.pid, sig)

        refused = False
        while node.proc.poll() is None and not refused:
            with socket.socket() as probe:
                refused = probe.connect_ex(("127.0.0.1", node.port)) != 0
            time.sleep(0.05)
        assert refused, "still accepting connections after the signal"
        status_lines = []
        for sock in socks:
            with sock:
                status_lines.append(sock.makefile("rb").readline())
        assert status_lines == [b"HTTP/1.1 200 OK\r\n"] * 5
        assert node.proc.wait(30) == 0, read_text(node.log_path)
        assert "drained" in read_text(node.log_path)


def test_port_in_use_is_one_line_error(artifacts: dict[str, Path], config: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [str(artifacts["good"]), "--port", str(port), "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "cannot listen" in done.stderr


# --- the build ------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_build_is_reproducible_executable_and_distinct_per_input(tmp_path: Path) -> None:
    a = build_artifact(tmp_path / "a", "2.0.0", "errors=0.02:502")
    time.sleep(1.1)  # a different wall clock must not change the bytes
    b = build_artifact(tmp_path / "b", "2.0.0", "errors=0.02:502")
    assert _sha256(a) == _sha256(b)
    assert (a.stat().st_mode & 0o777) == 0o755
    assert a.read_bytes().startswith(b"#!/usr/bin/env python3\n")
    # The same fault written differently is the same release; other inputs are not.
    same = build_artifact(tmp_path / "same", "2.0.0", "errors=0.020:502")
    assert _sha256(same) == _sha256(a)
    other_fault = build_artifact(tmp_path / "c", "2.0.0", "errors=0.03:502")
    other_version = build_artifact(tmp_path / "d", "2.0.1", "errors=0.02:502")
    assert len({_sha256(a), _sha256(other_fault), _sha256(other_version)}) == 3


def test_build_replaces_an_existing_file_atomically(tmp_path: Path) -> None:
    out = tmp_path / "edge"
    out.write_text("old")
    build_artifact(out, "3.0.0")
    assert (
        subprocess.run([str(out), "--version"], capture_output=True, text=True).stdout == "3.0.0\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edge"]  # no temp files left


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--version", "1.0", "--fault", "errors=2"], "must be > 0 and <= 1"),
        (["--version", "1.0", "--fault", "bogus=1"], "unknown fault key"),
        (["--version", "1 0"], "is not valid"),
        ([], "--version"),
    ],
)
def test_build_refuses_bad_input_and_writes_nothing(
    tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "edge"
    done = subprocess.run(
        [*BUILD_ARTIFACT, *args, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
    assert done.stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_build_refuses_missing_directory(tmp_path: Path) -> None:
    done = subprocess.run(
        [*BUILD_ARTIFACT, "--version", "1", "--out", str(tmp_path / "no/edge")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "does not exist" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_unknown_path_method_is_not_counted(artifacts: dict[str, Path], serve: Serve) -> None:
    node = serve(artifacts["good"])
    request = urllib.request.Request(node.url("/x"), method="POST", data=b"")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=30)
    assert info.value.code == 501
    samples = metric_samples(node)
    assert sum(v for (name, _), v in samples.items() if name == "edge_http_requests_total") == 0


def test_client_giving_up_is_logged_in_one_line(
    artifacts: dict[str, Path], config: Path, tmp_path: Path
) -> None:
    with serving_edge(artifacts["slow"], config, tmp_path / "slow.log") as node:
        with socket.create_connection(("127.0.0.1", node.port), timeout=10) as sock:
            sock.sendall(b"GET /x HTTP/1.1\r\nHost: edge\r\n\r\n")
            # Close with a reset, as a load balancer timing out does.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        deadline = time.monotonic() + 20
        while "failed:" not in read_text(node.log_path) and time.monotonic() < deadline:
            time.sleep(0.1)
        log = read_text(node.log_path)
        assert "request from 127.0.0.1 failed:" in log
        assert "Traceback" not in log
        assert get(node, "/health")[0] == 200  # still serving


def test_connections_queued_in_the_kernel_at_stop_are_answered(
    artifacts: dict[str, Path], config: Path, tmp_path: Path
) -> None:
    with serving_edge(artifacts["good"], config, tmp_path / "good.log") as node:
        os.kill(node.proc.pid, signal.SIGSTOP)  # frozen: connections wait in the listen backlog
        try:
            socks = [
                socket.create_connection(("127.0.0.1", node.port), timeout=30) for _ in range(3)
            ]
            for sock in socks:
                sock.sendall(b"GET /x HTTP/1.1\r\nHost: edge\r\n\r\n")
            os.kill(node.proc.pid, signal.SIGTERM)  # pending until it runs again
        finally:
            os.kill(node.proc.pid, signal.SIGCONT)
        answers = []
        for sock in socks:
            with sock:
                answers.append(sock.makefile("rb").readline())
        assert answers == [b"HTTP/1.1 200 OK\r\n"] * 3
        assert node.proc.wait(30) == 0


def test_faults_never_slow_health_version_or_metrics(
    artifacts: dict[str, Path], serve: Serve
) -> None:
    node = serve(artifacts["slow"])  # 3 s on every request
    for path in ("/health", "/version", "/metrics"):
        began = time.monotonic()
        assert get(node, path)[0] == 200
        assert time.monotonic() - began < 2.5, path
