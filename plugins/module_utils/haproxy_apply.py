"""haproxy_server's action: bring one server to ready, drain or maint through the runtime API, with the
health check before ready and the waits after (sessions ended, server seen up)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ansible_collections.edge.canary.plugins.module_utils.haproxy_api import RuntimeApi, read_counts, read_state
from ansible_collections.edge.canary.plugins.module_utils.haproxy_plan import (
    plan_change,
    ready_blocker,
    serves,
    wait_until_idle,
)
from ansible_collections.edge.canary.plugins.module_utils.haproxy_state import (
    HaproxyError,
    WaitTimeout,
    admin_level_error,
    check_set_response,
    describe_open_sessions,
    parse_cli_level,
    parse_version,
    sessions_on_server,
    validate_timeout,
)
from ansible_collections.edge.canary.plugins.module_utils.http_health import health_problem
from ansible_collections.edge.canary.plugins.module_utils.polling import poll_until


@dataclass(frozen=True)
class HealthCheck:
    url: str
    timeout: float = 5.0
    retries: int = 2
    delay: float = 2.0


def check_health(check: HealthCheck, server: str, where: str) -> None:
    """Up to 1 + retries GETs; raise naming the URL and the last answer when none is a 200."""
    why: str | None = None
    for attempt in range(check.retries + 1):
        if attempt:
            time.sleep(check.delay)
        why = health_problem(check.url, check.timeout)
        if why is None:
            return
    raise HaproxyError(
        f"{server} failed its health check at {check.url} from {where} ({why}); "
        "it was not put back in rotation (nothing was sent to HAProxy)"
    )


@dataclass(frozen=True)
class Request:
    backend: str
    server: str
    state: str
    weight: int | None
    wait: bool
    wait_timeout: float
    health: HealthCheck | None = None
    wait_up: bool = False
    wait_up_timeout: float = 30.0


def apply(api: RuntimeApi, req: Request, check_mode: bool) -> dict[str, Any]:
    """Bring the server to the wanted state; raise HaproxyError (with partial results)."""
    level = parse_cli_level(api.run("show cli level"))
    if level is not None and level != "admin":
        raise admin_level_error(str(api), level)
    version = parse_version(api.run("show info"))
    before = read_state(api, req.backend, req.server)
    if req.state == "ready":
        blocker = ready_blocker(before)
        if blocker:
            raise HaproxyError(
                f"{req.backend}/{req.server} on {api} cannot be made ready: {blocker}"
            )
        if req.health is not None:
            check_health(req.health, req.server, str(api))
    plan = plan_change(before, req.backend, req.state, req.weight)

    result: dict[str, Any] = {
        "changed": plan.changed,
        "socket": str(api),
        "backend": req.backend,
        "server": req.server,
        "state": req.state,
        "haproxy_version": version,
        "commands": plan.commands,
        "before": before.as_result(),
        "waited": 0.0,
        "waited_up": 0.0,
    }
    if check_mode:
        after = plan.predicted
    else:
        for command in plan.commands:
            check_set_response(command, api.run(command), str(api))
        after = read_state(api, req.backend, req.server) if plan.changed else before
        if after.forced_admin_state != req.state or (
            req.weight is not None and after.weight != req.weight
        ):
            raise HaproxyError(
                f"{req.backend}/{req.server} on {api} is {after.forced_admin_state} "
                f"(weight {after.weight}) after {plan.commands}; expected {req.state}"
            )
    if req.wait_up and req.state == "ready" and not check_mode:
        seen = poll_until(
            lambda: read_state(api, req.backend, req.server), serves, req.wait_up_timeout
        )
        after = seen.last
        result["waited_up"] = round(seen.waited, 3)
        if not seen.done:
            raise HaproxyError(
                f"{req.backend}/{req.server} on {api} is still {after.operational_state} "
                f"(admin state {after.admin_state}) {req.wait_up_timeout:g} s after ready: HAProxy's "
                "own health check does not pass; check the node and the backend's check settings"
            )
    result["after"] = after.as_result()

    counts = read_counts(api, req.backend, req.server)
    if req.wait and req.state in ("drain", "maint") and not check_mode:
        outcome = wait_until_idle(
            lambda: read_counts(api, req.backend, req.server), req.wait_timeout
        )
        counts = outcome.last
        result["waited"] = round(outcome.waited, 3)
        if not outcome.done:
            open_sessions = sessions_on_server(api.run("show sess"), req.backend, req.server)
            result.update(sessions=counts.sessions, queue=counts.queue)
            raise WaitTimeout(
                f"{req.backend}/{req.server} on {api} still has {counts.sessions} session(s) "
                f"and {counts.queue} queued after {req.wait_timeout:g} s of {req.state}: "
                f"{describe_open_sessions(open_sessions)}; raise wait_timeout or close them",
                result,
            )
    result["sessions"] = counts.sessions
    result["queue"] = counts.queue
    result["msg"] = (
        f"{req.backend}/{req.server} on {api}: {before.forced_admin_state} -> "
        f"{after.forced_admin_state}{' (check mode)' if check_mode and plan.changed else ''}, "
        f"{counts.sessions} session(s), {counts.queue} queued"
    )
    return result


def health_request(p: dict[str, Any]) -> HealthCheck | None:
    if not p["health_url"]:
        return None
    if p["health_retries"] < 0:
        raise HaproxyError(f"invalid health_retries {p['health_retries']}: use 0 or more")
    return HealthCheck(
        p["health_url"],
        validate_timeout("health_timeout", p["health_timeout"]),
        p["health_retries"],
        max(0.0, p["health_delay"]),
    )


def diff_text(state: dict[str, Any]) -> str:
    keys = ("admin_state", "operational_state", "weight")
    return "".join(f"{key}: {state[key]}\n" for key in keys)
