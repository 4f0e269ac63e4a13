"""Before the drain: can this window promote at the canary's recent traffic?

A probe is inconclusive until the canary has served `min_requests` since it started serving, so at a
quiet hour the first probes of the window cannot be green. When fewer probes are left than promotion
needs, the gate is bound to hold, however healthy the release: preflight says so (the watcher's
--check-config --check-traffic, run by sli_watch's check entry point) while the operator can still
lengthen the window or wait for traffic. A warning, not a refusal: a held canary is not harmed.
"""

from __future__ import annotations

import math

from watcher.judge import greens_to_promote
from watcher.prom import PromError
from watcher.promql import format_range, render
from watcher.settings import Settings
from watcher.sli import ShapeError, requests_by_code, single_value

# How far back the canary's traffic is read: the window's length, within these bounds.
LOOKBACK_S = (300.0, 3600.0)


def probes_that_can_be_green(probes: int, interval: float, rate: float, min_requests: int) -> int:
    """Probes (one every `interval` s from the start) that come once the canary has served min_requests
    at `rate` requests/s."""
    if rate <= 0:
        return 0
    first = max(1, math.ceil(min_requests / (rate * interval) - 1e-9))
    return max(0, probes - first + 1)


def window_that_can_promote(interval: float, rate: float, min_requests: int, fraction: float) -> float | None:
    """The shortest window (seconds) whose probes can promote at `rate`; None when none of up to 10000 can."""
    for probes in range(1, 10_001):
        if probes_that_can_be_green(probes, interval, rate, min_requests) >= greens_to_promote(probes, fraction):
            return probes * interval
    return None


def traffic_warning(settings: Settings, requests: float, lookback: float) -> str | None:
    """The warning when `requests` served over the last `lookback` s cannot make the window promote."""
    rules, n = settings.rules, settings.planned_probes
    rate = requests / lookback
    can, needed = probes_that_can_be_green(n, settings.interval, rate, rules.min_requests), greens_to_promote(
        n, rules.promote_fraction)
    if can >= needed:
        return None
    count = f"{requests:.0f} request{'' if f'{requests:.0f}' == '1' else 's'}"
    served = f"the canary served {count} in the last {format_range(lookback)} ({rate:.2g}/s)"
    # Traffic comes in bursts and lulls: the window suggested still promotes at half the rate seen.
    longer = window_that_can_promote(settings.interval, rate / 2, rules.min_requests, rules.promote_fraction)
    fix = (f"give SLI_WINDOW of at least {longer:g} s (enough at half that rate)" if longer
           else "the window cannot be long enough")
    return (f"{served}: at that rate a probe counts only after its first {rules.min_requests} requests, so at "
            f"most {can} of the window's {n} probes can be green and promotion needs {needed}; the gate will "
            f"hold a healthy release: {fix}, or deploy when the canary takes more traffic")


def check_traffic(settings: Settings) -> str | None:
    """Read the canary's recent traffic from Prometheus: the warning, or None (also when Prometheus cannot
    answer: preflight's own Prometheus check says that). Its rate is over the time its counters have been
    scraped within the lookback, so that a node new to Prometheus does not read as a quiet one."""
    lookback = min(max(settings.window, LOOKBACK_S[0]), LOOKBACK_S[1])
    queries = render(settings.queries, settings.canary_selector, lookback)
    step = max(settings.scrape_interval, 1.0)
    scraped = f"max(count_over_time(({queries.counts})[{format_range(lookback)}:{format_range(step)}]))"
    client = settings.prom_client()
    try:
        requests = sum(requests_by_code(client.query(queries.requests)).values())
        steps = single_value(client.query(scraped)) or 0.0
    except (PromError, ShapeError):
        return None
    finally:
        client.close()
    return traffic_warning(settings, requests, min(lookback, max(steps * step, step)))
