"""Deploy events to Alertmanager: one module for the watcher and the deploy (`edge-canary notify`).

An event (deploy started, canary promoted, reverted, held, revert failed, rollback done, awaiting
approval, approved, aborted, wave done) is posted
to Alertmanager's v2 API (POST /api/v2/alerts) as one alert named EdgeCanaryDeployEvent, labelled
with the deploy id, the event, the canary, the release and the verdict, annotated with the reason,
the record path and a runbook link. Routing (Slack, webhooks, e-mail) is Alertmanager's own
configuration (docs/alertmanager/).

Never blocking: one attempt bounded by a short timeout; a failure is logged, counted and returned,
never raised. Posting the same event again is harmless: Alertmanager merges alerts with the same
labels.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

ALERTNAME = "EdgeCanaryDeployEvent"
# How long an event stays an active alert in Alertmanager (one notification, then it resolves).
EVENT_TTL = timedelta(hours=1)
DEFAULT_TIMEOUT = 2.0
# event -> severity; the runbook section each event points at.
EVENTS = {
    "started": "info",
    "promoted": "info",
    "reverted": "warning",
    "held": "warning",
    "would_revert": "warning",
    "revert_failed": "page",
    "rollback_done": "info",
    "awaiting_approval": "warning",
    "approved": "info",
    "aborted": "warning",
    "wave_done": "info",
}
RUNBOOK_ANCHORS = {"revert_failed": "edgecanaryrevertfailed", "awaiting_approval": "approve-abort-resume",
                   "approved": "approve-abort-resume", "aborted": "approve-abort-resume"}
DEFAULT_ANCHOR = "notifications"
# The watcher's verdict -> the event it announces.
VERDICT_EVENTS = {
    "promote": "promoted",
    "reverted": "reverted",
    "hold": "held",
    "revert_failed": "revert_failed",
    "would_revert": "would_revert",
}
SUMMARIES = {
    "started": "Deploy {deploy_id} started: canary {canary} on {release}",
    "promoted": "Deploy {deploy_id}: canary {canary} on {release} promoted",
    "reverted": "Deploy {deploy_id}: canary {canary} on {release} reverted",
    "held": "Deploy {deploy_id}: canary {canary} on {release} held, decide",
    "would_revert": "Deploy {deploy_id}: canary {canary} on {release} would be reverted (shadow)",
    "revert_failed": "Deploy {deploy_id}: revert of canary {canary} on {release} FAILED",
    "rollback_done": "Deploy {deploy_id}: rollback of {canary} done",
    "awaiting_approval": "Deploy {deploy_id}: canary {canary} on {release} promoted, awaiting approval",
    "approved": "Deploy {deploy_id}: {release} approved, the peers roll",
    "aborted": "Deploy {deploy_id}: aborted while awaiting approval, canary {canary} reverted",
    "wave_done": "Deploy {deploy_id}: a wave of peers is on {release}",
}


class NotifyConfigError(ValueError):
    """A notification setting that cannot be used."""


@dataclass(frozen=True)
class Event:
    event: str
    deploy_id: str
    canary: str = ""
    release: str = ""
    verdict: str = ""
    reason: str = ""
    record: str = ""
    wave: str = ""  # wave_done: which wave (its own label: one alert per wave, not merged)

    def alert(self, runbook_base_url: str, now: datetime) -> dict[str, Any]:
        """The Alertmanager v2 alert for this event (empty labels and annotations left out)."""
        labels = {"alertname": ALERTNAME, "event": self.event, "severity": EVENTS[self.event],
                  "deploy_id": self.deploy_id, "canary": self.canary, "release": self.release,
                  "verdict": self.verdict, "wave": self.wave}
        fields = {"deploy_id": self.deploy_id, "canary": self.canary or "?", "release": self.release or "?"}
        annotations = {"summary": SUMMARIES[self.event].format(**fields), "reason": self.reason,
                       "record": self.record,
                       "runbook_url": runbook_link(runbook_base_url, self.event)}
        return {
            "labels": {k: v for k, v in labels.items() if v},
            "annotations": {k: v for k, v in annotations.items() if v},
            "startsAt": now.isoformat(),
            "endsAt": (now + EVENT_TTL).isoformat(),
        }


def runbook_link(base: str, event: str) -> str:
    return f"{base}#{RUNBOOK_ANCHORS.get(event, DEFAULT_ANCHOR)}" if base else ""


@dataclass(frozen=True)
class NotifySettings:
    url: str = ""  # Alertmanager base URL; "" = notifications off
    timeout: float = DEFAULT_TIMEOUT
    runbook_base_url: str = ""
    deploy_id: str = ""
    release: str = ""
    record: str = ""

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any] | None) -> NotifySettings:
        raw = dict(raw or {})
        unknown = set(raw) - set(cls.__dataclass_fields__)
        if unknown:
            raise NotifyConfigError(f"notify: unknown keys {sorted(unknown)}")
        try:
            timeout = float(raw.pop("timeout", DEFAULT_TIMEOUT))
        except (TypeError, ValueError):
            raise NotifyConfigError("notify.timeout: expected seconds") from None
        if not 0 < timeout <= 30:
            raise NotifyConfigError("notify.timeout: must be more than 0 and at most 30 seconds")
        values = {k: str(v or "") for k, v in raw.items()}
        url = values.get("url", "")
        if url and not url.startswith(("http://", "https://")):
            raise NotifyConfigError(f"notify.url: {url!r} is not an http(s) URL")
        return cls(timeout=timeout, **{**values, "url": url.rstrip("/")})


def verdict_event(settings: NotifySettings, verdict: str, reason: str, canary: str | None) -> Event | None:
    """The event a watcher's final verdict announces (None for a verdict that announces nothing)."""
    event = VERDICT_EVENTS.get(verdict)
    if event is None:
        return None
    return Event(event=event, deploy_id=settings.deploy_id, canary=canary or "", release=settings.release,
                 verdict=verdict, reason=reason, record=settings.record)


class Notifier:
    """Posts events; `count` gets "sent", "failed" (or nothing when off), `log` one line on failure."""

    def __init__(self, settings: NotifySettings, log: Callable[[str], None],
                 count: Callable[[str], None] = lambda outcome: None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.settings = settings
        self._log = log
        self._count = count
        self._clock = clock

    @property
    def enabled(self) -> bool:
        return bool(self.settings.url)

    def send(self, event: Event) -> bool:
        """Post one event; True when Alertmanager took it. Never raises, never waits past the timeout."""
        if not self.enabled:
            return False
        body = json.dumps([event.alert(self.settings.runbook_base_url, self._clock())]).encode()
        request = urllib.request.Request(
            f"{self.settings.url}/api/v2/alerts", data=body, method="POST",
            headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.settings.timeout) as resp:
                resp.read()
        except (OSError, ValueError) as exc:  # URLError, HTTPError, timeouts are OSErrors
            detail = f"HTTP {exc.code}" if isinstance(exc, urllib.error.HTTPError) else str(
                getattr(exc, "reason", exc))
            self._log(f"notify: could not post the {event.event} event of deploy {event.deploy_id} "
                      f"to Alertmanager at {self.settings.url}: {detail}; going on")
            self._count("failed")
            return False
        self._count("sent")
        return True
