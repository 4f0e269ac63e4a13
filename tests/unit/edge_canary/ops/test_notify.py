"""`edge-canary notify`: the playbooks' notifier exits 0 whatever Alertmanager does, and counts
each failure in a textfile Prometheus can read (node exporter's textfile collector)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_canary.ops.notify import METRICS_FILE, main, read_counts
from tests.helpers.procs import free_port


def test_an_unreachable_alertmanager_exits_0_and_counts_each_failure(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["started", f"--url=http://127.0.0.1:{free_port()}", "--deploy-id=d-1", f"--state-dir={tmp_path}"]
    assert main(argv) == 0
    assert main(argv) == 0
    assert read_counts(tmp_path / METRICS_FILE) == {"failed": 2, "sent": 0}
    text = (tmp_path / METRICS_FILE).read_text()
    assert "# TYPE edge_canary_notifications_total counter" in text
    assert 'edge_canary_notifications_total{outcome="failed"} 2' in text
    assert "could not post the started event of deploy d-1" in capsys.readouterr().err


def test_no_url_posts_nothing_and_counts_nothing(tmp_path: Path) -> None:
    assert main(["promoted", "--url=", "--deploy-id=d-1", f"--state-dir={tmp_path}"]) == 0
    assert not (tmp_path / METRICS_FILE).exists()


def test_bad_arguments_are_exit_64(tmp_path: Path) -> None:
    assert main(["started", "--url=am:9093", "--deploy-id=d", f"--state-dir={tmp_path}"]) == 64
    with pytest.raises(SystemExit):
        main(["exploded", "--deploy-id=d", f"--state-dir={tmp_path}"])
