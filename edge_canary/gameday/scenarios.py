"""The game-day scenarios: which release each drill ships, how it is disturbed, what must happen.

The one list of scenarios: `edge-canary gameday --list`, `make help` and SCENARIO='s error message are
made from SCENARIOS, and a test holds docs/GAMEDAY.md's table to it. Pure data and decisions, standard
library only, so that `python3 -m edge_canary.gameday.scenarios` (make help's list) runs before `make
setup`. Running a drill is edge_canary.gameday.drill's job; the disturbances are
edge_canary.gameday.disturbances, one class per kind below.

    python3 -m edge_canary.gameday.scenarios           every scenario with what it does
    python3 -m edge_canary.gameday.scenarios --names   the names as SCENARIO= takes them: a|b|...|all|...
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

# How a drill reaches the fleet.
CANARY = "canary"  # playbooks/deploy-canary.yml with the scenario's release
ROLLOUT = "rollout"  # dark deploy of the release at rollout_pct=0, then playbooks/rollout.yml stages
ACCEPTANCE = "acceptance"  # two normal deploys and one deliberate rollback

# What the drill does to the fleet's tooling in the middle of the watch window.
STOP_PROMETHEUS = "stop-prometheus"
KILL_WATCHER = "kill-watcher"
# Partitions (hosts-mode lab only: they take a node's network link down, edge-canary lab-netns cut).
CUT_CANARY = "cut-canary"  # after the watcher's first probe, until it decided
CUT_PEER = "cut-peer"  # the first peer, after the watcher's first probe, until the deploy ended
PARTITIONS = (CUT_CANARY, CUT_PEER)
CUT_PROMETHEUS = "cut-prometheus"  # the watcher's path to Prometheus, after its first probe, until it decided
NETWORK_CUTS = (*PARTITIONS, CUT_PROMETHEUS)
# The watcher loses its data (on the canary, or all of it): it must go blind and revert past max_staleness.
BLINDING = (STOP_PROMETHEUS, CUT_CANARY, CUT_PROMETHEUS)
DISTURBANCES = (STOP_PROMETHEUS, KILL_WATCHER, *NETWORK_CUTS)
# Requests may fail for this long after a node is cut off, while HAProxy's checks notice it (the lab:
# fall 2 x inter 1 s, then a connect timeout of 2 s), and no longer: after it HAProxy routes around.
PARTITION_GRACE_S = 6.0

# What the tool is expected to say it did (read from its record and its output).
PROMOTE = "promote"  # the watcher promoted the canary, the peers were rolled
REVERTED = "reverted"  # the watcher judged red and reverted the canary (a rollout: every node to rollout_pct=0)
ROLL_FAILED = "roll-failed"  # the canary failed a roll step and the deploy put it back
DIED = "died"  # the watcher ended without a verdict; the deploy reverted the canary itself


class ScenarioError(ValueError):
    """An unknown scenario name; the message lists the known ones."""


@dataclass(frozen=True)
class Release:
    """An edge binary a drill ships: its version label and the fault baked into it."""

    version: str
    fault: str | None = None

    @property
    def file_name(self) -> str:
        return f"edge-{self.version}"


@dataclass(frozen=True)
class Expectation:
    tool_verdict: str
    reverted: bool  # the canary (or, for a rollout, the config key) is put back by the tool
    promoted: bool = False  # every node ends on the release (green)
    # What clients must see from the release itself: "failures" (some requests failed by it),
    # "slow" (some answers above the p95 limit), "none" (it never got client traffic), "ok" (it
    # served traffic without failing any).
    release_traffic: str = "ok"


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    release: Release
    expect: Expectation
    flow: str = CANARY
    disturbance: str | None = None

    @property
    def hosts_lab_only(self) -> bool:
        """It cuts a network path, which only the hosts-mode lab allows; `all` does not run it."""
        return self.disturbance in NETWORK_CUTS

    @property
    def blinds_watcher(self) -> bool:
        return self.disturbance in BLINDING


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("green", "a good release must be promoted: the drill that catches false rollbacks",
                 Release("v2"), Expectation(PROMOTE, reverted=False, promoted=True, release_traffic="ok")),
        Scenario("errors", "the release answers a fifth of its requests with 502",
                 Release("v2-errors", "errors=0.2:502"), Expectation(REVERTED, True, release_traffic="failures")),
        Scenario("slow", "the release adds 0.6 s to every answer (p95 over the limit)",
                 Release("v2-slow", "latency=0.6"), Expectation(REVERTED, True, release_traffic="slow")),
        Scenario("unhealthy", "the release fails its health check",
                 Release("v2-unhealthy", "health=fail"), Expectation(ROLL_FAILED, True, release_traffic="none")),
        Scenario("crash", "the release dies at start",
                 Release("v2-crash", "crash=start"), Expectation(ROLL_FAILED, True, release_traffic="none")),
        Scenario("prometheus-outage", "Prometheus is stopped in the middle of the watch window: a canary the "
                 "watcher cannot see is not promoted (blind policy)",
                 Release("v2"), Expectation(REVERTED, True, release_traffic="ok"), disturbance=STOP_PROMETHEUS),
        Scenario("watcher-killed", "the watcher is killed in the middle of the window: the deploy reverts the "
                 "canary itself (fail closed)",
                 Release("v2"), Expectation(DIED, True, release_traffic="ok"), disturbance=KILL_WATCHER),
        Scenario("bad-rollout", "a rollout_pct stage whose new code path fails half its requests",
                 Release("v2-dark-errors", "errors=0.5:502,scope=new"),
                 Expectation(REVERTED, True, release_traffic="failures"), flow=ROLLOUT),
        Scenario("acceptance", "the runbook's bar: two normal deploys and one deliberate rollback",
                 Release("v2"), Expectation(PROMOTE, reverted=False, promoted=True), flow=ACCEPTANCE),
        Scenario("partition-node", "the canary is cut off the network in the middle of the watch window: HAProxy "
                 "routes around it, the watcher goes blind on it and reverts it once the link is back",
                 Release("v2"), Expectation(REVERTED, True, release_traffic="ok"), disturbance=CUT_CANARY),
        Scenario("partition-peer", "a peer is cut off the network during the deploy: the canary is promoted, the "
                 "roll stops at the unreachable peer, which is left untouched and in rotation",
                 Release("v2"), Expectation(PROMOTE, reverted=False, release_traffic="ok"), disturbance=CUT_PEER),
        Scenario("partition-prometheus", "the watcher is cut off from Prometheus in the middle of the watch "
                 "window (Prometheus itself goes on scraping): a canary the watcher cannot see is not promoted",
                 Release("v2"), Expectation(REVERTED, True, release_traffic="ok"), disturbance=CUT_PROMETHEUS),
    )
}  # fmt: skip

# `all` runs these in the list's order: the green drill first, so a fleet that cannot even promote a good
# release stops nothing else from running but is the first row of the summary.
ALL = tuple(name for name, s in SCENARIOS.items() if not s.hosts_lab_only)
# Drills run only when named (they need the hosts-mode lab): `all` does not include them.
EXTRA = tuple(name for name, s in SCENARIOS.items() if s.hosts_lab_only)


def resolve(names: str) -> list[Scenario]:
    """The scenarios SCENARIO= stands for (a name, several separated by commas, or all), or ScenarioError."""
    wanted = [n for n in names.replace(",", " ").split() if n]
    if wanted == ["all"]:
        return [SCENARIOS[n] for n in ALL]
    unknown = [n for n in wanted if n not in SCENARIOS]
    if wanted and not unknown:
        return [SCENARIOS[n] for n in dict.fromkeys(wanted)]
    what = f"SCENARIO={unknown[0]!r} is not a game-day scenario" if unknown else "SCENARIO is not set"
    raise ScenarioError(f"{what}; use one of {', '.join(ALL + EXTRA)}, several separated by commas, or all "
                        "(e.g. make gameday SCENARIO=errors)")


def watch_window(scenario: Scenario, window: float, interval: float, max_staleness: float) -> float:
    """The SLI window a drill uses: long enough for the disturbance to play out.

    A Prometheus outage only turns into a blind revert once the last fresh data is older than
    max_staleness; it starts after the first probe, so the window must leave room for that and for a
    few probes more.
    """
    if scenario.blinds_watcher:
        return max(window, interval + max_staleness + 3 * interval)
    if scenario.disturbance == KILL_WATCHER:
        return max(window, 4 * interval)
    return window


def names() -> str:
    """What SCENARIO= takes, for make help: every scenario `all` runs, all, then the hosts-mode-lab ones."""
    return "|".join((*ALL, "all", *EXTRA))


def listing() -> str:
    """`edge-canary gameday --list`: one line per scenario, with what it does."""
    width = max(map(len, SCENARIOS))
    rows = [f"{s.name:<{width}}  {s.summary}{' (hosts-mode lab only; not in all)' if s.hosts_lab_only else ''}"
            for s in SCENARIOS.values()]
    rows.append(f"{'all':<{width}}  every scenario above but the hosts-mode lab ones, then a summary table")
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args not in ([], ["--names"]):
        sys.stderr.write("usage: python3 -m edge_canary.gameday.scenarios [--names]\n")
        return 2
    sys.stdout.write(names() + "\n" if args else listing())
    return 0


if __name__ == "__main__":
    sys.exit(main())
