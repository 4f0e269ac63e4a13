"""`edge-canary check-prometheus`: does the Prometheus the watcher will read answer a query, with the
credentials the watcher will use? Run by sli_watch's check entry point (roles/sli_watch/tasks/check.yml) with
sli_watch_check_prometheus, as preflight checks each canary's watcher.

Everything comes from the environment, exactly as the watcher takes it: PROM_URL (user:password@ in it
allowed), PROM_TOKEN (a bearer token) or PROM_USER/PROM_PASSWORD (basic auth). Nothing secret is ever
an argument. The query goes through the watcher's own client (watcher.prom.PromClient), so the header
or basic auth is the watcher's by construction. Exit 0 when `vector(1)` is answered, else 1 with one
line, credentials scrubbed.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping

from edge_canary.ops.inputs import scrub
from watcher.decision_log import Scrubber
from watcher.prom import PromClient, PromError, split_userinfo


def check(env: Mapping[str, str], timeout: float = 5.0) -> str | None:
    """None when Prometheus answers; else why not (one line, no credentials)."""
    raw = env.get("PROM_URL", "").strip()
    if not raw:
        return "no Prometheus URL: set PROM_URL"
    url, url_user, url_password = split_userinfo(raw)
    token = env.get("PROM_TOKEN") or None
    user = env.get("PROM_USER") or url_user
    password = env.get("PROM_PASSWORD") or url_password
    secrets = Scrubber([token or "", password or ""])
    secrets.add(user, password)
    if token and user:
        return "give either a bearer token (PROM_TOKEN) or basic auth (PROM_USER/PROM_PASSWORD), not both"
    client = PromClient(url, token=token, user=user if not token else None, password=password, timeout=timeout)
    try:
        client.query("vector(1)")
    except PromError as exc:
        return secrets.text(scrub(str(exc)))
    finally:
        client.close()
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the answer (default 5)")
    args = parser.parse_args(argv)
    problem = check(os.environ, args.timeout)
    if problem is None:
        print("Prometheus answers queries")
        return 0
    print(problem, file=sys.stderr)
    return 1
