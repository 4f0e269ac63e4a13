"""`make gameday SCENARIO=…`: break a release on purpose and prove the automation catches it.

    edge-canary gameday --scenario errors            (or SCENARIO=errors in the environment)
    edge-canary gameday --scenario all --inventory staging.hosts.yml
    edge-canary gameday --list                       (the scenarios, with what each does)

The scenarios are listed below (and by --list); `all` runs every one of them but those that need the
hosts-mode lab, then prints a summary table. Each runs the real playbooks against
the inventory (the lab by default) with edge-canary loadgen sending requests through the load balancer,
then checks the outcome itself: who was reverted, every node back on the last-known-good release and
READY on every LB, no .previous lost, and how many requests failed that the broken release did not
fail itself. Reports (markdown + PNG timeline) go to REPORT_DIR (reports/ by default).

The drill holds the game-day lock for its whole run (deploys refuse to start meanwhile unless
FORCE=1, which is logged), refuses an inventory marked edge_canary_production unless
ALLOW_PRODUCTION=1, and leaves the fleet on its last-known-good release even when it breaks.

Exit: 0 every expectation met; 1 an expectation was not met (named in the output and the report);
2 refused before anything changed (bad input, production inventory, lock held, fleet not ready).
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import NoReturn

from edge_canary.gameday.context import Context, Options
from edge_canary.gameday.drill import Drill
from edge_canary.gameday.errors import RunError
from edge_canary.gameday.fleet import FleetError, read_fleet
from edge_canary.gameday.plays import release_gameday_lock, take_gameday_lock
from edge_canary.gameday.report import DrillResult, text_table, write_report, write_summary
from edge_canary.gameday.scenarios import ScenarioError, listing, resolve
from edge_canary.gameday.switches import PrometheusSwitch
from edge_canary.ops.inputs import WHOLE
from edge_canary.util import truthy

REPO = Path(__file__).resolve().parents[2]

PROG = "gameday"
EXIT_FAILED = 1
EXIT_REFUSED = 2


class Refused(Exception):
    """Refused before anything changed; the message is the one line to show."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_REFUSED, f"{PROG}: {message} (see --help)\n")


def positive(name: str, text: str | None) -> float | None:
    if text is None or text.strip() == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise Refused(f"{name}={text!r} is not a number; e.g. {name}=30") from None
    if not value > 0:
        raise Refused(f"{name}={text!r} must be above 0")
    return value


def share(name: str, text: str) -> float:
    """A share of requests, 0 to 0.5 (a fleet failing more than half its requests has no background to speak of)."""
    try:
        value = float(text)
    except ValueError:
        raise Refused(f"{name}={text!r} is not a number; e.g. {name}=0.002") from None
    if not 0 <= value <= 0.5:
        raise Refused(f"{name}={text!r} must be from 0 to 0.5; e.g. {name}=0.002")
    return value


def parse(argv: list[str] | None, env: dict[str, str]) -> argparse.Namespace:
    p = _Parser(prog=PROG, description=__doc__, epilog=f"scenarios:\n{listing()}",
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--list", action="store_true", help="list the scenarios, with what each does, and exit")
    p.add_argument("--scenario", default=env.get("SCENARIO", ""), help="scenario name or all [SCENARIO]")
    p.add_argument("--inventory", default=env.get("INVENTORY") or None, help="inventory (default: ansible.cfg's, "
                   "the lab) [INVENTORY]")
    p.add_argument("--artifacts-dir", default=env.get("ARTIFACTS_DIR") or str(REPO / "artifacts"),
                   help="where edge-v2, edge-v2-errors… are (missing ones are built) [ARTIFACTS_DIR]")
    p.add_argument("--report-dir", default=env.get("REPORT_DIR") or str(REPO / "reports"), help="[REPORT_DIR]")
    p.add_argument("--canary", default=env.get("CANARY_NODE") or None, help="canary node (default: the first edge "
                   "node) [CANARY_NODE]")
    p.add_argument("--window", default=env.get("SLI_WINDOW"), help="SLI window, s (default: the inventory's) "
                   "[SLI_WINDOW]")
    p.add_argument("--interval", default=env.get("SLI_PROBE_INTERVAL"), help="probe interval, s (default: the "
                   "inventory's) [SLI_PROBE_INTERVAL]")
    p.add_argument("--max-staleness", default=env.get("MAX_STALENESS"), help="prometheus-outage: how long the "
                   "watcher may go without fresh data, s (default: 2 probe intervals) [MAX_STALENESS]")
    p.add_argument("--health-timeout", default=env.get("HEALTH_TIMEOUT") or "20", help="longest wait for a "
                   "restarted node's health, s (default 20) [HEALTH_TIMEOUT]")
    p.add_argument("--rps", default=env.get("GAMEDAY_RPS") or "20", help="drill load, requests/s (default 20) "
                   "[GAMEDAY_RPS]")
    p.add_argument("--loadgen-url", default=env.get("LOADGEN_URL") or None, help="loopback URL in front of the "
                   "load balancer (default: the lab's frontend) [LOADGEN_URL]")
    p.add_argument("--max-collateral", default=env.get("MAX_COLLATERAL") or "0", help="failed requests the broken "
                   "release did not fail itself that a drill tolerates (default 0) [MAX_COLLATERAL]")
    p.add_argument("--background-errors", default=env.get("BACKGROUND_ERRORS") or "0", help="the staging fleet's "
                   "own background 5xx share, 0 to 0.5: failures the last-known-good release answers itself within "
                   "it are not collateral (default 0) [BACKGROUND_ERRORS]")
    p.add_argument("--rollout-stages", default=env.get("ROLLOUT_STAGES") or "10 50", help="bad-rollout: the "
                   "rollout_pct stages (default '10 50') [ROLLOUT_STAGES]")
    p.add_argument("--prom-stop-cmd", default=env.get("PROM_STOP_CMD") or None, help="prometheus-outage on a "
                   "non-lab inventory: command that stops Prometheus [PROM_STOP_CMD]")
    p.add_argument("--prom-start-cmd", default=env.get("PROM_START_CMD") or None, help="… and starts it again "
                   "[PROM_START_CMD]")
    p.add_argument("--allow-production", action="store_true", default=truthy(env.get("ALLOW_PRODUCTION")),
                   help="run against an inventory marked edge_canary_production [ALLOW_PRODUCTION=1]")
    return p.parse_args(argv)


def options_from(args: argparse.Namespace) -> Options:
    artifacts = Path(args.artifacts_dir).resolve()  # what is missing there is built into the report folder
    if not WHOLE.fullmatch(args.max_collateral.strip()):  # ASCII digits: int() takes "٣", isdigit() "²"
        raise Refused(f"MAX_COLLATERAL={args.max_collateral!r} is not a whole number; e.g. MAX_COLLATERAL=0")
    max_collateral = int(args.max_collateral)
    if max_collateral < 0:
        raise Refused("MAX_COLLATERAL must be 0 or more")
    if bool(args.prom_stop_cmd) != bool(args.prom_start_cmd):
        raise Refused("set both PROM_STOP_CMD and PROM_START_CMD, or neither")
    if args.inventory and not Path(args.inventory).exists():
        raise Refused(f"INVENTORY={args.inventory} does not exist; e.g. INVENTORY=staging.hosts.yml")
    stages = args.rollout_stages.split()
    if not stages or not all(WHOLE.fullmatch(s) and 0 < int(s) <= 100 for s in stages):
        raise Refused(f"ROLLOUT_STAGES={args.rollout_stages!r} must be whole percentages from 1 to 100, e.g. '10 50'")
    background_errors = share("BACKGROUND_ERRORS", args.background_errors)
    rps = positive("GAMEDAY_RPS", args.rps)
    health = positive("HEALTH_TIMEOUT", args.health_timeout)
    return Options(
        inventory=str(Path(args.inventory).resolve()) if args.inventory else None,
        artifacts_dir=artifacts,
        canary=args.canary,
        window=positive("SLI_WINDOW", args.window),
        interval=positive("SLI_PROBE_INTERVAL", args.interval),
        max_staleness=positive("MAX_STALENESS", args.max_staleness),
        health_timeout=health or 20.0,
        rps=rps or 20.0,
        loadgen_url=args.loadgen_url,
        max_collateral=max_collateral,
        background_errors=background_errors,
        rollout_stages=" ".join(stages),
    )


def say(line: str) -> None:
    print(line, flush=True)


def one_line(result: DrillResult) -> str:
    t = result.traffic
    verdict = "PASS" if result.passed else "FAIL"
    line = f"gameday {result.scenario.name}: {verdict} — the tool said {result.tool_verdict}"
    if t is not None:
        line += (f"; {t.sent} requests, {t.failed_by_release} failed by the release, "
                 f"{f'{t.background} background, ' if t.background else ''}{t.collateral} collateral"
                 f"{f', {t.not_sent} not sent' if t.not_sent else ''}")
    return line


def main(argv: list[str] | None = None) -> int:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    env.setdefault("ANSIBLE_CONFIG", str(REPO / "ansible.cfg"))
    try:
        args = parse(argv, env)
        if args.list:
            sys.stdout.write(listing())
            return 0
        scenarios = resolve(args.scenario)
        options = options_from(args)
        fleet = read_fleet(str(Path(sys.executable).parent / "ansible-playbook"), options.inventory, env)
        if fleet.control.production and not args.allow_production:
            raise Refused(f"{options.inventory or 'the inventory'} is marked production (edge_canary_production): "
                          "a drill breaks releases on purpose; use a staging inventory, or ALLOW_PRODUCTION=1 if you "
                          "really mean it")
        needs_hosts = [sc.name for sc in scenarios if sc.hosts_lab_only]
        if needs_hosts and fleet.control.lab_mode != "hosts":
            raise Refused(f"{', '.join(needs_hosts)} cuts a network path, which only the hosts-mode lab "
                          "allows: run it there (make lab-up LAB_MODE=hosts); nothing was changed")
        if args.prom_stop_cmd:
            options = Options(**{**options.__dict__, "prom_switch": PrometheusSwitch(
                shlex.split(args.prom_stop_cmd), shlex.split(args.prom_start_cmd), fleet.control.prom_url)})
        elif fleet.control.lab_dir:
            options = Options(**{**options.__dict__, "prom_switch": PrometheusSwitch.for_lab(
                fleet.control.lab_dir, fleet.control.prom_url)})
    except (Refused, ScenarioError, FleetError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_REFUSED

    run_id = f"gameday-{time.strftime('%Y%m%dT%H%M%S')}"
    folder = Path(args.report_dir).resolve() / run_id
    state_dir = fleet.control.state_dir
    try:
        Path(state_dir).mkdir(parents=True, exist_ok=True)
        take_gameday_lock(state_dir, run_id)
    except (RunError, OSError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_REFUSED

    def on_term(signum: int, _frame: FrameType | None) -> None:
        # Once: the cleanup that follows must not be cut short by a second Ctrl-C.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    say(f"{PROG}: {run_id}: {', '.join(s.name for s in scenarios)} against "
        f"{options.inventory or 'the lab'}; game-day lock held; reports in {folder}")
    ctx = Context(options, env, fleet, run_id, folder, log=say, unused_reading=fleet)
    results: list[DrillResult] = []
    try:
        for scenario in scenarios:
            if results and any("CLEANUP FAILED" in note for note in results[-1].cleanup):
                say(f"{PROG}: stopping: the fleet is not on its last-known-good release after "
                    f"{results[-1].scenario.name}; the remaining drills were not run")
                break
            result = Drill(ctx, scenario).run()
            write_report(result, folder / scenario.name, fleet.control.prom_url)
            results.append(result)
            say(one_line(result))
            for check in result.failed_checks:
                say(f"  NOT MET: {check.name}: {check.detail}")
            if result.refused:
                say(f"  NOT STARTED, nothing changed: {result.error}")
            elif result.error:
                say(f"  BROKE: {result.error}")
            for note in result.cleanup:
                say(f"  cleanup: {note}")
            say(f"  report: {result.report_md}")
            if result.interrupted:
                say(f"{PROG}: interrupted; the remaining drills were not run")
                break
    except KeyboardInterrupt:  # between two drills: nothing to clean up
        say(f"{PROG}: interrupted between drills; the remaining drills were not run")
        return EXIT_FAILED
    finally:
        release_gameday_lock(state_dir, run_id)
    if len(results) > 1:
        summary = write_summary(results, folder)
        say("\n" + text_table(results))
        say(f"summary: {summary}")
    if results and all(r.refused for r in results):
        return EXIT_REFUSED
    passed = len(results) == len(scenarios) and all(r.passed for r in results)
    return 0 if passed else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
