"""Watcher settings: flags > environment > --config FILE (JSON or YAML) > defaults.

Config-file keys are the long flag names with underscores (`p95_threshold`, `query_p95`, ...).
This module reads the three sources and picks each option's value from the strongest one; the
options themselves are in watcher.options, the Settings value and its checks in watcher.settings.
Anything wrong raises ConfigError with one line saying what is wrong and what to do; the CLI
turns it into exit code 64 before anything is watched or changed.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

import yaml

from watcher.options import BY_NAME, OPTIONS, Option, parse_duration
from watcher.settings import ConfigError, Settings, build_settings

__all__ = [
    "OPTIONS",
    "ConfigError",
    "Option",
    "Settings",
    "build_parser",
    "load_file",
    "load_settings",
    "parse_duration",
    "settings_from_args",
]

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


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{message} (see --help)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="edge-canary-watcher",
        description="Judge a canary from Prometheus for a window; revert it when red. "
        "Exit codes: 0 promote, 1 reverted, 2 hold, 3 revert failed, 4 would revert (shadow mode), "
        "64 usage error.",
    )
    parser.add_argument("--config", metavar="FILE", help="JSON or YAML file of settings")
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="check the settings, print what weakens the watch, and exit (0, or 64 with the problem): "
        "nothing is watched or changed",
    )
    parser.add_argument(
        "--check-traffic",
        action="store_true",
        help="with --check-config: also read the canary's recent traffic from Prometheus and warn when the "
        "window cannot promote at that rate (too few requests for enough probes to count)",
    )
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
        if name not in BY_NAME:
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
        values[opt.name] = opt.parse(raw, where)
    return values


def load_settings(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Parse the command line, environment and config file into validated Settings."""
    return settings_from_args(build_parser().parse_args(argv), environ)


def settings_from_args(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Settings:
    """Parsed arguments (build_parser), the environment and their config file into validated Settings."""
    env = os.environ if environ is None else environ
    path = args.config
    file_values = load_file(path) if path else {}
    return build_settings(_collect(args, env, file_values, path or ""), path)
