"""The fast path on red: take the canary out of rotation on every load balancer through its admin
socket, from this process, before the rollback play starts.

The same code and validation as the haproxy_server module (plugins/module_utils/haproxy_*), reached
as the collection edge.canary: through the repository's collections/ folder (a link back at the
repository) with Ansible's own collection loader when it is not importable already. No Ansible
process is started. Each load balancer is drained in parallel, a failure retried with a short
backoff until `deadline` and logged; the caller restores `.previous` through the rollback play
whatever happened here (it drains again, and waits for the sessions to end).

`python -m watcher.drain --config watcher.json` runs it on its own: the deploy's fail-closed revert.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
_UTILS = "ansible_collections.edge.canary.plugins.module_utils"


class DrainConfigError(ValueError):
    """The `drain` setting is malformed: one line naming what is wrong."""


def module_utils(name: str) -> ModuleType:
    """plugins/module_utils/<name> as Ansible imports it (the collection edge.canary)."""
    try:
        return importlib.import_module(f"{_UTILS}.{name}")
    except ImportError:
        from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder

        # The repository's collections/ link, else where Ansible installs collections (an execution
        # environment: the packages pip-installed, the collection ansible-galaxy-installed). Ansible's
        # configuration is read only in the second case: loading it costs every command ~0.15 s.
        bundled = REPO_ROOT / "collections"
        if bundled.is_dir():
            paths = [str(bundled)]
        else:
            from ansible import constants

            paths = list(constants.COLLECTIONS_PATHS)
        _AnsibleCollectionFinder(paths=paths)._install()
        return importlib.import_module(f"{_UTILS}.{name}")


@dataclass(frozen=True)
class Target:
    lb: str  # inventory name of the load balancer
    socket: str  # admin socket as the control host reaches it ('' = not reachable from here)
    backend: str
    server: str


@dataclass(frozen=True)
class Plan:
    targets: tuple[Target, ...]
    socket_timeout: float = 5.0
    deadline: float = 10.0  # seconds for every attempt on one load balancer
    pause: float = 0.2  # first backoff; doubles, at most 2 s


@dataclass(frozen=True)
class LbResult:
    lb: str
    ok: bool
    attempts: int
    detail: str
    seconds: float
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DrainOutcome:
    ok: bool  # every reachable load balancer drained
    detail: str
    seconds: float
    results: list[LbResult]

    def record(self) -> dict[str, Any]:
        return asdict(self)


def _positive(data: Mapping[str, Any], key: str, default: float) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise DrainConfigError(f"drain.{key} must be a number of seconds above 0, got {value!r}")
    return float(value)


def parse_plan(data: Mapping[str, Any] | None) -> Plan | None:
    """The `drain` setting as a Plan (None: no fast path); names checked as the module checks them."""
    if not data:
        return None
    state = module_utils("haproxy_state")
    # Imported now, at start: haproxy_apply pulls in ansible.module_utils.urls (about a second),
    # which must not delay the drain on red.
    module_utils("haproxy_api")
    module_utils("haproxy_apply")
    raw = data.get("targets")
    if not isinstance(raw, list) or not raw:
        raise DrainConfigError("drain.targets must be a non-empty list of {lb, socket, backend, server}")
    targets = []
    for item in raw:
        if not isinstance(item, dict) or not all(isinstance(item.get(k), str) for k in ("lb", "backend", "server")):
            raise DrainConfigError(f"drain target {item!r} needs the strings lb, backend, server (and socket)")
        socket = item.get("socket") or ""
        try:
            state.validate_name("backend", item["backend"])
            state.validate_name("server", item["server"])
            if socket:
                state.parse_socket_address(socket)
        except state.HaproxyError as exc:
            raise DrainConfigError(f"drain target {item['lb']}: {exc}") from None
        targets.append(Target(item["lb"], str(socket), item["backend"], item["server"]))
    return Plan(
        tuple(targets),
        _positive(data, "socket_timeout", 5.0),
        _positive(data, "deadline", 10.0),
        _positive(data, "pause", 0.2),
    )


def drain_one(
    target: Target,
    plan: Plan,
    log: Callable[[str], None],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> LbResult:
    """Drain on one load balancer (no wait for sessions: the rollback play waits), retried."""
    started = clock()
    if not target.socket:
        detail = f"{target.lb}: no admin socket reachable from the control host; the rollback play drains it"
        log(detail)
        return LbResult(target.lb, False, 0, detail, 0.0)
    state, api, apply = module_utils("haproxy_state"), module_utils("haproxy_api"), module_utils("haproxy_apply")
    runtime = api.RuntimeApi(state.parse_socket_address(target.socket), plan.socket_timeout)
    request = apply.Request(target.backend, target.server, "drain", None, False, plan.socket_timeout)
    errors: list[str] = []
    pause = plan.pause
    while True:
        try:
            result = apply.apply(runtime, request, False)
        except state.HaproxyError as exc:
            errors.append(str(exc))
            log(f"drain of {target.server} on {target.lb} failed (attempt {len(errors)}): {exc}")
            if clock() + pause - started >= plan.deadline:
                detail = f"{target.lb}: drain failed {len(errors)} time(s), last: {exc}"
                return LbResult(target.lb, False, len(errors), detail, round(clock() - started, 3), errors)
            sleep(pause)
            pause = min(pause * 2, 2.0)
            continue
        return LbResult(
            target.lb, True, len(errors) + 1, result["msg"], round(clock() - started, 3), errors
        )


def drain(plan: Plan, log: Callable[[str], None]) -> DrainOutcome:
    """Every load balancer at once; never raises for a load balancer's failure."""
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=min(16, len(plan.targets))) as pool:
        results = list(pool.map(lambda t: drain_one(t, plan, log), plan.targets))
    failed = [r.lb for r in results if not r.ok]
    seconds = round(time.monotonic() - started, 3)
    server = plan.targets[0].server
    detail = (
        f"{server} drained on {len(results)} load balancer(s) in {seconds:g}s"
        if not failed
        else f"{server} NOT drained on {', '.join(failed)} (the rollback play drains it again)"
    )
    return DrainOutcome(not failed, detail, seconds, results)


def main(argv: Sequence[str] | None = None) -> int:
    """Drain the canary named in a watcher config's `drain` setting: 0 drained, 1 not everywhere, 64 usage."""
    parser = argparse.ArgumentParser(prog="python -m watcher.drain", description=main.__doc__)
    parser.add_argument("--config", type=Path, required=True, help="the watcher's config (watcher.json)")
    args = parser.parse_args(argv)
    try:
        plan = parse_plan(json.loads(args.config.read_text()).get("drain"))
    except (OSError, ValueError, AttributeError) as exc:
        print(f"watcher.drain: {exc}", file=sys.stderr)
        return 64
    if plan is None:
        print("watcher.drain: no drain targets in the config: nothing to do")
        return 0
    outcome = drain(plan, lambda line: print(line, flush=True))
    print(json.dumps(outcome.record()))
    return 0 if outcome.ok else 1


if __name__ == "__main__":
    sys.exit(main())
