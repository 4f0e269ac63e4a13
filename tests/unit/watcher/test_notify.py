"""Deploy events to Alertmanager's v2 API: the alert's shape, and that a notifier never blocks or
raises (unreachable, hanging, refusing), counting and logging each failure."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.helpers.procs import free_port
from watcher.config import ConfigError, load_settings
from watcher.notify import ALERTNAME, Event, Notifier, NotifyConfigError, NotifySettings, verdict_event

NOW = datetime(2026, 12, 1, 22, 0, tzinfo=UTC)
BASE = "https://wiki.example/RUNBOOK.md"


class Receiver(ThreadingHTTPServer):
    """A stand-in Alertmanager: records each POST body, answers `status` (or hangs)."""

    def __init__(self, status: int = 200, hang: float = 0.0) -> None:
        self.bodies: list[Any] = []
        self.status, self.hang = status, hang

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                server: Receiver = self.server  # type: ignore[assignment]
                server.bodies.append((self.path, json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
                time.sleep(server.hang)
                self.send_response(server.status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def notifier(url: str, timeout: float = 2.0) -> tuple[Notifier, list[str], list[str]]:
    lines: list[str] = []
    counts: list[str] = []
    settings = NotifySettings(url=url, timeout=timeout, runbook_base_url=BASE, deploy_id="d-1", release="v2")
    return Notifier(settings, lines.append, counts.append, clock=lambda: NOW), lines, counts


REVERTED = Event("reverted", "d-1", canary="edge-2", release="v2", verdict="reverted",
                 reason="errors: 5xx 20% over control", record="/state/runs/d-1/verdict.json")


def test_an_event_is_one_v2_alert_with_its_labels_annotations_and_runbook_link() -> None:
    alert = REVERTED.alert(BASE, NOW)
    assert alert["labels"] == {"alertname": ALERTNAME, "event": "reverted", "severity": "warning",
                               "deploy_id": "d-1", "canary": "edge-2", "release": "v2", "verdict": "reverted"}
    assert alert["annotations"]["reason"] == "errors: 5xx 20% over control"
    assert alert["annotations"]["record"] == "/state/runs/d-1/verdict.json"
    assert alert["annotations"]["runbook_url"] == f"{BASE}#notifications"
    assert "d-1" in alert["annotations"]["summary"] and "reverted" in alert["annotations"]["summary"]
    assert alert["startsAt"] < alert["endsAt"]
    failed = Event("revert_failed", "d-1").alert(BASE, NOW)
    assert failed["labels"]["severity"] == "page"
    assert failed["annotations"]["runbook_url"] == f"{BASE}#edgecanaryrevertfailed"
    assert "canary" not in failed["labels"], "empty labels are left out"


def test_a_verdict_becomes_its_event() -> None:
    settings = NotifySettings(url="http://am", deploy_id="d-1", release="v2", record="/r")
    event = verdict_event(settings, "promote", "green", "edge-2")
    assert event == Event("promoted", "d-1", canary="edge-2", release="v2", verdict="promote",
                          reason="green", record="/r")
    assert verdict_event(settings, "hold", "x", None) is not None
    assert verdict_event(settings, "nonsense", "x", None) is None


def test_the_notifier_posts_to_alertmanagers_v2_api(receiver: Receiver) -> None:
    notify, lines, counts = notifier(receiver.url)
    assert notify.send(REVERTED) is True
    path, body = receiver.bodies[0]
    assert path == "/api/v2/alerts" and body == [REVERTED.alert(BASE, NOW)]
    assert counts == ["sent"] and not lines


def test_unreachable_alertmanager_is_logged_counted_and_returns_at_once() -> None:
    notify, lines, counts = notifier(f"http://127.0.0.1:{free_port()}")
    started = time.monotonic()
    assert notify.send(REVERTED) is False
    assert time.monotonic() - started < 2
    assert counts == ["failed"]
    assert "could not post the reverted event of deploy d-1" in lines[0] and "going on" in lines[0]


def test_a_hanging_alertmanager_costs_at_most_the_timeout(receiver: Receiver) -> None:
    receiver.hang = 3.0
    notify, lines, counts = notifier(receiver.url, timeout=0.3)
    started = time.monotonic()
    assert notify.send(REVERTED) is False
    assert time.monotonic() - started < 2
    assert counts == ["failed"] and lines


def test_an_alertmanager_refusing_the_alert_is_a_failure(receiver: Receiver) -> None:
    receiver.status = 400
    notify, lines, counts = notifier(receiver.url)
    assert notify.send(REVERTED) is False
    assert counts == ["failed"] and "HTTP 400" in lines[0]


def test_without_a_url_nothing_is_posted_or_counted() -> None:
    notify, lines, counts = notifier("")
    assert not notify.enabled and notify.send(REVERTED) is False
    assert not lines and not counts


def test_notify_settings_are_checked() -> None:
    assert NotifySettings.from_mapping(None) == NotifySettings()
    assert NotifySettings.from_mapping({"url": "http://am:9093/", "timeout": "1.5"}).url == "http://am:9093"
    for bad in ({"url": "am:9093"}, {"timeout": 0}, {"timeout": "soon"}, {"colour": "red"}):
        with pytest.raises(NotifyConfigError):
            NotifySettings.from_mapping(bad)


def test_the_watcher_takes_notify_settings_and_refuses_bad_ones() -> None:
    base = ["--prom-url", "http://127.0.0.1:1", "--canary-selector", 'node="edge-2"',
            "--control-selector", 'node!="edge-2"', "--revert-action", "none"]
    settings = load_settings([*base, "--notify", '{"url": "http://127.0.0.1:9093", "deploy_id": "d-1"}'])
    assert settings.notify.url == "http://127.0.0.1:9093" and settings.notify.deploy_id == "d-1"
    assert load_settings(base).notify.url == ""
    with pytest.raises(ConfigError, match="notify.url"):
        load_settings([*base, "--notify", '{"url": "ftp://x"}'])
