"""Watcher settings: flags > environment > --config FILE (JSON or YAML) > defaults.

Config-file keys are the long flag names with underscores (`p95_threshold`, `query_p95`, ...).
Anything wrong raises ConfigError with one line saying what is wrong and what to do; the CLI
turns it into exit code 64 before anything is watched or changed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shlex
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import yaml

from watcher.judge import Rules
from watcher.prom import split_userinfo
from watcher.promql import (
    DEFAULT_FRESHNESS,
    DEFAULT_P95,
    DEFAULT_REQUESTS,
    Queries,
    template_problem,
)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_NODE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
REPO_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(Exception):
    """A usage or configuration problem: one line, what is wrong and what to do."""


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
    Option("p95_ratio", "float", 1.5, "canary p95 allowed as a multiple of control's"),
    Option("p95_min_diff", "float", 0.05,
           "seconds above control's p95 the canary must also be to turn red"),  # fmt: skip
    Option("err_ratio", "float", 2.0, "canary 5xx ratio allowed as a multiple of control's"),
    Option("err_alpha", "float", 0.01,
           "significance level of the canary-vs-control error test"),  # fmt: skip
    Option("min_requests", "int", 20, "canary requests a probe needs to be conclusive"),
    Option("new_class_min_count", "int", 5,
           "count from which a 5xx code the control never serves is red"),  # fmt: skip
    Option("errors_consecutive", "int", 1, "consecutive error-red probes that revert"),
    Option("latency_consecutive", "int", 2, "consecutive latency-red probes that revert"),
    Option("max_staleness", "duration", 30.0,
           "how long the last fresh probe stands in while Prometheus is blind"),  # fmt: skip
    Option("blind_policy", "choice", "revert", "what to do when blind for longer",
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
)
_BY_NAME = {o.name: o for o in OPTIONS}
_METAVARS = {
    "duration": "SECONDS",
    "float": "NUMBER",
    "int": "N",
    "selector": "SELECTOR",
    "template": "PROMQL",
    "argv": "COMMAND",
    "mapping": "JSON",
    "secret": "SECRET",
}


@dataclass(frozen=True)
class Settings:
    prom_url: str  # without any user:password@
    prom_token: str | None
    prom_user: str | None
    prom_password: str | None
    canary_selector: str
    control_selector: str
    canary_node: str | None
    window: float
    interval: float
    scrape_interval: float
    range_seconds: float
    rules: Rules
    queries: Queries
    revert_action: str
    revert_command: tuple[str, ...] | None
    revert_timeout: float
    revert_extravars: Mapping[str, Any]
    inventory: str | None
    playbook: str
    decision_log: str | None
    verdict_file: str | None
    metrics_port: int
    metrics_addr: str
    query_timeout: float
    wait_for_traffic: float = 0.0
    config_file: str | None = None
    secrets: tuple[str, ...] = field(default=(), repr=False)

    @property
    def planned_probes(self) -> int:
        return max(1, int(self.window // self.interval))

    def public(self) -> dict[str, Any]:
        """The settings as logged: secrets replaced by "***"."""
        data = asdict(self)
        data.pop("secrets")
        for key in ("prom_token", "prom_password"):
            if data[key] is not None:
                data[key] = "***"
        return data


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


# --- sources ------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{message} (see --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="edge-canary-watcher",
        description="Judge a canary from Prometheus for a window; revert it when red. "
        "Exit codes: 0 promote, 1 reverted, 2 hold, 3 revert failed, 64 usage error.",
    )
    parser.add_argument("--config", metavar="FILE", help="JSON or YAML file of settings")
    for opt in OPTIONS:
        extra = f" [env {opt.env}]" if opt.env else ""
        default = f" (default {opt.default})" if opt.default not in (None, {}) else ""
        if opt.kind == "template":
            default = ""
        parser.add_argument(
            opt.flag,
            dest=opt.name,
            default=None,
            choices=opt.choices or None,
            metavar=None if opt.choices else _METAVARS.get(opt.kind, "VALUE"),
            help=f"{opt.help}{default}{extra}".replace("%", "%%"),
        )
    return parser


def load_file(path: str) -> dict[str, Any]:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)  # YAML is a superset of JSON
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "parse error"
        raise ConfigError(f"config file {path} is not valid YAML or JSON: {first}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of setting names to values")
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name not in _BY_NAME:
            raise ConfigError(
                f"config file {path}: unknown setting {key!r} (use the long flag names with "
                "underscores, e.g. p95_threshold)"
            )
        out[name] = value
    return out


def _collect(
    args: argparse.Namespace, environ: Mapping[str, str], file_values: Mapping[str, Any], path: str
) -> dict[str, Any]:
    """Each option's value from the strongest source that sets it, parsed and typed."""
    values: dict[str, Any] = {}
    for opt in OPTIONS:
        raw: object = None
        where = ""
        flag_value = getattr(args, opt.name)
        if flag_value is not None:
            raw, where = flag_value, opt.flag
        elif opt.env and environ.get(opt.env, "") != "":
            raw, where = environ[opt.env], opt.env
        elif file_values.get(opt.name) is not None:
            raw, where = file_values[opt.name], f"{path}: {opt.name}"
        if raw is None:
            values[opt.name] = opt.default
            continue
        value = _PARSERS[opt.kind](raw, where)
        if opt.choices and value not in opt.choices:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(opt.choices)}")
        values[opt.name] = value
    return values


# --- validation ---------------------------------------------------------------------------


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _check_selector(name: str, selector: str | None) -> str:
    flag = "--" + name.replace("_", "-")
    _require(bool(selector and selector.strip()), f"no {name.replace('_', ' ')}: pass {flag}")
    assert selector is not None
    _require(
        not any(c in selector for c in "{}\n"),
        f'{flag}: give only the label matchers, e.g. node="edge-2" (no braces or newlines)',
    )
    return selector.strip()


def _default_playbook() -> str:
    for root in (REPO_ROOT, Path.cwd()):
        candidate = root / "playbooks" / "rollback.yml"
        if candidate.exists():
            return str(candidate)
    return str(Path.cwd() / "playbooks" / "rollback.yml")


def _check_parent(path: str | None, flag: str) -> None:
    if path is not None:
        parent = Path(path).resolve().parent
        _require(parent.is_dir(), f"{flag}: directory {parent} does not exist; create it first")


def _settings(v: dict[str, Any], config_file: str | None) -> Settings:
    _require(bool(v["prom_url"]), "no Prometheus URL: pass --prom-url or set PROM_URL")
    url, url_user, url_password = split_userinfo(v["prom_url"].strip())
    _require(
        re.match(r"^https?://[^/\s]+", url) is not None,
        "--prom-url must look like http://host:9090 (http or https)",
    )
    user = v["prom_user"] if v["prom_user"] is not None else url_user
    password = v["prom_password"] if v["prom_password"] is not None else url_password
    token = v["prom_token"] or None
    _require(
        not (token and (user or password)),
        "give either a bearer token (PROM_TOKEN) or basic auth (PROM_USER/PROM_PASSWORD or "
        "user:password@ in the URL), not both",
    )
    _require(
        password is None or bool(user),
        "a Prometheus password was given without a user: set --prom-user or PROM_USER",
    )
    _require(
        user is None or password is not None,
        f"basic-auth user {user!r} has no password: set PROM_PASSWORD",
    )

    canary = _check_selector("canary_selector", v["canary_selector"])
    control = _check_selector("control_selector", v["control_selector"])
    _require(canary != control, "canary and control selectors are the same: nothing to compare")

    interval, window, scrape = v["interval"], v["window"], v["scrape_interval"]
    _require(interval > 0, "--interval must be more than 0 seconds")
    _require(scrape > 0, "--scrape-interval must be more than 0 seconds")
    _require(
        window >= interval,
        f"--window ({window:g}s) is shorter than one --interval ({interval:g}s): widen the window",
    )
    range_seconds = v["range"] if v["range"] is not None else max(interval, 4 * scrape)
    _require(
        range_seconds >= 2 * scrape,
        f"--range {range_seconds:g}s is under 2 scrape intervals ({2 * scrape:g}s): rate() needs "
        "two samples; widen the range",
    )

    rules = Rules(
        p95_threshold=v["p95_threshold"],
        err_threshold=v["err_threshold"],
        p95_ratio=v["p95_ratio"],
        p95_min_diff=v["p95_min_diff"],
        err_ratio=v["err_ratio"],
        err_alpha=v["err_alpha"],
        min_requests=v["min_requests"],
        new_class_min_count=v["new_class_min_count"],
        errors_consecutive=v["errors_consecutive"],
        latency_consecutive=v["latency_consecutive"],
        max_staleness=v["max_staleness"],
        blind_policy=v["blind_policy"],
        promote_fraction=v["promote_fraction"],
    )
    _require(rules.p95_threshold > 0, "--p95-threshold must be more than 0 seconds")
    _require(0 < rules.err_threshold < 1, "--err-threshold is a ratio between 0 and 1 (0.005)")
    _require(rules.p95_ratio >= 1, "--p95-ratio must be at least 1 (1.5 = 50% slower allowed)")
    _require(rules.err_ratio >= 1, "--err-ratio must be at least 1 (2 = twice the errors allowed)")
    _require(rules.p95_min_diff >= 0, "--p95-min-diff must be 0 or more seconds")
    _require(0 < rules.err_alpha < 0.5, "--err-alpha is a significance level, e.g. 0.01")
    _require(rules.min_requests >= 1, "--min-requests must be at least 1")
    _require(rules.new_class_min_count >= 1, "--new-class-min-count must be at least 1")
    _require(rules.errors_consecutive >= 1, "--errors-consecutive must be at least 1")
    _require(rules.latency_consecutive >= 1, "--latency-consecutive must be at least 1")
    _require(rules.max_staleness > 0, "--max-staleness must be more than 0 seconds")
    _require(0 < rules.promote_fraction <= 1, "--promote-fraction is a share between 0 and 1")

    queries = Queries(
        requests=v["query_requests"], p95=v["query_p95"], freshness=v["query_freshness"]
    )
    for name in ("query_requests", "query_p95", "query_freshness"):
        problem = template_problem(v[name])
        _require(problem is None, f"{name} {problem}")

    node = v["canary_node"]
    if node is not None:
        _require(
            bool(_NODE.match(node)) and node != "all",
            f"--canary-node {node!r} must be one inventory host name (no patterns, commas, 'all')",
        )
    action = v["revert_action"]
    playbook = v["playbook"] or _default_playbook()
    inventory = v["inventory"]
    argv = v["revert_command"]
    if action == "ansible":
        _require(
            node is not None,
            "the ansible revert needs --canary-node: it limits the rollback playbook to that node",
        )
        _require(
            Path(playbook).is_file(),
            f"rollback playbook {playbook} not found: pass --playbook",
        )
        _require(
            inventory is None or Path(inventory).exists(),
            f"inventory {inventory} not found: pass --inventory",
        )
    if action == "command":
        _require(argv is not None, "--revert-action command needs --revert-command")
        exe = argv[0]
        found = shutil.which(exe) if os.sep not in exe else os.access(exe, os.X_OK)
        _require(bool(found), f"revert command {exe!r} is not an executable (or not on PATH)")

    _require(0 <= v["metrics_port"] <= 65535, "--metrics-port must be 0 (off) to 65535")
    _require(v["query_timeout"] > 0, "--query-timeout must be more than 0 seconds")
    _require(v["wait_for_traffic"] >= 0, "--wait-for-traffic must be 0 or more seconds")
    _require(v["revert_timeout"] > 0, "--revert-timeout must be more than 0 seconds")
    _check_parent(v["decision_log"], "--decision-log")
    _check_parent(v["verdict_file"], "--verdict-file")

    secrets = tuple(s for s in (token, password) if s)
    return Settings(
        prom_url=url.rstrip("/"),
        prom_token=token,
        prom_user=user,
        prom_password=password,
        canary_selector=canary,
        control_selector=control,
        canary_node=node,
        window=window,
        interval=interval,
        scrape_interval=scrape,
        range_seconds=range_seconds,
        rules=rules,
        queries=queries,
        revert_action=action,
        revert_command=argv,
        revert_timeout=v["revert_timeout"],
        revert_extravars=v["revert_extravars"] or {},
        inventory=inventory,
        playbook=playbook,
        decision_log=v["decision_log"],
        verdict_file=v["verdict_file"],
        metrics_port=v["metrics_port"],
        metrics_addr=v["metrics_addr"],
        query_timeout=v["query_timeout"],
        wait_for_traffic=v["wait_for_traffic"],
        config_file=config_file,
        secrets=secrets,
    )


def load_settings(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Parse the command line, environment and config file into validated Settings."""
    args = build_parser().parse_args(argv)
    env = os.environ if environ is None else environ
    path = args.config
    file_values = load_file(path) if path else {}
    return _settings(_collect(args, env, file_values, path or ""), path)
