"""The drill's own judgement, from what it read itself (pure functions).

Inputs are the fleet before and after (files on every node, /version, every LB's view), the
sampler's readings over time and the load generator's per-request lines. Each expectation becomes a
Check with a name that says what was expected; a drill passes when every check does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from edge_canary.gameday.fleet import NodeFiles, Sample, ServerState
from edge_canary.lab.loadgen_records import NOT_SENT, Request, parse_requests  # noqa: F401 (parse_requests: chk.parse_requests)
from watcher.stats import binom_sf


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Traffic:
    """What the clients saw, split by who is to blame."""

    sent: int
    failed: int
    failed_by_release: int  # answered with a failure by the broken release itself
    collateral: int  # failed, but not by the release: these are the deploy's fault
    not_sent: int  # the load generator's own concurrency limit: never reached the fleet
    served_by_release: int
    slow_by_release: int  # answered by the release above the p95 limit
    first_bad_at: float | None  # epoch time of the first failed or slow answer of the release
    collateral_requests: tuple[Request, ...]
    background: int = 0  # the last-known-good release's own failures, within the fleet's BACKGROUND_ERRORS

    @property
    def collateral_examples(self) -> tuple[str, ...]:
        return tuple(describe(r) for r in self.collateral_requests[:5])


def describe(request: Request) -> str:
    """A failed request in a report's words: what it got, and from which release."""
    return f"{request.status or request.error} from {request.version or 'no edge node'}"


def blame(request: Request, release: str, variant: str | None) -> bool:
    """Whether the broken release answered this request (so its failure is the release's own)."""
    if request.version != release:
        return False
    return variant is None or request.variant == variant


def traffic(requests: list[Request], release: str, p95_threshold: float, variant: str | None = None) -> Traffic:
    """Count the requests; `variant` narrows the release's blame to one code path (a rollout's "new")."""
    sent = [r for r in requests if r.sent]
    by_release = [r for r in sent if blame(r, release, variant)]
    failed_by_release = [r for r in by_release if r.failed]
    slow = [r for r in by_release if not r.failed and (r.latency_s or 0.0) > p95_threshold]
    collateral = [r for r in sent if r.failed and not blame(r, release, variant)]
    bad = sorted(r.start for r in failed_by_release + slow)
    return Traffic(
        sent=len(sent), failed=sum(r.failed for r in sent), failed_by_release=len(failed_by_release),
        collateral=len(collateral), not_sent=len(requests) - len(sent), served_by_release=len(by_release),
        slow_by_release=len(slow), first_bad_at=bad[0] if bad else None, collateral_requests=tuple(collateral),
    )


# --- the fleet --------------------------------------------------------------------------------


def reverted_nodes(before: dict[str, NodeFiles], after: dict[str, NodeFiles], release_sha: str) -> set[str]:
    """Nodes reverted during the drill: the binary kept aside as .rolled-back is the release, and was put
    there after the first reading (a new file, or a newer one than before)."""
    reverted = set()
    for node, files in after.items():
        now, then = files.rolled_back, before[node].rolled_back
        if now.sha256 == release_sha and (then.sha256 is None or (now.mtime or 0) > (then.mtime or 0)):
            reverted.add(node)
    return reverted


def served_release(samples: list[Sample], release: str) -> set[str]:
    return {node for s in samples for node, version in s.versions.items() if version == release}


def check_tool_verdict(expected: str, said: str) -> Check:
    return Check("tool verdict", said == expected, f"expected {expected}, the tool said {said}")


def check_reverted(expected: set[str], observed: set[str]) -> Check:
    def names(nodes: set[str]) -> str:
        return ", ".join(sorted(nodes)) or "none"

    return Check("who was reverted", expected == observed,
                 f"expected {names(expected)}, reverted: {names(observed)} (rolled-back binary kept aside)")


def check_untouched(nodes: list[str], before: dict[str, NodeFiles], after: dict[str, NodeFiles],
                    samples: list[Sample], release: str) -> Check:
    changed = [n for n in nodes if before[n] != after[n]]
    served = sorted(served_release(samples, release) & set(nodes))
    ok = not changed and not served
    detail = (f"{', '.join(nodes) or 'no peer'} untouched" if ok else
              f"changed on disk: {', '.join(changed) or 'none'}; served {release}: {', '.join(served) or 'none'}")
    return Check("peers untouched", ok, detail)


def check_versions(versions: dict[str, str | None], files: dict[str, NodeFiles], want_version: str,
                   want_sha: str, name: str) -> Check:
    wrong = [f"{n} serves {versions.get(n) or 'nothing'}" for n in files if versions.get(n) != want_version]
    wrong += [f"{n} has binary sha256 {(f.binary.sha256 or 'missing')[:12]}" for n, f in files.items()
              if f.binary.sha256 != want_sha]
    return Check(name, not wrong, "; ".join(wrong) if wrong else f"every node serves {want_version} "
                 f"(sha256 {want_sha[:12]})")


def check_ready(lbs: dict[str, dict[str, ServerState]], node_lbs: Mapping[str, Sequence[str]]) -> Check:
    """Each node READY and UP on every load balancer that serves it (node_lbs: its PoP's, Fleet.node_lbs)."""
    wrong = [f"{lb}: admin socket unreadable" for lb, states in sorted(lbs.items()) if not states]
    for lb, states in sorted(lbs.items()):
        for node in (node for node, served in node_lbs.items() if lb in served):
            state = states.get(node) if states else None
            if states and (state is None or not state.serving):
                what = "unknown" if state is None else f"{state.admin}{'' if state.up else ', DOWN'}"
                wrong.append(f"{node} on {lb}: {what}")
    return Check("ready on every LB", not wrong, "; ".join(wrong) if wrong else
                 f"{len(node_lbs)} nodes READY and UP on {', '.join(sorted(lbs)) or 'no LB'}")


def check_previous(before: dict[str, NodeFiles], after: dict[str, NodeFiles], lkg_sha: str,
                   release_sha: str) -> Check:
    """No .previous lost: each is still there, and holds the last-known-good or what it held before."""
    wrong = []
    for node, files in after.items():
        prev = files.previous.sha256
        if prev is None:
            wrong.append(f"{node}: .previous is gone")
        elif prev == release_sha:
            wrong.append(f"{node}: .previous is the drill's release")
        elif prev not in (lkg_sha, before[node].previous.sha256):
            wrong.append(f"{node}: .previous changed to sha256 {prev[:12]}")
    return Check(".previous kept", not wrong, "; ".join(wrong) if wrong else "every node keeps a last-known-good "
                 ".previous")


def check_config(before: dict[str, NodeFiles], after: dict[str, NodeFiles]) -> Check:
    wrong = [f"{n}: {before[n].config_keys()} -> {after[n].config_keys()}" for n in after
             if before[n].config_keys() != after[n].config_keys()]
    return Check("config as before", not wrong, "; ".join(wrong) if wrong else "config keys unchanged")


def check_rollout_off(after: dict[str, NodeFiles]) -> Check:
    wrong = [f"{n}: rollout_pct={f.config_keys().get('rollout_pct', 'absent')}" for n, f in after.items()
             if f.config_keys().get("rollout_pct", "0") != "0"]
    return Check("every node at rollout_pct=0", not wrong, "; ".join(wrong) if wrong else "rollout_pct=0 everywhere")


def check_collateral(t: Traffic, allowed: int, samples: list[Sample] | None = None) -> Check:
    """No more than `allowed` failures the release did not cause itself, except those while the drill's own
    direct reads show the whole lab machine stalled (counted and named apart, as for a cut node)."""
    judged = [(r, stall_during(r, samples, None)) for r in t.collateral_requests]
    excused = [stall for _, stall in judged if stall]
    charged = [r for r, stall in judged if not stall]
    detail = f"{len(charged)} failed request(s) the release did not fail itself (allowed {allowed})"
    if excused:
        detail += f"; {len(excused)} more while the lab machine itself stalled ({excused[0]})"
    if charged:
        detail += ": " + ", ".join(describe(r) for r in charged[:5])
    return Check("no collateral failures", len(charged) <= allowed, detail)


# A staging fleet's own background 5xx (BACKGROUND_ERRORS) excuse failures the last-known-good release answered
# itself only up to the count its share gives but for a 1-in-1000 chance: more is the drill's doing.
BACKGROUND_TAIL = 0.001


def background_allowance(answered: int, share: float) -> int:
    """The most failures `answered` requests of a healthy release give at its background 5xx `share`, but for a
    BACKGROUND_TAIL chance (the smallest k with P(X > k) <= BACKGROUND_TAIL, X ~ Binomial(answered, share))."""
    if share <= 0 or answered <= 0:
        return 0
    k = math.floor(answered * share)
    while k < answered and binom_sf(k + 1, answered, share) > BACKGROUND_TAIL:
        k += 1
    return k


def background(request: Request, good_version: str) -> bool:
    """A failure the last-known-good release answered itself (its own 5xx, its version header): what a fleet's
    background errors look like, unlike HAProxy's own answers or a connection that failed."""
    return request.failed and request.version == good_version and (request.status or 0) >= 500


def own_failures(requests: list[Request], failures: Sequence[Request], good_version: str,
                 share: float) -> tuple[list[Request], int, int]:
    """Of `failures`, those the last-known-good release answered itself; how many its background 5xx `share`
    allows for the requests it answered; and how many it answered."""
    answered = sum(1 for r in requests if r.sent and r.version == good_version)
    return [r for r in failures if background(r, good_version)], background_allowance(answered, share), answered


def split_background(requests: list[Request], t: Traffic, good_version: str, share: float) -> tuple[Traffic, Check]:
    """With the fleet's background 5xx share: the last-known-good release's own failures within it are taken out
    of the collateral (the returned Traffic), and a check says how many and against what allowance."""
    own, allowed, answered = own_failures(requests, t.collateral_requests, good_version, share)
    within = len(own) <= allowed
    detail = (f"{len(own)} failure(s) answered by {good_version} itself, of {answered} it answered: "
              f"{'within' if within else 'MORE than'} the fleet's background 5xx (BACKGROUND_ERRORS={share:g}: "
              f"up to {allowed})")
    if not within:
        return t, Check("background failures", False, detail + "; counted as collateral")
    rest = tuple(r for r in t.collateral_requests if not background(r, good_version))
    return (replace(t, collateral=len(rest), collateral_requests=rest, background=len(own)),
            Check("background failures", True, detail))


# Reading a live node's /version or an LB's admin socket directly takes milliseconds on a healthy lab: a read
# slower than this, or a sampler silent for longer than the other (it reads every second, waiting up to 2 s
# for a cut node), means the lab machine itself stalled, which no load balancer can route around.
STALL_S = 1.0
SAMPLER_SILENT_S = 6.0
# A failed request tells of the path from a little before it was sent (HAProxy's checks look back that far)
# to its end.
LOOK_BACK_S = 5.0


def check_routed_around(requests: list[Request], release: str, cut_at: float | None, grace: float,
                        allowed: int = 0, samples: list[Sample] | None = None, cut_node: str | None = None) -> Check:
    """A node cut off the network: requests may fail while HAProxy notices (those sent from just before the cut
    to `grace` seconds after it); before or after that no more than `allowed` (MAX_COLLATERAL), except while the
    drill's own direct reads show the whole lab machine stalled (counted and named apart). A failure names what
    the load balancers saw when the first of those outside the grace was sent."""
    failed = [r for r in requests if r.sent and r.failed and not blame(r, release, None)]
    if cut_at is None:
        return Check("HAProxy routed around the cut node", False, "the node was never cut off")
    outside = [r for r in failed if not cut_at - 1.0 <= r.start <= cut_at + grace]
    judged = [(r, stall_during(r, samples, cut_node)) for r in outside]
    charged = [r for r, stall in judged if not stall]
    excused = [stall for _, stall in judged if stall]
    detail = (f"{len(failed) - len(outside)} request(s) failed within {grace:g} s of the cut, {len(charged)} "
              f"outside it (allowed {allowed})")
    if excused:
        detail += f"; {len(excused)} more while the lab machine itself stalled ({excused[0]})"
    if charged:
        detail += ": " + ", ".join(f"{r.status or r.error} at {r.start - cut_at:+.1f} s" for r in charged[:5])
        first = min(r.start for r in charged)
        seen = lbs_seen_at(samples or [], first)
        if seen:
            detail += f"; at {first - cut_at:+.1f} s {seen}"
    return Check("HAProxy routed around the cut node", len(charged) <= allowed, detail)


def stall_during(request: Request, samples: list[Sample] | None, cut_node: str | None) -> str:
    """lab_stalled over the request's life, from LOOK_BACK_S before it was sent to just after its end."""
    return lab_stalled(samples or [], request.start - LOOK_BACK_S, (request.answered_at or request.start) + 1.0,
                       cut_node)


def lab_stalled(samples: list[Sample], start: float, end: float, cut_node: str | None) -> str:
    """Why the drill's direct reads say the lab machine stalled between start and end ('' if they do not)."""
    for s in samples:
        if start <= s.at <= end:
            for name, took in sorted(s.read_s.items()):
                if name != cut_node and took > STALL_S:
                    return f"{name} took {took:.1f} s to answer the drill directly"
    ends = [s.at for s in samples]
    for before, after in zip(ends, ends[1:], strict=False):
        if after - before > SAMPLER_SILENT_S and before < end and after > start:
            return f"the drill's sampler could not run for {after - before:.1f} s"
    return ""


def lbs_seen_at(samples: list[Sample], at: float) -> str:
    """How every load balancer saw the nodes in the last sample taken at or before `at` ('' if none), and the
    slowest direct read of that sample."""
    before = [s for s in samples if s.at <= at]
    if not before:
        return ""
    last = before[-1]
    seen = "; ".join(f"{lb} saw " + ", ".join(f"{node} {state_word(state)}" for node, state in sorted(nodes.items()))
                     if nodes else f"{lb} unreadable" for lb, nodes in sorted(last.lbs.items()))
    if last.read_s:
        slowest = max(last.read_s, key=lambda name: last.read_s[name])
        seen += f" (slowest direct read: {slowest} {last.read_s[slowest]:.2f} s)"
    return seen


def state_word(state: ServerState) -> str:
    return ("UP" if state.up else "DOWN") + ("" if state.admin == "READY" else f" {state.admin}")


def check_release_traffic(expected: str, t: Traffic, release: str) -> Check:
    """The fault was really exercised (or, for faults caught before rotation, never reached clients)."""
    if expected == "failures":
        return Check("the release failed requests", t.failed_by_release > 0,
                     f"{release} failed {t.failed_by_release} of the {t.served_by_release} requests it answered")
    if expected == "slow":
        return Check("the release answered slowly", t.slow_by_release > 0,
                     f"{release} answered {t.slow_by_release} of {t.served_by_release} requests above the p95 limit")
    if expected == "none":
        return Check("the release never reached clients", t.served_by_release == 0,
                     f"{release} answered {t.served_by_release} client requests")
    ok = t.served_by_release > 0 and t.failed_by_release == 0
    return Check("the release served cleanly", ok,
                 f"{release} answered {t.served_by_release} requests, failed {t.failed_by_release}")


def check_traffic_flowed(t: Traffic) -> Check:
    return Check("load ran through the LB", t.sent > 0 and t.failed < t.sent,
                 f"{t.sent} sent, {t.failed} failed, {t.not_sent} not sent by the load generator")


# --- times ------------------------------------------------------------------------------------


def restored_at(samples: list[Sample], node: str, version: str, after: float | None,
                lbs: Sequence[str]) -> float | None:
    """The first sample from `after` on where the node serves `version` and is READY and UP on every LB that
    serves it (`lbs`)."""
    if after is None:
        return None
    for s in samples:
        if s.at < after or s.versions.get(node) != version:
            continue
        if s.lbs and all(s.lbs.get(lb, {}).get(node, ServerState("MAINT", False)).serving for lb in lbs):
            return s.at
    return None


def last_answer(requests: list[Request], version: str, variant: str) -> float | None:
    """When clients last got an answer from one code path of a release (a rollout's "new")."""
    ends = [r.start + (r.latency_s or 0.0) for r in requests
            if r.version == version and r.variant == variant and r.status is not None]
    return max(ends) if ends else None


def first_seen(samples: list[Sample], node: str, version: str) -> float | None:
    return next((s.at for s in samples if s.versions.get(node) == version), None)


def seconds_between(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else round(end - start, 1)


def check_caught_between(name: str, what: str, start: float | None, end: float | None, detected: float | None,
                         t0: float) -> Check:
    """The detection fell while the disturbance lasted (from start to end; no end yet: any time after start)."""
    ok = start is not None and detected is not None and start <= detected <= (end or detected)
    return Check(name, ok, f"{what} {seconds_between(t0, start)} s to {seconds_between(t0, end)} s "
                           f"into the drill, detection at {seconds_between(t0, detected)} s")


def check_caught_after(name: str, what: str, start: float | None, detected: float | None, t0: float) -> Check:
    """The detection came after the disturbance (an instant one: the watcher killed)."""
    ok = start is not None and detected is not None and start <= detected
    return Check(name, ok, f"{what} at {seconds_between(t0, start)} s, detection at "
                           f"{seconds_between(t0, detected)} s into the drill")


def failed(checks: list[Check]) -> list[Check]:
    return [c for c in checks if not c.ok]
