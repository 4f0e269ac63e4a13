"""edge-canary loadgen against real edge artifacts: counts, per-request records, rate, early stop."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.edge import EdgeNode, build_artifact, serving_edge
from tests.helpers.procs import free_port, running

LOADGEN = [sys.executable, "-m", "edge_canary", "loadgen"]
SUMMARY_KEYS = ("sent", "ok", "failed", "p50_ms", "p99_ms")
# The machine is shared: be patient with answers so that load elsewhere does not fail a test.
PATIENT_TIMEOUT_S = 20


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("artifacts")
    return {
        "good": build_artifact(out / "edge-good", "2.0.0"),
        "failing": build_artifact(out / "edge-failing", "2.0.1-bad", "errors=0.5:502"),
        "slow": build_artifact(out / "edge-slow", "2.0.2-slow", "latency=0.5"),
    }


@pytest.fixture(scope="module")
def nodes(
    artifacts: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, EdgeNode]]:
    work = tmp_path_factory.mktemp("nodes")
    config = work / "edge.conf"
    config.write_text("rollout_pct=50\n")
    with (
        serving_edge(artifacts["good"], config, work / "good.log") as good,
        serving_edge(artifacts["failing"], config, work / "failing.log") as failing,
        serving_edge(artifacts["slow"], config, work / "slow.log") as slow,
    ):
        yield {"good": good, "failing": failing, "slow": slow}


def run_loadgen(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LOADGEN, *args], capture_output=True, text=True, timeout=120
    )


def parse_line(stdout: str) -> dict[str, float]:
    """The one summary line: 'loadgen: sent=N ok=N failed=N p50_ms=X p99_ms=Y'."""
    lines = stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("loadgen: "), stdout
    fields = dict(part.split("=") for part in lines[0].removeprefix("loadgen: ").split())
    assert tuple(fields) == SUMMARY_KEYS
    return {k: float(v) for k, v in fields.items()}


def read_records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_counts_records_and_summary_json_against_a_good_node(
    nodes: dict[str, EdgeNode], tmp_path: Path
) -> None:
    out, summary = tmp_path / "reqs.jsonl", tmp_path / "summary.json"
    done = run_loadgen(
        "--url", nodes["good"].url("/api"), "--rps", "50", "--duration", "2",
        "--clients", "30", "--timeout", str(PATIENT_TIMEOUT_S),
        "--out", str(out), "--summary-json", str(summary),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    line = parse_line(done.stdout)
    assert (line["sent"], line["ok"], line["failed"]) == (100, 100, 0)
    assert 0 < line["p50_ms"] <= line["p99_ms"] < 2000

    records = read_records(out)
    assert len(records) == 100
    assert {r["status"] for r in records} == {200}
    assert {r["error"] for r in records} == {None}
    assert {r["version"] for r in records} == {"2.0.0"}
    assert {r["variant"] for r in records} == {"legacy", "new"}  # rollout_pct=50 splits them
    assert len({r["client_ip"] for r in records}) == 30
    assert all(str(r["client_ip"]).startswith("10.") for r in records)
    starts = sorted(float(r["start"]) for r in records)
    assert 1.5 <= starts[-1] - starts[0] <= 10  # spread over the 2 s, not a burst

    data = json.loads(summary.read_text())
    assert {k: data[k] for k in SUMMARY_KEYS} == line
    assert data["statuses"] == {"200": 100}
    assert data["errors"] == {}
    assert data["stopped_early"] is False


def test_failing_node_is_counted_as_failed(nodes: dict[str, EdgeNode], tmp_path: Path) -> None:
    summary = tmp_path / "summary.json"
    done = run_loadgen(
        "--url", nodes["failing"].url("/"), "--rps", "100", "--duration", "3",
        "--timeout", str(PATIENT_TIMEOUT_S), "--summary-json", str(summary),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    line = parse_line(done.stdout)
    assert line["sent"] == 300 and line["ok"] + line["failed"] == 300
    data = json.loads(summary.read_text())
    statuses, errors = data["statuses"], data["errors"]
    assert set(statuses) <= {"200", "502"}
    assert statuses.get("200", 0) == line["ok"]
    assert statuses.get("502", 0) + sum(errors.values()) == line["failed"]
    # On a busy machine a few may go unsent; judge the ratio on what was answered.
    answered = statuses.get("200", 0) + statuses.get("502", 0)
    assert answered >= 250, data
    # errors=0.5: sd of the ratio <= 0.032 at n=250; allow 4 sd.
    assert abs(statuses.get("502", 0) / answered - 0.5) <= 0.13, data


def test_nothing_listening_is_all_failed_with_reason(tmp_path: Path) -> None:
    out, summary = tmp_path / "reqs.jsonl", tmp_path / "summary.json"
    url = f"http://127.0.0.1:{free_port()}/"
    done = run_loadgen(
        "--url", url, "--rps", "20", "--duration", "1",
        "--out", str(out), "--summary-json", str(summary),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == "loadgen: sent=20 ok=0 failed=20 p50_ms=nan p99_ms=nan\n"
    records = read_records(out)
    assert {(r["status"], r["error"]) for r in records} == {(None, "connection refused")}
    data = json.loads(summary.read_text())
    assert data["errors"] == {"connection refused": 20}
    assert data["p50_ms"] is None and data["p99_ms"] is None


def test_slow_answers_do_not_lower_the_rate(nodes: dict[str, EdgeNode]) -> None:
    began = time.monotonic()
    done = run_loadgen(
        "--url", nodes["slow"].url("/"), "--rps", "40", "--duration", "2",
        "--timeout", str(PATIENT_TIMEOUT_S),
    )  # fmt: skip
    elapsed = time.monotonic() - began
    assert done.returncode == 0, done.stderr
    line = parse_line(done.stdout)
    assert (line["sent"], line["ok"]) == (80, 80)
    assert 480 <= line["p50_ms"] < 2000
    # Closed-loop with 1 in flight would need 40 s; open-loop ends after ~2 s + the last 0.5 s.
    assert elapsed < 20


def test_concurrency_limit_counts_unsent_requests(
    nodes: dict[str, EdgeNode], tmp_path: Path
) -> None:
    summary = tmp_path / "summary.json"
    done = run_loadgen(
        "--summary-json", str(summary),
        "--url", nodes["slow"].url("/"), "--rps", "20", "--duration", "2", "--concurrency", "2",
        "--timeout", str(PATIENT_TIMEOUT_S),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    line = parse_line(done.stdout)
    # At most 2 in flight, 0.5 s each: ~4 answers per second, the rest are not sent.
    assert line["sent"] == 40
    assert 1 <= line["ok"] <= 16 and line["failed"] == 40 - line["ok"], line
    data = json.loads(summary.read_text())
    assert data["errors"] == {"not sent: concurrency limit": line["failed"]}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_ends_early_and_still_summarises(
    nodes: dict[str, EdgeNode], tmp_path: Path, sig: signal.Signals
) -> None:
    out, summary, log = tmp_path / "reqs.jsonl", tmp_path / "s.json", tmp_path / "stdout.log"
    argv = [
        *LOADGEN, "--url", nodes["good"].url("/"), "--rps", "20",
        "--duration", "600", "--out", str(out), "--summary-json", str(summary),
    ]  # fmt: skip
    with running(argv, log_path=log) as proc:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (not out.exists() or out.stat().st_size == 0):
            time.sleep(0.1)
        proc.send_signal(sig)
        assert proc.wait(30) == 0
    line = parse_line(log.read_text())
    assert 1 <= line["sent"] < 600 * 20
    assert line["sent"] == len(read_records(out))
    data = json.loads(summary.read_text())
    assert data["stopped_early"] is True and data["sent"] == line["sent"]
