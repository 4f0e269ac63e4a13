"""Print the state of each lab component: supervisord and its programs, each node's version and health,
each node's state in HAProxy, Prometheus and its targets. Exit 1 when anything is not up."""

import argparse
import csv
import io
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from edge_canary.lab.settings import SettingsError, load

TIMEOUT = 2.0
WATCHER_JOB = "edge-canary-watcher"


def http_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=TIMEOUT) as resp:
        return json.loads(resp.read())


def http_status(url: str) -> int | str:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as err:
        return int(err.code)
    except OSError as err:
        return f"unreachable ({err})"


def programs(conf: Path) -> dict[str, str]:
    if not conf.exists():
        return {}
    out = subprocess.run(["supervisorctl", "-c", str(conf), "status"], capture_output=True, text=True)
    states = {}
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and not line.startswith("unix://"):
            states[parts[0]] = parts[1]
    return states


def haproxy_servers(sock_path: Path) -> dict[str, dict[str, str]]:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(TIMEOUT)
            sock.connect(str(sock_path))
            sock.sendall(b"show stat\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
    except OSError:
        return {}
    rows = csv.DictReader(io.StringIO(data.decode().lstrip("# ")))
    return {
        row["svname"]: {"status": row["status"], "sessions": row["scur"]}
        for row in rows
        if row.get("svname") not in (None, "FRONTEND", "BACKEND") and row.get("pxname") == "edge"
    }


def collect() -> dict[str, Any]:
    s = load()
    lab_dir = Path(s.lab_dir)
    progs = programs(lab_dir / "supervisord.conf")
    lbs = s.load_balancers()
    views = {lb.name: haproxy_servers(lab_dir / lb.dir_name / "admin.sock") for lb in lbs}
    nodes = []
    for name, (address, port) in s.endpoints().items():
        own = s.load_balancer_of(name).name  # a node is in its own PoP's LB only
        lb = views[own]
        node_progs = progs if s.mode == "loopback" else programs(s.supervisor_conf(name))
        try:
            version = http_json(f"http://{address}:{port}/version").get("version")
        except (OSError, ValueError):
            version = None
        nodes.append({
            "node": name, "address": address, "port": port, "process": node_progs.get(name, "absent"),
            "version": version, "health": http_status(f"http://{address}:{port}/health"),
            "lb": own, "haproxy": lb.get(name, {}).get("status", "unknown"),
            "sessions": lb.get(name, {}).get("sessions"),
        })
    prom = f"http://127.0.0.1:{s.prom_port}"
    try:
        targets = http_json(f"{prom}/api/v1/targets")["data"]["activeTargets"]
        target_health = {t["labels"].get("node") or t["labels"].get("lb") or t["labels"]["job"]: t["health"]
                         for t in targets}
        targets_problem = "" if target_health else "none active yet"
    except (OSError, ValueError, KeyError) as exc:
        target_health = {}
        targets_problem = f"unreadable ({exc})"
    return {
        "lab_dir": str(lab_dir),
        "mode": s.mode,
        "supervisord": "running" if progs else "stopped",
        "haproxy": [{"lb": lb.name, "pop": lb.pop, "process": progs.get(lb.program, "absent"),
                     "frontend": f"127.0.0.1:{lb.port}", "admin_socket": "answers" if views[lb.name] else "no answer"}
                    for lb in lbs],
        "prometheus": {"process": progs.get("lab-prometheus", "absent"), "url": prom,
                       "targets": target_health, "targets_problem": targets_problem},
        # Not part of healthy(): notifications never hold up the lab or a deploy.
        "alertmanager": {"process": progs.get("lab-alertmanager", "absent"),
                         "url": f"http://127.0.0.1:{s.prom_port + 3}"},
        "traffic": {"process": traffic_process(progs, [lb.traffic_program for lb in lbs], s.traffic_rps),
                    "rps": s.traffic_rps},
        "nodes": nodes,
    }


def traffic_process(progs: dict[str, str], names: list[str], rps: float) -> str:
    """The traffic sources' state: one per load balancer, RUNNING only when every one runs."""
    if rps == 0:
        return "off"
    states = [progs.get(name, "absent") for name in names]
    return next((state for state in states if state != "RUNNING"), "RUNNING")


def healthy(status: dict[str, Any]) -> bool:
    nodes_ok = all(n["process"] == "RUNNING" and n["health"] == 200 and n["haproxy"] == "UP"
                   for n in status["nodes"])
    # The watcher's target is up only while a deploy watches a canary: its absence is normal.
    targets = {name: h for name, h in status["prometheus"]["targets"].items() if name != WATCHER_JOB}
    return (nodes_ok and all(lb["process"] == "RUNNING" for lb in status["haproxy"])
            and status["prometheus"]["process"] == "RUNNING"
            and bool(targets) and all(h == "up" for h in targets.values())
            and status["traffic"]["process"] in ("RUNNING", "off"))


def render(status: dict[str, Any]) -> str:
    lines = [
        f"lab:        {status['lab_dir']} ({status['mode']} mode)",
        f"supervisord {status['supervisord']}",
        *(f"{'haproxy' if len(status['haproxy']) == 1 else 'haproxy ' + lb['lb']:<11} {lb['process']:<9} "
          f"frontend {lb['frontend']}, admin socket {lb['admin_socket']}" for lb in status["haproxy"]),
        f"prometheus  {status['prometheus']['process']:<9} {status['prometheus']['url']}, targets "
        + (", ".join(f"{k}={v}" for k, v in sorted(status["prometheus"]["targets"].items()))
           or status["prometheus"].get("targets_problem", "")),
        f"alertmgr    {status['alertmanager']['process']:<9} {status['alertmanager']['url']}",
        f"traffic     {status['traffic']['process']:<9} {status['traffic']['rps']} req/s",
        f"{'node':<9} {'address':<21} {'process':<9} {'version':<14} {'health':<7} haproxy (sessions)",
    ]
    for n in status["nodes"]:
        where = f"{n['address']}:{n['port']}"
        lines.append(f"{n['node']:<9} {where:<21} {n['process']:<9} {n['version'] or '-':<14} "
                     f"{n['health']!s:<7} {n['haproxy']} ({n['sessions'] if n['sessions'] is not None else '-'})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--wait", type=float, default=0, metavar="SECONDS",
                        help="poll until every component is up, for at most SECONDS")
    args = parser.parse_args(argv)
    deadline = time.monotonic() + args.wait
    while True:
        try:
            status = collect()
        except SettingsError as err:
            print(f"lab-status: {err}", file=sys.stderr)
            return 2
        status["healthy"] = healthy(status)
        if status["healthy"] or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    print(json.dumps(status, indent=2) if args.json else render(status))
    return 0 if status["healthy"] else 1

