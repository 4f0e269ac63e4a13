"""haproxy_server's action: bring one server to ready, drain or maint through the runtime API, with the
health check before ready and the waits after (sessions ended, server seen up)."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

from ansible_collections.edge.canary.plugins.module_utils.haproxy_api import RuntimeApi, read_counts, read_states
from ansible_collections.edge.canary.plugins.module_utils.haproxy_plan import (
    Plan,
    plan_change,
    ready_blocker,
    serves,
    wait_until_idle,
)
from ansible_collections.edge.canary.plugins.module_utils.haproxy_state import (
    HaproxyError,
    ServerState,
    SessionCounts,
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
    keep_maint: bool = False  # leave a server someone forced into maintenance as it is (ready and drain)


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
    """Bring one server to the wanted state; raise HaproxyError (with partial results)."""
    batch = apply_batch(api, [req], check_mode)
    result = {key: batch[key] for key in ("socket", "backend", "state", "haproxy_version", "waited", "waited_up")}
    result.update(batch["servers"][req.server], server=req.server)
    if batch["timed_out"]:
        raise WaitTimeout(batch["failed_servers"][req.server], {k: v for k, v in result.items() if k != "msg"})
    if req.server in batch["failed_servers"]:
        raise HaproxyError(batch["failed_servers"][req.server])
    return result


def apply_batch(api: RuntimeApi, reqs: list[Request], check_mode: bool) -> dict[str, Any]:
    """Bring several servers of one backend to one wanted state together: one read of the backend, every
    command sent, then one wait for all of them (seen up and weights ramped in step, or sessions ended).
    A server that cannot be made ready (it fails its health check, something it cannot clear holds it, or
    HAProxy does not see it up in time), or that keeps sessions past the wait, is named with the reason in
    `failed_servers` and the others go on. Raise HaproxyError for what concerns them all (the socket, the
    backend, an unknown server)."""
    backend, wanted, names = reqs[0].backend, reqs[0].state, [req.server for req in reqs]
    level = parse_cli_level(api.run("show cli level"))
    if level is not None and level != "admin":
        raise admin_level_error(str(api), level)
    version = parse_version(api.run("show info"))
    before = read_states(api, backend, names)
    kept = {req.server for req in reqs if kept_in_maint(req, before[req.server])}
    failed: dict[str, str] = {}
    if wanted == "ready":
        for req in reqs:
            if req.server not in kept:
                failed.update(readiness_problem(api, req, before[req.server]))
    going = [req for req in reqs if req.server not in failed and req.server not in kept]
    # Put back in rotation: start at the ramp's first weight, raise it step by step once HAProxy sees it up.
    ramps = {req.server: ramp_for(req, before[req.server]) for req in going}
    plans = {
        req.server: plan_change(
            before[req.server], backend, wanted, ramps[req.server][0] if ramps[req.server] else req.weight
        )
        for req in going
    }
    servers: dict[str, dict[str, Any]] = {
        name: {"changed": False, "commands": [], "before": before[name].as_result(), "kept_in_maint": name in kept}
        for name in names
    }
    for name, plan in plans.items():
        servers[name].update(changed=plan.changed, commands=list(plan.commands))
    if check_mode:
        after = {**before, **{name: plan.predicted for name, plan in plans.items()}}
    else:
        after = send_plans(api, backend, names, plans, before)
    result: dict[str, Any] = {
        "socket": str(api),
        "backend": backend,
        "state": wanted,
        "haproxy_version": version,
        "servers": servers,
        "failed_servers": failed,
        "timed_out": False,
        "waited": 0.0,
        "waited_up": 0.0,
    }
    up_wanted = [req for req in going if req.wait_up and wanted == "ready"]
    if up_wanted and not check_mode:
        after.update(wait_seen_up(api, up_wanted, result))
    ramping = {name: ramp for name, ramp in ramps.items() if ramp and name not in failed}
    if ramping and not check_mode:
        after.update(raise_weights(api, backend, ramping, servers))
    else:
        after.update({name: replace(after[name], weight=ramp[-1]) for name, ramp in ramping.items()})
    # drain and maint refuse no server, and wait is the same for all: either all of them are waited for or
    # none. A server kept in maintenance is waited for too: its node is about to be restarted.
    waiting = [req for req in reqs if req.wait and wanted in ("drain", "maint") and not check_mode]
    counts = wait_sessions_ended(api, waiting, result) if waiting else read_counts(api, backend, names)
    for name in names:
        servers[name].update(after=after[name].as_result(), sessions=counts[name].sessions, queue=counts[name].queue)
        servers[name]["msg"] = (
            f"{backend}/{name} on {api}: {before[name].forced_admin_state} -> {after[name].forced_admin_state}"
            f"{' (check mode)' if check_mode and servers[name]['changed'] else ''}"
            f"{' (kept: someone put it in maintenance)' if name in kept else ''}, "
            f"{counts[name].sessions} session(s), {counts[name].queue} queued"
        )
    result["changed"] = any(one["changed"] for one in servers.values())
    result["commands"] = [command for one in servers.values() for command in one["commands"]]
    result["msg"] = "; ".join(list(failed.values()) or [one["msg"] for one in servers.values()])
    return result


def kept_in_maint(req: Request, before: ServerState) -> bool:
    """keep_maint and the server was forced into maintenance (the CLI or the stats page): someone else put
    it there, and a ready or drain would take it out."""
    return req.keep_maint and req.state != "maint" and before.forced_admin_state == "maint"


def ramp_for(req: Request, before: ServerState) -> list[int]:
    """The weights of the server's ramp back into rotation; none unless it is being put back."""
    if req.state != "ready" or serves(before):
        return []
    return ramp_weights(full_weight(req, before), req.ramp)


def send_plans(
    api: RuntimeApi, backend: str, names: list[str], plans: dict[str, Plan], before: dict[str, ServerState]
) -> dict[str, ServerState]:
    """Send every planned command, then check in one read that each server is where it was sent."""
    for plan in plans.values():
        for command in plan.commands:
            check_set_response(command, api.run(command), str(api))
    if not any(plan.changed for plan in plans.values()):
        return dict(before)
    after = read_states(api, backend, names)
    for name, plan in plans.items():
        now, wanted = after[name], plan.predicted
        if now.forced_admin_state != wanted.forced_admin_state or now.weight != wanted.weight:
            raise HaproxyError(
                f"{backend}/{name} on {api} is {now.forced_admin_state} (weight {now.weight}) after "
                f"{plan.commands}; expected {wanted.forced_admin_state}"
            )
    return after


def wait_seen_up(api: RuntimeApi, reqs: list[Request], result: dict[str, Any]) -> dict[str, ServerState]:
    """Wait until HAProxy sees every server up and ready; name in failed_servers those it does not."""
    backend = reqs[0].backend
    seen = poll_until(
        lambda: read_states(api, backend, [req.server for req in reqs]),
        lambda states: all(serves(one) for one in states.values()),
        max(req.wait_up_timeout for req in reqs),
    )
    result["waited_up"] = round(seen.waited, 3)
    for req in reqs:
        now = seen.last[req.server]
        if not serves(now):
            result["failed_servers"][req.server] = (
                f"{backend}/{req.server} on {api} is still {now.operational_state} "
                f"(admin state {now.admin_state}) {req.wait_up_timeout:g} s after ready: HAProxy's "
                "own health check does not pass; check the node and the backend's check settings"
            )
    return dict(seen.last)


def wait_sessions_ended(api: RuntimeApi, reqs: list[Request], result: dict[str, Any]) -> dict[str, SessionCounts]:
    """Wait until no server has a session or a queue; name in failed_servers those that still do."""
    backend, names = reqs[0].backend, [req.server for req in reqs]
    outcome = wait_until_idle(lambda: read_counts(api, backend, names), max(req.wait_timeout for req in reqs))
    counts: dict[str, SessionCounts] = outcome.last
    result["waited"] = round(outcome.waited, 3)
    for req in reqs:
        if not counts[req.server].idle:
            open_sessions = sessions_on_server(api.run("show sess"), backend, req.server)
            result["timed_out"] = True
            result["failed_servers"][req.server] = (
                f"{backend}/{req.server} on {api} still has {counts[req.server].sessions} session(s) "
                f"and {counts[req.server].queue} queued after {req.wait_timeout:g} s of {req.state}: "
                f"{describe_open_sessions(open_sessions)}; raise wait_timeout or close them"
            )
    return counts


def readiness_problem(api: RuntimeApi, req: Request, before: ServerState) -> dict[str, str]:
    """{server: why} when the server cannot be made ready (nothing is sent for it), else {}."""
    blocker = ready_blocker(before)
    if blocker:
        return {req.server: f"{req.backend}/{req.server} on {api} cannot be made ready: {blocker}"}
    if req.health is not None:
        try:
            check_health(req.health, req.server, str(api))
        except HaproxyError as exc:
            return {req.server: str(exc)}
    return {}


def raise_weights(
    api: RuntimeApi, backend: str, ramps: dict[str, list[int]], servers: dict[str, dict[str, Any]]
) -> dict[str, ServerState]:
    """The ramps after ready, in step: one `set server ... weight` per server every RAMP_STEP_S up to its
    full weight."""
    started = time.monotonic()
    for step in range(1, max(len(ramp) for ramp in ramps.values())):
        time.sleep(RAMP_STEP_S)
        for name, ramp in ramps.items():
            if step < len(ramp):
                command = f"set server {backend}/{name} weight {ramp[step]}"
                check_set_response(command, api.run(command), str(api))
                servers[name]["commands"].append(command)
    seconds = round(time.monotonic() - started, 3)
    after = read_states(api, backend, list(ramps))
    for name, ramp in ramps.items():
        servers[name].update(ramp={"weights": ramp, "seconds": seconds}, changed=True)
        if after[name].weight != ramp[-1]:
            raise HaproxyError(
                f"{backend}/{name} on {api} has weight {after[name].weight} after its ramp to "
                f"{ramp[-1]}; something else changed it: check who else drives this load balancer"
            )
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
