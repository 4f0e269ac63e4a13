"""`edge-canary notify EVENT`: post one deploy event to Alertmanager (the playbooks' side of
watcher.notify, the one notification module).

Never fails a deploy or a rollback: exit 0 whether Alertmanager took the event or not (a failure is
one line on stderr and a count in <state dir>/metrics/edge_canary_notify.prom, a textfile for the
node exporter's textfile collector); 64 only for arguments that are wrong (a bug in the caller).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

from watcher.notify import DEFAULT_TIMEOUT, EVENTS, Event, Notifier, NotifyConfigError, NotifySettings

METRICS_FILE = "metrics/edge_canary_notify.prom"
METRIC = "edge_canary_notifications_total"
_SAMPLE = re.compile(rf'^{METRIC}{{outcome="(\w+)"}} (\d+)$', re.M)


def read_counts(path: Path) -> dict[str, int]:
    try:
        return {outcome: int(n) for outcome, n in _SAMPLE.findall(path.read_text())}
    except OSError:
        return {}


def count(state_dir: Path, outcome: str) -> None:
    """Add one to the outcome's counter in the textfile, replaced atomically."""
    path = state_dir / METRICS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    counts = {"sent": 0, "failed": 0, **read_counts(path)}
    counts[outcome] = counts.get(outcome, 0) + 1
    text = (f"# HELP {METRIC} Deploy events the playbooks posted to Alertmanager, by outcome\n"
            f"# TYPE {METRIC} counter\n"
            + "".join(f'{METRIC}{{outcome="{o}"}} {n}\n' for o, n in sorted(counts.items())))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".notify-")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="edge-canary notify", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("event", choices=sorted(EVENTS))
    parser.add_argument("--url", default="", help="Alertmanager base URL ('' = do nothing)")
    parser.add_argument("--deploy-id", required=True)
    parser.add_argument("--canary", default="")
    parser.add_argument("--release", default="")
    parser.add_argument("--verdict", default="")
    parser.add_argument("--wave", default="", help="wave_done: which wave, e.g. 2/5")
    parser.add_argument("--reason", default="")
    parser.add_argument("--record", default="", help="path of the deploy's record")
    parser.add_argument("--runbook-base-url", default="")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT)
    parser.add_argument("--state-dir", type=Path, required=True, help="where the failure count is kept")
    args = parser.parse_args(argv)
    try:
        settings = NotifySettings.from_mapping({"url": args.url, "timeout": args.timeout,
                                                "runbook_base_url": args.runbook_base_url})
    except NotifyConfigError as exc:
        print(f"edge-canary notify: {exc}", file=sys.stderr)
        return 64
    notifier = Notifier(settings, log=lambda line: print(line, file=sys.stderr),
                        count=lambda outcome: count(args.state_dir, outcome))
    event = Event(args.event, args.deploy_id, canary=args.canary, release=args.release,
                  verdict=args.verdict, reason=args.reason, record=args.record, wave=args.wave)
    if notifier.send(event):
        print(f"notify: {args.event} event of deploy {args.deploy_id} posted to {settings.url}")
    return 0
