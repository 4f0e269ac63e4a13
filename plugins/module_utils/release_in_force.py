"""After state=configured: wait until the running service shows a config key's new value in force, read
from a gauge on its metrics URL (one module run writes and verifies: no second module run per node)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ansible_collections.edge.canary.plugins.module_utils.http_health import get
from ansible_collections.edge.canary.plugins.module_utils.polling import poll_until

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


@dataclass(frozen=True)
class InForce:
    done: bool
    shown: str | None  # the gauge's last value as the service wrote it, None when not read
    waited: float
    error: str  # why the last reading did not show the value
    answered: bool = True  # the last reading got an HTTP answer (False: refused, timed out, unreachable)


def gauge_value(text: str, metric: str) -> str | None:
    """The value of an unlabelled gauge line `<metric> <value>` in a Prometheus text page."""
    found = re.search(rf"(?m)^{re.escape(metric)} (\S+)\s*$", text)
    return found.group(1) if found else None


def same_number(shown: str | None, wanted: str) -> bool:
    try:
        return shown is not None and float(shown) == float(wanted)
    except ValueError:
        return shown == wanted


def check_metric_name(metric: str) -> str | None:
    """None when `metric` is a valid Prometheus metric name, else what is wrong with it."""
    return None if _METRIC_NAME.fullmatch(metric) else f"in_force_metric {metric!r} is not a Prometheus metric name"


def wait_in_force(url: str, metric: str, wanted: str, timeout: float, interval: float = 0.2,
                  request_timeout: float = 5.0) -> InForce:
    """GET `url` until its `metric` gauge shows `wanted`, for at most `timeout` seconds."""

    def read() -> tuple[str | None, str, bool]:
        status, body, error = get(url, request_timeout)
        if status != 200:
            return None, error or f"HTTP {status}", status != 0
        shown = gauge_value(body.decode("utf-8", "replace"), metric)
        return shown, "" if shown is not None else f"no {metric} line on {url}", True

    outcome = poll_until(read, lambda reading: same_number(reading[0], wanted), timeout, interval)
    shown, error, answered = outcome.last
    return InForce(outcome.done, shown, round(outcome.waited, 3), error or f"{metric} shows {shown}", answered)


def not_in_force_text(key: str, wanted: str, seen: InForce, url: str) -> str:
    """Why a written value is not shown in force, and what to do: a service that does not answer takes it when
    it starts; one that answers with another value does not read its config file."""
    written = f"{key}={wanted} is written but not in force after {seen.waited:g} s: "
    if not seen.answered:
        return (written + f"the service does not answer ({seen.error}, {url}); it takes the value when it "
                "starts: start it, then check with make status")
    return written + f"{seen.error} ({url}); check the service reads its config file"
