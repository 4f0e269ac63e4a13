"""What the watcher can be told: one Option per setting, and how a raw value becomes its type.

Each option has a flag (`--p95-threshold`), a config-file key (`p95_threshold`) and sometimes an
environment variable; watcher.config decides which source wins, watcher.settings checks the
result as a whole. A raw value that cannot be parsed raises ConfigError naming where it came from.
"""

from __future__ import annotations

import json
import math
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from watcher.promql import DEFAULT_BUCKETS, DEFAULT_COUNTS, DEFAULT_FRESHNESS, DEFAULT_P95, DEFAULT_REQUESTS
from watcher.settings import ConfigError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


@dataclass(frozen=True)
class Option:
    name: str  # field name; the flag is --name-with-dashes, the file key is name
    kind: str  # a key of _PARSERS: str, float, duration, int, argv, mapping, ...
    default: Any
    help: str
    env: str | None = None
    choices: tuple[str, ...] = ()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def parse(self, raw: object, where: str) -> Any:
        """`raw` (a flag, env or file value) as this option's type; `where` names its source."""
        value = _PARSERS[self.kind](raw, where)
        if self.choices and value not in self.choices:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(self.choices)}")
        return value


OPTIONS: tuple[Option, ...] = (
    Option("prom_url", "str", None, "Prometheus base URL; user:password@ is allowed", "PROM_URL"),
    Option("prom_token", "secret", None, "bearer token (prefer the env var)", "PROM_TOKEN"),
    Option("prom_user", "str", None, "basic-auth user", "PROM_USER"),
    Option("prom_password", "secret", None, "basic-auth password (prefer the env var)",
           "PROM_PASSWORD"),  # fmt: skip
    Option("canary_selector", "selector", None, 'PromQL label selector, e.g. node="edge-2"'),
    Option("control_selector", "selector", None, 'PromQL label selector, e.g. node!="edge-2"'),
    Option("canary_node", "str", None,
           "inventory host of the canary: the ansible revert's --limit, EDGE_CANARY_NODE for the "
           "command revert"),  # fmt: skip
    Option("window", "duration", 300.0, "how long to watch (seconds, or 30s/5m)", "SLI_WINDOW"),
    Option("interval", "duration", 15.0, "time between probes", "SLI_PROBE_INTERVAL"),
    Option("scrape_interval", "duration", 15.0,
           "Prometheus' scrape interval for these metrics (bounds the range)"),  # fmt: skip
    Option("range", "duration", None,
           "PromQL range of a probe; default max(interval, 4 x scrape interval), "
           "at least 2 x scrape interval"),  # fmt: skip
    Option("p95_threshold", "float", 0.5, "absolute p95 limit, seconds", "PROM_P95_THRESHOLD_S"),
    Option("err_threshold", "float", 0.005, "absolute 5xx ratio limit (0.005 = 0.5%)",
           "PROM_ERR_RATE_THRESHOLD"),  # fmt: skip
    Option("err_ratio", "float", 2.0,
           "canary 5xx share tolerated as a multiple of control's (worse beyond it is red)"),  # fmt: skip
    Option("lat_tolerance", "float", 0.05,
           "canary share slower than control's p95 bucket tolerated above control's share"),  # fmt: skip
    Option("alpha", "float", 0.01,
           "false-revert budget: the share of healthy canaries' windows allowed to revert"),  # fmt: skip
    Option("sliding", "duration", 300.0,
           "span of the short sliding check, so a fault starting late is not diluted"),  # fmt: skip
    Option("min_requests", "int", 20, "canary requests since it started before anything is judged"),
    Option("errors_consecutive", "int", 1, "consecutive error-red probes that revert"),
    Option("latency_consecutive", "int", 2, "consecutive latency-red probes that revert"),
    Option("max_staleness", "duration", None,
           "how long without fresh canary data before the blind policy (default 3 x interval, "
           "minimum 2 x interval)"),  # fmt: skip
    Option("blind_probes", "int", 3, "consecutive blind probes that trigger the blind policy"),
    Option("query_retries", "int", 1, "retries of a failed query within the probe"),
    Option("blind_policy", "choice", "revert", "what to do once blind for longer",
           choices=("revert", "hold")),  # fmt: skip
    Option("promote_fraction", "float", 0.8, "conclusive green share of probes needed to promote"),
    Option("revert_action", "choice", "ansible", "how to revert (none = shadow mode)",
           choices=("ansible", "command", "none")),  # fmt: skip
    Option("revert_command", "argv", None,
           "argv of the command revert (a shell-quoted string, or a list in the config "
           "file)"),  # fmt: skip
    Option("revert_timeout", "duration", 600.0, "time limit of the revert action"),
    Option("revert_extravars", "mapping", None,
           "extra vars for the rollback playbook (a JSON object, or a mapping in the config "
           "file)"),  # fmt: skip
    Option("inventory", "str", None, "inventory for the ansible revert (default: ansible.cfg's)"),
    Option("playbook", "str", None, "rollback playbook (default: <repo>/playbooks/rollback.yml)"),
    Option("decision_log", "str", None, "JSON-lines decision log to append to"),
    Option("verdict_file", "str", None, "where to write the final verdict JSON (atomically)"),
    Option("metrics_port", "int", 0, "port for the watcher's own /metrics (0 = off)"),
    Option("metrics_addr", "str", "127.0.0.1", "address the self-metrics listen on"),
    Option("query_timeout", "duration", 5.0, "time limit of one Prometheus query"),
    Option("wait_for_traffic", "duration", 0.0,
           "wait up to this long for the canary's first requests before the window starts (0 = start at "
           "once); lets the watcher start before the canary is put in rotation"),  # fmt: skip
    Option("query_requests", "template", DEFAULT_REQUESTS,
           "template: requests by code in ${range} for ${selector}"),  # fmt: skip
    Option("query_p95", "template", DEFAULT_P95, "template: p95 latency in seconds"),
    Option("query_freshness", "template", DEFAULT_FRESHNESS,
           "template: timestamp of the newest sample"),  # fmt: skip
    Option("query_counts", "template", DEFAULT_COUNTS,
           "template: raw request counters by series, each with a `code` label (what is judged)"),  # fmt: skip
    Option("query_buckets", "template", DEFAULT_BUCKETS,
           "template: raw latency bucket counters by series, each with an `le` label"),  # fmt: skip
    Option("notify", "mapping", None,
           "deploy events to Alertmanager (watcher.notify): url, timeout, runbook_base_url, deploy_id, "
           "release, record (a JSON object, or a mapping in the config file)"),  # fmt: skip
    Option("ready_file", "str", None,
           "file the deploy writes (the time) as it puts the canary back in rotation: the window "
           "starts at the canary's first requests after that time, nothing before it is counted"),  # fmt: skip
    Option("drain", "mapping", None,
           "fast path on red: drain the canary on these load balancers' admin sockets before the revert "
           "({targets: [{lb, socket, backend, server}], socket_timeout, deadline}; see watcher.drain)"),  # fmt: skip
    Option("approval", "mapping", None,
           "after a promote, wait for make approve / make abort, judging on: {run_dir, timeout, on_timeout "
           "(abort|approve), ask, remind} (see watcher.awaiting)"),  # fmt: skip
)
BY_NAME = {o.name: o for o in OPTIONS}


# --- parsing raw values -------------------------------------------------------------------


def parse_duration(raw: object, where: str) -> float:
    if isinstance(raw, bool):
        raise ConfigError(f"{where}: expected a duration in seconds, got {raw!r}")
    if isinstance(raw, int | float):
        value = float(raw)
    else:
        match = _DURATION.match(str(raw))
        if not match:
            raise ConfigError(
                f"{where}: {raw!r} is not a duration; use seconds (30, 1.5) or 500ms, 30s, 5m, 1h"
            )
        value = float(match.group(1)) * _UNITS[match.group(2)]
    if not math.isfinite(value):
        raise ConfigError(f"{where}: {raw!r} is not a finite duration")
    return value


def _parse_float(raw: object, where: str) -> float:
    try:
        if isinstance(raw, bool):
            raise ValueError
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise ConfigError(f"{where}: expected a finite number, got {raw!r}")
    return value


def _parse_int(raw: object, where: str) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and re.fullmatch(r"\s*-?\d+\s*", raw):
        return int(raw)
    raise ConfigError(f"{where}: expected a whole number, got {raw!r}")


def _parse_str(raw: object, where: str) -> str:
    if isinstance(raw, str | int | float) and not isinstance(raw, bool):
        return str(raw)
    raise ConfigError(f"{where}: expected a string, got {type(raw).__name__}")


def _parse_argv(raw: object, where: str) -> tuple[str, ...]:
    if isinstance(raw, list | tuple):
        argv = tuple(_parse_str(a, where) for a in raw)
    else:
        try:
            argv = tuple(shlex.split(_parse_str(raw, where)))
        except ValueError as exc:
            raise ConfigError(f"{where}: cannot split {raw!r} into arguments ({exc})") from None
    if not argv:
        raise ConfigError(f"{where}: the command is empty")
    return argv


def _parse_mapping(raw: object, where: str) -> dict[str, Any]:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise ConfigError(f"{where}: expected a JSON object like {{\"key\": 1}}") from None
    if not isinstance(raw, dict) or not all(isinstance(k, str) for k in raw):
        raise ConfigError(f"{where}: expected a mapping of names to values")
    return dict(raw)


_PARSERS: dict[str, Callable[[object, str], Any]] = {
    "str": _parse_str,
    "secret": _parse_str,
    "selector": _parse_str,
    "template": _parse_str,
    "choice": _parse_str,
    "float": _parse_float,
    "duration": parse_duration,
    "int": _parse_int,
    "argv": _parse_argv,
    "mapping": _parse_mapping,
}
