"""The hosts-mode lab's network: a bridge holding the machine's address on LAB_SUBNET, and per edge node
a network namespace joined to it by a veth pair, with the node's address and its loopback up.

  lab-netns up            make what is missing (idempotent; also heals a cut left by a crashed drill)
  lab-netns down          stop every process inside the lab's namespaces, remove the namespaces and links
  lab-netns cut NODE      partition NODE: its link to the bridge goes down (nothing reaches it, it reaches
                          nothing)
  lab-netns heal NODE     bring that link back up
  lab-netns cut-prometheus    cut this machine off from the lab's Prometheus: an nftables rule drops every
                              packet sent to its listen address (the watcher's queries vanish, as over a cut
                              link; Prometheus itself goes on scraping)
  lab-netns heal-prometheus   remove that rule

Every name starts with the lab's own prefix (lab_settings.link_prefix) and everything made is recorded in
<lab dir>/hosts/network.json: down removes exactly that. Up also makes the lab's private keys folder,
/run/edge-canary-lab/<prefix> (0700, root's), where the nodes' sshd reads authorized_keys: sshd's
StrictModes refuses a key file below any group- or world-writable folder, and the lab may live anywhere
(a clone in /tmp). The namespaces have no route but the lab's
subnet, so nothing they send can leave the machine.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from edge_canary.lab.settings import LabSettings, SettingsError, load


class NetError(RuntimeError):
    """Something the lab cannot make or undo; the message says what to do."""


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and done.returncode != 0:
        raise NetError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done


def links() -> dict[str, dict[str, Any]]:
    return {link["ifname"]: link for link in json.loads(ip("-j", "link", "show").stdout or "[]")}


def namespaces() -> set[str]:
    return {ns["name"] for ns in json.loads(ip("-j", "netns", "list").stdout or "[]")}


def record_path(s: LabSettings) -> Path:
    return Path(s.lab_dir) / "hosts" / "network.json"


def read_record(s: LabSettings) -> dict[str, Any]:
    try:
        data = json.loads(record_path(s).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_record(s: LabSettings, record: dict[str, Any]) -> None:
    path = record_path(s)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def plan(s: LabSettings) -> dict[str, dict[str, str]]:
    """Per node: its namespace, the veth's host end, the node's address."""
    prefix = s.link_prefix()
    return {name: {"netns": f"{prefix}-{name}", "veth": f"{prefix}-h{i}", "peer": f"{prefix}-n{i}",
                   "address": address}
            for i, (name, address) in enumerate(zip(s.node_names(), s.node_addresses(), strict=True), start=1)}


KEYS_ROOT = Path("/run/edge-canary-lab")


def keys_dir(s: LabSettings) -> Path:
    return KEYS_ROOT / s.link_prefix()


def make_keys_dir(s: LabSettings) -> list[str]:
    """The lab's authorized_keys folder: every folder above it root's and writable by root only."""
    made = []
    for folder, mode in ((KEYS_ROOT, 0o755), (keys_dir(s), 0o700)):
        if not folder.exists():
            folder.mkdir(mode=mode)
            made.append(f"keys folder {folder}")
        info = folder.lstat()
        if folder.is_symlink() or not folder.is_dir() or info.st_uid != 0:
            raise NetError(f"{folder} must be a folder of root's (sshd reads the lab's authorized_keys below it); "
                           "remove it and run lab-up again")
        if info.st_mode & 0o777 != mode:
            folder.chmod(mode)
    return made[-1:]


def check_subnet_free(s: LabSettings, bridge: str) -> None:
    """Refuse a subnet the machine already routes elsewhere: the lab must not capture anyone's traffic."""
    net = ipaddress.ip_network(s.subnet)
    for route in json.loads(ip("-j", "route", "show").stdout or "[]"):
        dst = route.get("dst", "")
        if dst == "default" or route.get("dev") == bridge:
            continue
        try:
            other = ipaddress.ip_network(dst, strict=False)
        except ValueError:
            continue
        if other.overlaps(net):
            raise NetError(f"LAB_SUBNET={s.subnet} overlaps {dst} (dev {route.get('dev')}) on this machine; "
                           "choose a subnet nothing else uses, e.g. LAB_SUBNET=10.213.7.0/24")


def up(s: LabSettings) -> list[str]:
    done: list[str] = heal_prometheus(s)
    record = read_record(s)
    bridge = f"{s.link_prefix()}-br"
    existing = links()
    if bridge in existing and record.get("bridge") != bridge:
        raise NetError(f"a link named {bridge} exists but this lab did not make it; remove it or use another LAB_DIR")
    check_subnet_free(s, bridge)
    wanted = plan(s)
    made: dict[str, dict[str, str]] = dict(record.get("nodes", {}))

    for name in sorted(set(made) - set(wanted)):  # the lab shrank
        remove_node(made.pop(name))
        done.append(f"removed {name}")
    record.update(prefix=s.link_prefix(), subnet=s.subnet, bridge=bridge, nodes=made, keys_dir=str(keys_dir(s)))
    write_record(s, record)  # before making anything, so down finds even a half-made lab
    done += make_keys_dir(s)

    host_cidr = f"{s.host_address()}/{ipaddress.ip_network(s.subnet).prefixlen}"
    if bridge not in existing:
        ip("link", "add", bridge, "type", "bridge")
        no_ipv6(bridge)
        done.append(f"bridge {bridge}")
    addrs = json.loads(ip("-j", "addr", "show", "dev", bridge).stdout)[0].get("addr_info", [])
    if not any(f"{a['local']}/{a['prefixlen']}" == host_cidr for a in addrs):
        ip("addr", "add", host_cidr, "dev", bridge)
        done.append(f"{bridge} {host_cidr}")
    if "UP" not in (links()[bridge].get("flags") or []):
        ip("link", "set", bridge, "up")

    present = namespaces()
    for name, node in wanted.items():
        made[name] = node
        write_record(s, record)
        if not node_complete(node, present, s):
            remove_node(node)
            make_node(node, bridge, s)
            done.append(f"{name} {node['address']} in {node['netns']}")
        elif "UP" not in (links()[node["veth"]].get("flags") or []):
            ip("link", "set", node["veth"], "up")
            done.append(f"{name} healed (its link was down)")
    return done


def node_complete(node: dict[str, str], present: set[str], s: LabSettings) -> bool:
    if node["netns"] not in present or node["veth"] not in links():
        return False
    inside = ip("-n", node["netns"], "-j", "addr", "show", check=False)
    if inside.returncode != 0:
        return False
    cidr = f"{node['address']}/{ipaddress.ip_network(s.subnet).prefixlen}"
    have = {f"{a['local']}/{a['prefixlen']}" for link in json.loads(inside.stdout) for a in link.get("addr_info", [])
            if "UP" in link.get("flags", [])}
    return cidr in have and "127.0.0.1/8" in have


def no_ipv6(link: str, netns: str | None = None) -> None:
    """IPv4 on the lab's subnet only: no IPv6 link-local chatter (router solicitations, MLD) either."""
    argv = ["sysctl", "-qw", f"net.ipv6.conf.{link}.disable_ipv6=1"]
    done = subprocess.run(["ip", "netns", "exec", netns, *argv] if netns else argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise NetError(f"could not turn IPv6 off on {link}: {done.stderr.strip()}")


def make_node(node: dict[str, str], bridge: str, s: LabSettings) -> None:
    ns, veth, peer = node["netns"], node["veth"], node["peer"]
    ip("netns", "add", ns)
    no_ipv6("all", ns)
    no_ipv6("default", ns)
    ip("link", "add", veth, "type", "veth", "peer", "name", peer)
    no_ipv6(veth)
    ip("link", "set", peer, "netns", ns)
    ip("link", "set", veth, "master", bridge)
    ip("link", "set", veth, "up")
    ip("-n", ns, "link", "set", "lo", "up")
    ip("-n", ns, "addr", "add", f"{node['address']}/{ipaddress.ip_network(s.subnet).prefixlen}", "dev", peer)
    ip("-n", ns, "link", "set", peer, "up")


def stop_processes(ns: str) -> int:
    """Every process inside the namespace (sshd sessions too, whose command lines name no lab path)."""
    pids = [int(p) for p in ip("netns", "pids", ns, check=False).stdout.split()]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and ip("netns", "pids", ns, check=False).stdout.split():
        time.sleep(0.1)
    for left in ip("netns", "pids", ns, check=False).stdout.split():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(left), signal.SIGKILL)
    return len(pids)


def remove_node(node: dict[str, str]) -> None:
    if node["netns"] in namespaces():
        stop_processes(node["netns"])
        ip("netns", "del", node["netns"])
    # The veth goes with the namespace, a moment after `netns del` returns (or never, if the namespace was
    # never made): a failed del is an error only while the link is still there.
    if node["veth"] in links():
        deleted = ip("link", "del", node["veth"], check=False)
        if deleted.returncode != 0 and node["veth"] in links():
            raise NetError(f"ip link del {node['veth']}: {deleted.stderr.strip()}")


def down(s: LabSettings) -> list[str]:
    done = heal_prometheus(s)
    record = read_record(s)
    if not record:
        return done
    nodes: dict[str, dict[str, str]] = record.get("nodes", {})
    for name, node in sorted(nodes.items()):
        remove_node(node)
        done.append(f"removed {name} ({node['netns']})")
    bridge = str(record.get("bridge", ""))
    if bridge and bridge in links():
        ip("link", "del", bridge)
        done.append(f"removed bridge {bridge}")
    keys = Path(str(record.get("keys_dir", "")))
    if keys.parent == KEYS_ROOT and keys.is_dir():
        shutil.rmtree(keys)
        done.append(f"removed keys folder {keys}")
    record_path(s).unlink()
    return done


def set_link(s: LabSettings, node: str, state: str) -> str:
    nodes: dict[str, dict[str, str]] = read_record(s).get("nodes", {})
    if node not in nodes:
        raise NetError(f"{node} is not a node of the hosts-mode lab in {s.lab_dir} "
                       f"(nodes: {', '.join(nodes) or 'none; make lab-up LAB_MODE=hosts first'})")
    ip("link", "set", nodes[node]["veth"], state)
    return f"{node}: link {nodes[node]['veth']} {state}"


def nft(script: str) -> None:
    try:
        done = subprocess.run(["nft", "-f", "-"], input=script, capture_output=True, text=True)
    except FileNotFoundError:
        raise NetError("nft is not installed (Debian package nftables; make setup installs it)") from None
    if done.returncode != 0:
        raise NetError(f"nft: {done.stderr.strip()}")


def prometheus_table(s: LabSettings) -> str:
    return f"{s.link_prefix()}_prometheus_cut"


def drop_table(table: str) -> str:
    """nft lines that remove the table whether or not it exists (declaring it first makes the delete safe)."""
    return f"table inet {table} {{}}\ndelete table inet {table}\n"


def cut_prometheus(s: LabSettings) -> list[str]:
    """Drop what this machine sends to the lab's Prometheus (it listens on 127.0.0.1 in either mode)."""
    table = prometheus_table(s)
    record = read_record(s)
    record["prometheus_cut"] = table
    write_record(s, record)  # first, so heal and down find the rule even if we die right after adding it
    nft(drop_table(table)  # replace a leftover rule, never stack two
        + f"table inet {table} {{\n  chain out {{\n    type filter hook output priority 0; policy accept;\n"
        f"    ip daddr 127.0.0.1 tcp dport {s.prom_port} drop\n  }}\n}}\n")
    return [f"Prometheus at 127.0.0.1:{s.prom_port} cut off (nft table inet {table} drops what is sent to it)"]


def nft_tables() -> set[str]:
    """The names of the kernel's nft tables; none when nft is missing or may not be read (no cut to heal)."""
    try:
        done = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True)
    except FileNotFoundError:
        return set()
    return {line.split()[-1] for line in done.stdout.splitlines() if line.startswith("table ")}


def heal_prometheus(s: LabSettings) -> list[str]:
    record = read_record(s)
    # The kernel is asked too: a lab folder removed during a cut loses its record, not the rule, and a new
    # lab at the same path (the same table name) could never reach its Prometheus.
    ours = prometheus_table(s)
    table = record.pop("prometheus_cut", None) or (ours if ours in nft_tables() else None)
    if not table:
        return []
    nft(drop_table(table))
    write_record(s, record)
    return [f"Prometheus at 127.0.0.1:{s.prom_port} reachable again (nft table inet {table} removed)"]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    usage = "usage: lab-netns up | down | cut NODE | heal NODE | cut-prometheus | heal-prometheus"
    arity = {"up": 1, "down": 1, "cut": 2, "heal": 2, "cut-prometheus": 1, "heal-prometheus": 1}
    if not argv or arity.get(argv[0]) != len(argv):
        print(usage, file=sys.stderr)
        return 64
    try:
        s = load()
        if argv[0] == "up":
            if s.mode != "hosts":
                raise NetError("the lab is in loopback mode: its nodes have no namespaces (LAB_MODE=hosts)")
            lines = up(s)
        elif argv[0] == "down":
            lines = down(s)
        elif argv[0] == "cut-prometheus":
            if s.mode != "hosts":
                raise NetError("partitions are drilled on the hosts-mode lab (LAB_MODE=hosts)")
            lines = cut_prometheus(s)
        elif argv[0] == "heal-prometheus":
            lines = heal_prometheus(s)
        else:
            lines = [set_link(s, argv[1], "down" if argv[0] == "cut" else "up")]
    except (SettingsError, NetError) as err:
        print(f"lab-netns: {err}", file=sys.stderr)
        return 1
    for line in lines:
        print(f"lab-netns: {line}")
    if not lines:
        print("lab-netns: nothing to do")
    return 0

