"""The watcher's settings: the Settings value and the checks that make one valid.

build_settings() takes each option's typed value (see watcher.options) and either returns
Settings or raises ConfigError with one line saying what is wrong and what to do; the CLI turns
that into exit code 64 before anything is watched or changed.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from watcher.approval_settings import ApprovalConfigError, ApprovalSettings
from watcher.judge import Rules, greens_to_promote
from watcher.notify import NotifyConfigError, NotifySettings
from watcher.prom import PromClient, split_userinfo
from watcher.promql import Queries, template_problem

_NODE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
# A deploy or rollout id in revert_extravars: ansible-runner hands them to the rollback play, whose
# extra vars Ansible templates, so nothing but letters, digits, '.', '_' and '-' (edge_canary's ids).
RUN_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
RUN_ID_KEYS = ("deploy_id", "edge_canary_lock_id")
REPO_ROOT = Path(__file__).resolve().parent.parent


class ConfigError(Exception):
    """A usage or configuration problem: one line, what is wrong and what to do."""


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
    query_retries: int = 1
    config_file: str | None = None
    secrets: tuple[str, ...] = field(default=(), repr=False)
    notify: NotifySettings = field(default_factory=NotifySettings)
    ready_file: str | None = None
    drain: Mapping[str, Any] = field(default_factory=dict)  # the fast path on red (watcher.drain)
    approval: ApprovalSettings | None = None  # after a promote, wait for approval judging on (watcher.awaiting)

    @property
    def planned_probes(self) -> int:
        return max(1, int(self.window // self.interval))

    def prom_client(self) -> PromClient:
        """A client of the watcher's Prometheus, with its credentials and query timeout."""
        return PromClient(self.prom_url, token=self.prom_token, user=self.prom_user, password=self.prom_password,
                          timeout=self.query_timeout)

    def public(self) -> dict[str, Any]:
        """The settings as logged: secrets replaced by "***"."""
        data = asdict(self)
        data.pop("secrets")
        for key in ("prom_token", "prom_password"):
            if data[key] is not None:
                data[key] = "***"
        return data


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


def build_settings(v: Mapping[str, Any], config_file: str | None) -> Settings:
    """Typed option values (name -> value) checked as a whole; the first problem raises."""
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
        range_seconds >= interval and range_seconds >= 4 * scrape,
        f"--range {range_seconds:g}s is shorter than the interval ({interval:g}s) or than 4 scrape "
        f"intervals ({4 * scrape:g}s): a probe would miss requests or read too few samples; widen it",
    )
    staleness = v["max_staleness"] if v["max_staleness"] is not None else 3 * interval
    _require(
        staleness >= 2 * interval,
        f"--max-staleness {staleness:g}s is under 2 probe intervals ({2 * interval:g}s): one failed "
        "query or one missed scrape would trip the blind policy; raise it",
    )

    rules = Rules(
        p95_threshold=v["p95_threshold"],
        err_threshold=v["err_threshold"],
        err_ratio=v["err_ratio"],
        lat_tolerance=v["lat_tolerance"],
        alpha=v["alpha"],
        planned_probes=max(1, int(window // interval)),
        sliding=v["sliding"],
        min_requests=v["min_requests"],
        errors_consecutive=v["errors_consecutive"],
        latency_consecutive=v["latency_consecutive"],
        max_staleness=staleness,
        blind_probes=v["blind_probes"],
        blind_policy=v["blind_policy"],
        promote_fraction=v["promote_fraction"],
    )
    _require(rules.p95_threshold > 0, "--p95-threshold must be more than 0 seconds")
    _require(0 < rules.err_threshold < 1, "--err-threshold is a ratio between 0 and 1 (0.005)")
    _require(rules.err_ratio >= 1, "--err-ratio must be at least 1 (2 = twice the errors allowed)")
    _require(0 <= rules.lat_tolerance < 1, "--lat-tolerance is a share between 0 and 1 (0.05)")
    _require(0 < rules.alpha < 0.5, "--alpha is a false-revert budget per window, e.g. 0.01")
    _require(rules.sliding >= interval, "--sliding must be at least one --interval")
    _require(rules.min_requests >= 1, "--min-requests must be at least 1")
    _require(rules.errors_consecutive >= 1, "--errors-consecutive must be at least 1")
    _require(rules.latency_consecutive >= 1, "--latency-consecutive must be at least 1")
    _require(rules.blind_probes >= 1, "--blind-probes must be at least 1")
    _require(v["query_retries"] >= 0, "--query-retries must be 0 or more")
    _require(0 < rules.promote_fraction <= 1, "--promote-fraction is a share between 0 and 1")

    queries = Queries(
        requests=v["query_requests"],
        p95=v["query_p95"],
        freshness=v["query_freshness"],
        counts=v["query_counts"],
        buckets=v["query_buckets"],
    )
    for name in ("query_requests", "query_p95", "query_freshness", "query_counts", "query_buckets"):
        problem = template_problem(v[name])
        _require(problem is None, f"{name} {problem}")
    for name in ("query_counts", "query_buckets"):
        _require(
            not re.search(r"\b(increase|rate|irate|sum|delta)\s*\(", v[name]),
            f"{name} must select raw counters (no increase(), rate() or sum()): the watcher "
            "differences them per series itself",
        )

    node = v["canary_node"]
    if node is not None:
        _require(
            bool(_NODE.match(node)) and node != "all",
            f"--canary-node {node!r} must be one inventory host name (no patterns, commas, 'all')",
        )
    extravars = v["revert_extravars"] or {}
    for key in RUN_ID_KEYS:
        value = extravars.get(key)
        _require(
            value is None or (isinstance(value, str) and RUN_ID.fullmatch(value) is not None),
            f"revert_extravars {key} {value!r} may hold only letters, digits, '.', '_' and '-' "
            "(the rollback play templates its extra vars); start the deploy with make, which builds such an id",
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

    try:
        notify = NotifySettings.from_mapping(v.get("notify"))
    except NotifyConfigError as exc:
        raise ConfigError(str(exc)) from None

    if v.get("drain"):
        from watcher.drain import DrainConfigError, parse_plan  # lazy: it imports the collection

        try:
            parse_plan(v["drain"])
        except DrainConfigError as exc:
            raise ConfigError(f"--drain: {exc}") from None
    try:
        approval = ApprovalSettings.from_mapping(v.get("approval"))
    except ApprovalConfigError as exc:
        raise ConfigError(str(exc)) from None
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
        revert_extravars=extravars,
        inventory=inventory,
        playbook=playbook,
        decision_log=v["decision_log"],
        verdict_file=v["verdict_file"],
        metrics_port=v["metrics_port"],
        metrics_addr=v["metrics_addr"],
        query_timeout=v["query_timeout"],
        wait_for_traffic=v["wait_for_traffic"],
        query_retries=v["query_retries"],
        config_file=config_file,
        secrets=secrets,
        notify=notify,
        ready_file=v["ready_file"] or None,
        drain=v.get("drain") or {},
        approval=approval,
    )


# --- what valid settings still get wrong ----------------------------------------------------


def settings_warnings(settings: Settings) -> list[str]:
    """What in valid settings weakens the watch, one line each: said at start and by --check-config."""
    found = []
    n, fraction = settings.planned_probes, settings.rules.promote_fraction
    if greens_to_promote(n, fraction) >= n:
        enough = next((m for m in range(n + 1, 10_000) if greens_to_promote(m, fraction) < m), None)
        fix = (f"give the window at least {enough} probes (SLI_WINDOW {enough * settings.interval:g} s or more at "
               f"this interval) or lower promote_fraction" if enough else "lower promote_fraction below 1")
        found.append(
            f"{n} probe{'s' if n > 1 else ''} ({settings.window:g} s window, one every {settings.interval:g} s) "
            f"with promote_fraction {fraction:g}: every probe must be green to promote, so one inconclusive "
            f"probe (a Prometheus hiccup, a quiet spell) holds a healthy canary; {fix}"
        )
    return found
