"""Steady open-loop HTTP load against a loopback target, for a bounded time.

    edge-canary loadgen --url http://127.0.0.1:18080/api --rps 50 --duration 30 --out reqs.jsonl

Requests leave on a fixed schedule (request i at start + i/rps): a slow answer never lowers
the rate. When --concurrency requests are already in flight at a scheduled time, that request
is not sent and is counted as failed ("not sent: concurrency limit") instead of being queued.
Each request carries X-Forwarded-For: a client address 10.x.y.z taken in turn from a pool of
--clients (header values only, never connected to), so the target's rollout split applies.

At the end (or on SIGTERM/SIGINT) one summary line goes to stdout:
    loadgen: sent=N ok=N failed=N p50_ms=X p99_ms=Y
ok counts 2xx/3xx answers; failed counts other statuses, errors and requests not sent.
Percentiles are over requests that got an HTTP answer (nan when none did), about 0.5 % precise.
Exit 0 when the run completed (failed requests included), 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import ipaddress
import itertools
import json
import math
import os
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import IO, NoReturn
from urllib.parse import urlsplit

PROG = "loadgen"
MAX_RPS = 2000.0
MAX_DURATION_S = 7 * 24 * 3600.0
MAX_CLIENTS = 2**24 - 2  # 10.0.0.1 .. 10.255.255.254
FIRST_CLIENT = int(ipaddress.IPv4Address("10.0.0.1"))
NOT_SENT = "not sent: concurrency limit"
LATENCY_GROWTH = 1.01  # log-bucket ratio: percentiles within ~0.5 % without keeping every sample


class UsageError(Exception):
    """Bad arguments; the message is the one line shown to the user."""


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    path: str


@dataclass(frozen=True)
class Options:
    target: Target
    url: str
    rps: float
    duration: float
    clients: int
    timeout: float
    concurrency: int
    out: str | None
    summary_json: str | None


@dataclass(frozen=True)
class Result:
    start: float
    latency_s: float | None
    status: int | None
    error: str | None
    client_ip: str
    version: str | None
    variant: str | None


# --- arguments ------------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_target(url: str) -> Target:
    parts = urlsplit(url)
    if parts.scheme != "http":
        raise UsageError(f"--url {url!r} must be an http:// URL")
    host = parts.hostname or ""
    if not is_loopback(host):
        raise UsageError(
            f"refusing target {host or url!r}: loopback only (127.0.0.0/8, localhost, ::1)"
        )
    try:
        port = parts.port or 80
    except ValueError:
        raise UsageError(f"--url {url!r} has an invalid port") from None
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(host, port, path)


def _bounded(name: str, value: float, low: float, high: float, low_open: bool = True) -> None:
    too_low = value <= low if low_open else value < low
    if too_low or value > high or math.isnan(value):
        lower = f"> {low:g}" if low_open else f">= {low:g}"
        raise UsageError(f"{name} {value:g} is out of range: must be {lower} and <= {high:g}")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{PROG}: {message} (see --help)\n")


def parse_options(argv: list[str] | None) -> Options:
    parser = _Parser(prog=PROG, description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--url", required=True, help="http://127.0.0.1:PORT/path (loopback only)")
    parser.add_argument("--rps", type=float, required=True, help="requests per second (<= 2000)")
    parser.add_argument("--duration", type=float, required=True, help="seconds (<= 7 days)")
    parser.add_argument("--out", help="write one JSON line per request to this file")
    parser.add_argument("--summary-json", help="also write the summary as JSON to this file")
    parser.add_argument("--clients", type=int, default=1000, help="distinct client addresses")
    parser.add_argument("--timeout", type=float, default=2.0, help="per socket operation, seconds")
    parser.add_argument("--concurrency", type=int, default=64, help="max requests in flight")
    args = parser.parse_args(argv)
    _bounded("--rps", args.rps, 0, MAX_RPS)
    _bounded("--duration", args.duration, 0, MAX_DURATION_S)
    _bounded("--clients", args.clients, 1, MAX_CLIENTS, low_open=False)
    _bounded("--timeout", args.timeout, 0, 600)
    _bounded("--concurrency", args.concurrency, 1, 4096, low_open=False)
    for name, path in (("--out", args.out), ("--summary-json", args.summary_json)):
        if path is not None and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            raise UsageError(f"{name} {path!r}: its directory does not exist; create it first")
    return Options(
        target=parse_target(args.url),
        url=args.url,
        rps=args.rps,
        duration=args.duration,
        clients=args.clients,
        timeout=args.timeout,
        concurrency=args.concurrency,
        out=args.out,
        summary_json=args.summary_json,
    )


# --- requests -------------------------------------------------------------------------------


def client_ip(index: int, clients: int) -> str:
    return str(ipaddress.IPv4Address(FIRST_CLIENT + index % clients))


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "connection closed without answer"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, http.client.HTTPException):
        return f"bad answer: {type(exc).__name__}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return f"{type(exc).__name__}: {exc}"


def send_one(target: Target, ip: str, timeout: float) -> Result:
    start = time.time()
    began = time.monotonic()
    conn = http.client.HTTPConnection(target.host, target.port, timeout=timeout)
    try:
        conn.request("GET", target.path, headers={"X-Forwarded-For": ip, "Connection": "close"})
        response = conn.getresponse()
        response.read()
        return Result(
            start=start,
            latency_s=time.monotonic() - began,
            status=response.status,
            error=None,
            client_ip=ip,
            version=response.getheader("X-Edge-Version"),
            variant=response.getheader("X-Edge-Variant"),
        )
    except (OSError, http.client.HTTPException) as exc:
        return Result(start, time.monotonic() - began, None, describe_error(exc), ip, None, None)
    finally:
        conn.close()


# --- summary --------------------------------------------------------------------------------


@dataclass
class Summary:
    sent: int = 0
    ok: int = 0
    failed: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    latency_buckets: Counter[int] = field(default_factory=Counter)

    def add(self, result: Result) -> None:
        self.sent += 1
        if result.status is not None and 200 <= result.status < 400:
            self.ok += 1
        else:
            self.failed += 1
        if result.status is not None:
            self.statuses[result.status] += 1
            assert result.latency_s is not None
            self.latency_buckets[latency_bucket(result.latency_s)] += 1
        else:
            self.errors[result.error or "unknown"] += 1

    def percentile_ms(self, q: float) -> float:
        """Nearest-rank percentile of answered requests, in ms; nan when none was answered."""
        total = sum(self.latency_buckets.values())
        if not total:
            return math.nan
        rank = max(1, math.ceil(q / 100 * total))
        seen = 0
        for index in sorted(self.latency_buckets):
            seen += self.latency_buckets[index]
            if seen >= rank:
                return bucket_value_s(index) * 1000
        raise AssertionError("unreachable: rank <= total")

    def line(self) -> str:
        p50, p99 = self.percentile_ms(50), self.percentile_ms(99)
        return (
            f"{PROG}: sent={self.sent} ok={self.ok} failed={self.failed} "
            f"p50_ms={p50:.1f} p99_ms={p99:.1f}"
        )

    def as_json(self, opts: Options, elapsed_s: float, stopped_early: bool) -> dict[str, object]:
        def ms(q: float) -> float | None:
            value = self.percentile_ms(q)
            return None if math.isnan(value) else round(value, 1)

        return {
            "url": opts.url,
            "rps": opts.rps,
            "duration_s": opts.duration,
            "elapsed_s": round(elapsed_s, 3),
            "stopped_early": stopped_early,
            "sent": self.sent,
            "ok": self.ok,
            "failed": self.failed,
            "p50_ms": ms(50),
            "p99_ms": ms(99),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "errors": dict(sorted(self.errors.items())),
        }


def latency_bucket(seconds: float) -> int:
    micros = max(seconds * 1e6, 1.0)
    return int(math.log(micros) / math.log(LATENCY_GROWTH))


def bucket_value_s(index: int) -> float:
    return float(LATENCY_GROWTH ** (index + 0.5) / 1e6)


# --- the run --------------------------------------------------------------------------------


class Recorder:
    """Collects results from worker threads: the summary and the optional JSON lines."""

    def __init__(self, out: IO[str] | None) -> None:
        self.summary = Summary()
        self._out = out
        self._lock = threading.Lock()
        self.write_error: str | None = None

    def record(self, result: Result) -> None:
        line = json.dumps(asdict(result)) + "\n" if self._out is not None else ""
        with self._lock:
            self.summary.add(result)
            if self._out is not None and self.write_error is None:
                try:
                    self._out.write(line)
                except OSError as exc:  # e.g. disk full: keep the load steady, report at the end
                    self.write_error = exc.strerror or str(exc)


def run(opts: Options, recorder: Recorder, stop: threading.Event) -> None:
    slots = threading.BoundedSemaphore(opts.concurrency)

    def work(ip: str) -> None:
        try:
            result = send_one(opts.target, ip, opts.timeout)
        finally:
            slots.release()
        recorder.record(result)

    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=opts.concurrency, thread_name_prefix=PROG) as pool:
        for i in itertools.count():
            offset = i / opts.rps
            if offset >= opts.duration:
                break
            delay = began + offset - time.monotonic()
            if (delay > 0 and stop.wait(delay)) or stop.is_set():
                break
            ip = client_ip(i, opts.clients)
            if slots.acquire(blocking=False):
                pool.submit(work, ip)
            else:
                recorder.record(Result(time.time(), None, None, NOT_SENT, ip, None, None))


def write_json_atomically(path: str, payload: dict[str, object]) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".loadgen-summary.", dir=directory)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle, indent=2, sort_keys=True)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def main(argv: list[str] | None = None) -> int:
    try:
        opts = parse_options(argv)
    except UsageError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(_signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        out = open(opts.out, "w", encoding="utf-8") if opts.out else None  # noqa: SIM115
    except OSError as exc:
        print(f"{PROG}: cannot write --out {opts.out!r}: {exc.strerror}", file=sys.stderr)
        return 2
    began = time.monotonic()
    recorder = Recorder(out)
    try:
        run(opts, recorder, stop)
    finally:
        if out is not None:
            try:
                out.close()
            except OSError as exc:
                recorder.write_error = recorder.write_error or exc.strerror or str(exc)
    summary = recorder.summary
    print(summary.line(), flush=True)
    if opts.summary_json:
        payload = summary.as_json(opts, time.monotonic() - began, stop.is_set())
        write_json_atomically(opts.summary_json, payload)
    if recorder.write_error:
        print(f"{PROG}: --out {opts.out!r} is incomplete: {recorder.write_error}", file=sys.stderr)
        return 1
    return 0

