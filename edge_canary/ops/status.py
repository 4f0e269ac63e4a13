"""`make status [JSON=1]` (edge-canary status [--json] [-i INVENTORY]): the fleet as the on-call needs
it, one row per edge node.

Runs playbooks/status.yml (read-only) for the records, then judges them. Exit 0 when every node is
up, ready on every load balancer and the fleet runs one version; 1 naming each problem (drained or
in maintenance, down, mixed versions or rollout_pct, unfinished push or rollback, a deploy held by its SLI
gate and not yet resumed or rolled back, unreadable node);
2 when the fleet could not be read at all. A deploy, rollback, rollout or game-day drill holding the lock is
named (IN PROGRESS: …): what it is in the middle of, mixed versions or a drained canary, is still counted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from edge_canary.ops.play import ANSIBLE_PLAYBOOK, REPO
from watcher.drain import module_utils

module_utils("haproxy_plan")  # the collection importable as Ansible names it
# What haproxy_server counts as routed to: up, or warming up under slowstart.
from ansible_collections.edge.canary.plugins.module_utils.haproxy_plan import SEEN_UP  # noqa: E402

EXIT_OK, EXIT_PROBLEMS, EXIT_UNREADABLE = 0, 1, 2

Row = dict[str, Any]


# --- pure: naming and judging ------------------------------------------------------------------


def short(sha: str | None) -> str:
    return sha[:12] if sha else "-"


def release_label(ref: dict[str, Any] | None) -> str:
    """'v2 3f2a9c1d0e4b', '? 3f2a9c1d0e4b' when no record knows the version, 'none' when absent."""
    if not ref or not ref.get("sha256"):
        return "none"
    return f"{ref.get('version') or '?'} {short(ref['sha256'])}"


def version_name(row: Row) -> str:
    """What the node's binary is called in messages: its recorded version, else the version the
    service reports, else its sha256 prefix."""
    current = (row.get("release") or {}).get("current") or {}
    running = row.get("running") or {}
    return str(current.get("version") or running.get("version") or short(current.get("sha256")))


def group(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for key, node in pairs:
        groups.setdefault(key, []).append(node)
    return groups


def describe_groups(groups: dict[str, list[str]]) -> str:
    return "; ".join(f"{key} on {', '.join(nodes)}" for key, nodes in groups.items())


def node_problems(row: Row) -> list[str]:
    node = row["node"]
    found = [f"{node}: {error}" for error in row.get("errors", [])]
    release = row.get("release") or {}
    if release:
        current = release.get("current") or {}
        if not current.get("exists", True):
            found.append(f"{node} has no edge binary at {(release.get('paths') or {}).get('binary')}")
        if release.get("pending"):
            found.append(f"{node}: an interrupted push is not finished; re-run the deploy or "
                         f"make rollback NODES={node}")
        if release.get("pending_rollback"):
            found.append(f"{node}: an interrupted rollback is not finished; re-run "
                         f"make rollback NODES={node}")
        if release.get("record_error"):
            found.append(f"{node}: {release['record_error']}")
        running = (row.get("running") or {}).get("version")
        if current.get("version") and running and running != current["version"]:
            found.append(f"{node} serves {running} but has {current['version']} installed; "
                         "restart it or roll it back")
    health = row.get("health") or {}
    if health and health.get("status") != 200:
        error = str(health.get("error") or "no response").rpartition("Request failed: ")[2]
        why = (f"answered {health['status']}" if health.get("status", -1) > 0
               else f"did not answer ({error})")
        found.append(f"{node} is down: its health URL {health.get('url')} {why}")
    for lb in row.get("lbs", []):
        where = lb.get("lb")
        if lb.get("error"):
            found.append(f"{where} could not be asked about {node}: {lb['error']}")
            continue
        if lb.get("admin_state") == "drain":
            found.append(f"{node} is drained on {where} (gets no new traffic); "
                         f"make rollback NODES={node} or a deploy puts it back")
        elif lb.get("admin_state") == "maint":
            found.append(f"{node} is in maintenance on {where} (out of rotation; a deploy leaves it alone)")
            continue  # HAProxy does not check a server in maintenance: its "down" says nothing of the node
        if lb.get("operational_state") not in (None, *SEEN_UP):
            found.append(f"{node} is {lb['operational_state']} on {where} (HAProxy's own health "
                         "check)")
    return found


def fleet_problems(rows: list[Row]) -> list[str]:
    found = [problem for row in rows for problem in node_problems(row)]
    readable = [row for row in rows if (row.get("release") or {}).get("current")]
    by_sha = group((str(row["release"]["current"].get("sha256")), row["node"]) for row in readable)
    if len(by_sha) > 1:
        names = {row["node"]: version_name(row) for row in readable}
        labelled = {}
        for sha, nodes in by_sha.items():
            known = [names[n] for n in nodes if names[n] != short(sha)]
            labelled[f"{known[0] if known else '?'} ({short(sha)})"] = nodes
        found.append(f"mixed versions: {describe_groups(labelled)}")
    by_running = group(
        (str(row["running"]["version"]), row["node"])
        for row in rows
        if (row.get("running") or {}).get("version")
    )
    if len(by_running) > 1 and len(by_sha) <= 1:
        found.append(f"mixed versions served: {describe_groups(by_running)}")
    by_pct = group(
        (str((row["release"].get("config") or {}).get("rollout_pct", "unset")), row["node"])
        for row in readable
    )
    if len(by_pct) > 1:
        found.append(f"mixed rollout_pct: {describe_groups(by_pct)}")
    return found


def undecided(rows: list[Row], held: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The deploys its SLI gate held (edge-canary held-deploys) that nobody has decided yet, each with the nodes
    still `behind`: its canary still runs its release while some of its nodes do not. A resume or a new deploy
    that finished the roll, or a rollback of the canary, decides it."""
    sha_of = {row["node"]: ((row.get("release") or {}).get("current") or {}).get("sha256") for row in rows}
    found = []
    for deploy in held:
        sha = deploy.get("sha256")
        if not sha or sha_of.get(deploy.get("canary")) != sha:
            continue
        behind = [node for node in deploy.get("nodes") or [] if node in sha_of and sha_of[node] != sha]
        if behind:
            found.append({**deploy, "behind": behind})
    return found


def held_problem(deploy: dict[str, Any]) -> str:
    deploy_id, canary = deploy.get("deploy_id"), deploy.get("canary")
    return (f"deploy {deploy_id} is held (its SLI gate said HOLD: {deploy.get('reason')}): {canary} runs "
            f"{deploy.get('version') or short(deploy.get('sha256'))}, {', '.join(deploy['behind'])} not yet. "
            f"Decide: make resume DEPLOY_ID={deploy_id} (a fresh SLI gate, then the rest) or make rollback "
            f"NODES={canary}")


# --- pure: rendering ---------------------------------------------------------------------------


def last_release(record: dict[str, Any]) -> str:
    parts = []
    if record.get("action"):
        current = record.get("current") or {}
        parts.append(f"{record['action']} {current.get('version') or short(current.get('sha256'))} "
                     f"{record.get('time', '?')}"
                     + (f" ({record['deploy_id']})" if record.get("deploy_id") else ""))
    change = record.get("config_change") or {}
    if change.get("set"):
        written = " ".join(f"{k}={v}" for k, v in change["set"].items() if v is not None)
        removed = " ".join(k for k, v in change["set"].items() if v is None)
        what = ", ".join(([f"set {written}"] if written else []) + ([f"removed {removed}"] if removed else []))
        parts.append(f"{what} {change.get('time', '?')}")
    return "; ".join(parts) or "-"


def lb_cell(lbs: list[dict[str, Any]]) -> str:
    cells = []
    for lb in lbs:
        if lb.get("error"):
            cells.append(f"{lb.get('lb')}: ERROR")
        else:
            cells.append(f"{lb.get('lb')}: {lb.get('admin_state')}/{lb.get('operational_state')} "
                         f"{lb.get('sessions')} sess")
    return ", ".join(cells) or "-"


def row_cells(row: Row) -> dict[str, str]:
    release = row.get("release") or {}
    health = row.get("health") or {}
    config = release.get("config") or {}
    if not health:
        service = "?"
    elif health.get("status") == 200:
        service = "up"
    else:
        service = f"DOWN ({health['status'] if health.get('status', -1) > 0 else 'no answer'})"
    return {
        "NODE": row["node"],
        "CURRENT": release_label(release.get("current")) if release else "?",
        "PREVIOUS": release_label(release.get("previous")) if release else "?",
        "SERVES": str((row.get("running") or {}).get("version") or "-"),
        "CONFIG": " ".join(f"{k}={v}" for k, v in sorted(config.items())) or "-",
        "SERVICE": service,
        "LOAD BALANCERS": lb_cell(row.get("lbs", [])),
        "LAST CHANGE": last_release(release.get("record") or {}),
    }


def in_progress(locks: list[str]) -> list[str]:
    """The runs holding a lock, from `edge-lock show`'s lines (`deploy: free`, `deploy: deploy <id> by …`); a
    stale lock holds nothing. A line that is not `<kind>: …` (the lock could not be read) is kept as it is."""
    held = []
    for line in locks:
        kind, sep, what = line.partition(": ")
        if not sep or kind == "locks":
            held.append(line)
        elif what != "free" and not what.endswith("[stale]"):
            held.append(what)
    return held


def render_table(rows: list[Row], problems: list[str], running: list[str] | None = None) -> str:
    cells = [row_cells(row) for row in rows]
    columns = list(cells[0]) if cells else ["NODE"]
    widths = {c: max([len(c)] + [len(r[c]) for r in cells]) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns).rstrip()]
    lines += ["  ".join(r[c].ljust(widths[c]) for c in columns).rstrip() for r in cells]
    if running:
        lines.append("")
        lines += [f"IN PROGRESS: {what}" for what in running]
    if problems:
        lines.append("")
        lines.append(f"NOT OK: {len(problems)} problem(s)")
        lines += [f"  - {p}" for p in problems]
    else:
        versions = sorted({version_name(r) for r in rows})
        lines.append("")
        lines.append(f"OK: {len(rows)} node(s) up and ready on every load balancer, all on "
                     f"{', '.join(versions)}")
    return "\n".join(lines)


def report(rows: list[Row], locks: list[str] | None = None, held: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    holds = undecided(rows, held or [])
    problems = [held_problem(h) for h in holds] + fleet_problems(rows)  # a held deploy explains mixed versions
    return {"ok": not problems, "problems": problems, "nodes": rows, "in_progress": in_progress(locks or []),
            "held": holds}


# --- side effects ------------------------------------------------------------------------------


def read_fleet(inventory: str | None) -> tuple[dict[str, Any] | None, str]:
    """Run the read-only status playbook; its records (`nodes`: the rows, `locks`), or None with the play's
    output."""
    with tempfile.TemporaryDirectory(prefix="edge-status-") as tmp:
        out = Path(tmp) / "status.json"
        argv = [ANSIBLE_PLAYBOOK, str(REPO / "playbooks/status.yml"), "-e", f"status_out={out}"]
        if inventory:
            argv += ["-i", inventory]
        env = {**os.environ, "ANSIBLE_NOCOLOR": "1"}
        play = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True)
        try:
            records = json.loads(out.read_text())
        except (OSError, ValueError):
            records = None
        if not isinstance(records, dict) or not isinstance(records.get("nodes"), list):
            return None, (play.stdout + play.stderr)
        return records, ""


def where_the_fleet_stands(inventory: str | None) -> str:
    """The status table read now, for a run that stopped part-way: which node it left drained, and on what."""
    records, _ = read_fleet(inventory)
    if records is None:
        return "could not read the fleet: run make status"
    return render_table(records["nodes"], report(records["nodes"], held=records.get("held"))["problems"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument("-i", "--inventory", default=os.environ.get("INVENTORY") or None,
                        help="inventory (default: ansible.cfg's, the lab) [env INVENTORY]")
    args = parser.parse_args(argv)
    records, output = read_fleet(args.inventory)
    if records is None:
        tail = "\n".join(output.strip().splitlines()[-15:])
        print(f"fleet-status: could not read the fleet (playbooks/status.yml wrote no records); "
              f"its last lines:\n{tail}", file=sys.stderr)
        return EXIT_UNREADABLE
    rows = records["nodes"]
    result = report(rows, records.get("locks"), records.get("held"))
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        print(render_table(rows, result["problems"], result["in_progress"]))
    return EXIT_OK if result["ok"] else EXIT_PROBLEMS

