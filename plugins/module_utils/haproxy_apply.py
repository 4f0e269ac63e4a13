"""haproxy_server's action: bring one server to ready, drain or maint through the runtime API, with the
health check before ready and the waits after (sessions ended, server seen up)."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
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
    ServerState,
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
    ramp: float = 0.0  # seconds over which a server put back in rotation goes from a tenth to its full weight


RAMP_STEP_S = 0.5  # one weight step every half second


def ramp_weights(full: int, seconds: float) -> list[int]:
    """The weights a server returning to rotation is given, one every RAMP_STEP_S: from about a tenth of
    `full` up to `full`, linearly, over `seconds`. Empty when there is no ramp (no time, or a weight
    below 2 that has no step between 1 and itself)."""
    if seconds <= 0 or full < 2:
        return []
    steps = max(2, min(20, int(seconds / RAMP_STEP_S) + 1))
    weights = [max(1, round(full * (0.1 + 0.9 * k / (steps - 1)))) for k in range(steps)]
    return sorted(set(weights))


def full_weight(req: Request, before: ServerState) -> int:
    """The weight the ramp ends at: the asked one, else the configuration's (a ramp cut short earlier
    leaves a lower runtime weight behind), else the current one."""
    if req.weight is not None:
        return req.weight
    return before.initial_weight or before.weight


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
    # Put back in rotation: start at the ramp's first weight, raise it step by step once HAProxy sees it up.
    ramp = ramp_weights(full_weight(req, before), req.ramp) if req.state == "ready" and not serves(before) else []
    weight = ramp[0] if ramp else req.weight
    plan = plan_change(before, req.backend, req.state, weight)

    result: dict[str, Any] = {
        "changed": plan.changed,
        "socket": str(api),
        "backend": req.backend,
        "server": req.server,
        "state": req.state,
        "haproxy_version": version,
        "commands": list(plan.commands),
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
            weight is not None and after.weight != weight
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
    if ramp and not check_mode:
        after = raise_weight(api, req, ramp, result)
    elif ramp:
        after = replace(after, weight=ramp[-1])
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


def raise_weight(api: RuntimeApi, req: Request, ramp: list[int], result: dict[str, Any]) -> ServerState:
    """The ramp after ready: one `set server ... weight` every RAMP_STEP_S up to the full weight."""
    target = f"{req.backend}/{req.server}"
    started = time.monotonic()
    for weight in ramp[1:]:
        time.sleep(RAMP_STEP_S)
        command = f"set server {target} weight {weight}"
        check_set_response(command, api.run(command), str(api))
        result["commands"].append(command)
    result["ramp"] = {"weights": ramp, "seconds": round(time.monotonic() - started, 3)}
    result["changed"] = True
    after = read_state(api, req.backend, req.server)
    if after.weight != ramp[-1]:
        raise HaproxyError(f"{target} on {api} has weight {after.weight} after its ramp to {ramp[-1]}; "
                           "something else changed it: check who else drives this load balancer")
    return after


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
