"""edge-canary loadgen's per-request JSON lines, read back: one parser for the bench and the game-day checks."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

NOT_SENT = "not sent: concurrency limit"  # loadgen's marker for a request it never sent


@dataclass(frozen=True)
class Request:
    start: float
    latency_s: float | None
    status: int | None
    error: str | None
    version: str | None
    variant: str | None = None

    @property
    def failed(self) -> bool:
        return self.status is None or not 200 <= self.status < 400

    @property
    def sent(self) -> bool:
        return self.error != NOT_SENT

    @property
    def answered_at(self) -> float | None:
        return None if self.latency_s is None else self.start + self.latency_s


def parse_requests(lines: Iterable[str]) -> list[Request]:
    requests = []
    for line in lines:
        try:
            r = json.loads(line)
            latency = r.get("latency_s")
            requests.append(Request(float(r["start"]), None if latency is None else float(latency),
                                    r.get("status"), r.get("error"), r.get("version"), r.get("variant")))
        except (ValueError, KeyError, TypeError, AttributeError):
            continue  # a line cut short when the load generator was stopped
    return requests
