"""haproxy_server's decisions: which `set server` commands reach the wanted state, what blocks it,
when a server serves, and the wait for its sessions to end."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from ansible_collections.edge.canary.plugins.module_utils.haproxy_state import (
    FDRAIN,
    FMAINT,
    IDRAIN,
    IMAINT,
    RMAINT,
    STATES,
    HaproxyError,
    ServerState,
    SessionCounts,
    validate_name,
)
from ansible_collections.edge.canary.plugins.module_utils.polling import WaitOutcome, poll_until


@dataclass(frozen=True)
class Plan:
    commands: list[str]
    predicted: ServerState

    @property
    def changed(self) -> bool:
        return bool(self.commands)


_FORCED_BITS = {
    "ready": lambda bits: bits & ~(FMAINT | FDRAIN),
    "drain": lambda bits: (bits & ~FMAINT) | FDRAIN,
    "maint": lambda bits: (bits & ~FDRAIN) | FMAINT,
}


def ready_blocker(state: ServerState) -> str | None:
    """Why `state ready` could not bring the server back, if something it cannot clear holds it."""
    bits = _FORCED_BITS["ready"](state.admin_bits)
    if bits & IMAINT:
        return "it inherits maintenance from the server it tracks; make that server ready first"
    if bits & RMAINT:
        return "its address does not resolve (RMAINT); fix DNS or the server address first"
    if bits & IDRAIN:
        return "it inherits drain from the server it tracks; make that server ready first"
    return None


def plan_change(state: ServerState, backend: str, wanted: str, weight: int | None) -> Plan:
    """The `set server` commands needed to reach `wanted` (and `weight`), nothing more.

    Weight goes first so a server coming back to ready gets traffic at the new weight.
    """
    if wanted not in STATES:
        raise HaproxyError(f"invalid state {wanted!r}: use one of {', '.join(STATES)}")
    target = f"{validate_name('backend', backend)}/{validate_name('server', state.name)}"
    commands: list[str] = []
    predicted = state
    if weight is not None and weight != state.weight:
        commands.append(f"set server {target} weight {weight}")
        predicted = replace(predicted, weight=weight)
    if state.forced_admin_state != wanted:
        commands.append(f"set server {target} state {wanted}")
        predicted = replace(predicted, admin_bits=_FORCED_BITS[wanted](state.admin_bits))
    return Plan(commands, predicted)


def wait_until_idle(
    read_counts: Callable[[], dict[str, SessionCounts]],
    timeout: float,
    interval: float = 0.5,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> WaitOutcome:
    """Poll until no server read has a session or a queue, never longer than `timeout` seconds."""
    return poll_until(
        read_counts, lambda counts: all(one.idle for one in counts.values()), timeout, interval, clock, sleep
    )


# `starting`: back up through the health check and warming up under the backend's slowstart, already
# routed to at a rising weight; waiting for `up` would wait out the slowstart (often 30-60 s).
SEEN_UP = ("up", "starting")


def serves(state: ServerState) -> bool:
    """HAProxy routes to the server: its own health check passed and nothing holds it out."""
    return state.operational_state in SEEN_UP and state.admin_state == "ready"
