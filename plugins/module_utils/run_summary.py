"""How a deploy, rollback or rollout ended: the lines and the JSON summary printed at its end.

The same for every engine: the edge.canary.run_summary callback prints them at the end of a plain
ansible-playbook, ansible-runner or AWX run, and `edge-canary` (edge_canary/ops/play.py) builds
them from ansible-runner's events. Both feed a RunRecord with what the play reported (the record
folder it announced as a fact, the refused input, each failure) and the play's per-host stats.

A deploy's table comes from its record folder (runs/<deploy id>/): deploy.json (what was asked),
nodes/<node>.json (what each node went through), verdict.json (the watcher's verdict, when it
ran); a rollout's from result.json. Standard library only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SUMMARY_PREFIX = "EDGE_CANARY_SUMMARY "
# The facts that announce a run's record folder, and the kind of run each names.
RUN_DIR_FACTS = {"deploy_run_dir": "deploy", "rollout_run_dir": "rollout"}
# What the edge.canary.node_release revert entry point notes on each node (its argument spec says so).
REVERT_FACTS = ("node_release_revert_needed", "node_release_reverted_from", "node_release_after",
                "node_release_config_restored", "node_release_kept_in_maint", "node_release_not_reached_by")
# The steps of a roll (node_release's node_release_steps) after which the node is out of rotation until
# its ready+lb: where an interrupted roll stopped tells whether it left the node drained.
OUT_OF_ROTATION_AFTER = ("drain", "push", "restart+health")


def load_record(path: Path) -> dict[str, Any]:
    """A JSON object record; {} when it is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _durations(steps: list[dict[str, Any]]) -> str:
    parts = []
    for earlier, later in zip(steps, steps[1:], strict=False):
        try:
            parts.append(f"{later['step']} {float(later['at']) - float(earlier['at']):.1f}s")
        except (KeyError, TypeError, ValueError):
            continue
    return ", ".join(parts) or "-"


def release_name(release: Mapping[str, Any] | None) -> str:
    """A release's version, or its sha256 prefix when the node's record does not know the version."""
    if not release or not release.get("sha256"):
        return "-"
    return str(release.get("version") or f"sha256:{str(release['sha256'])[:12]}")


def shown(value: Any) -> str:
    return "(absent)" if value is None else str(value)


def restored_keys_text(change: Any) -> str:
    """'; config rollout_pct 40 -> 0' for the keys a revert's restored config changed ('' for none)."""
    if not isinstance(change, Mapping) or not isinstance(change.get("set"), Mapping):
        return ""
    before = change.get("before")
    before = before if isinstance(before, Mapping) else {}
    keys = [f"{key} {shown(before.get(key))} -> {shown(value)}" for key, value in change["set"].items()]
    return f"; config {', '.join(keys)}" if keys else ""


def failure_lines(failures: list[dict[str, str]]) -> list[str]:
    """The first five failures, one indented line each: `  host: task: message`."""
    return [f"  {f['host']}: {f['task']}: {f['msg']}" for f in failures[:5]]


def kept_in_maint_text(lbs: Any) -> str:
    """'; left in maintenance on lb-2 as found' for the load balancers where a revert found the node in
    someone's maintenance and left it there ('' for none)."""
    if not isinstance(lbs, list) or not lbs:
        return ""
    return f"; left in maintenance on {', '.join(map(str, lbs))} as found"


def wave_gates(run_dir: Path) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Each later wave (deploy.json's waves after the first) and its canary's verdict (wave-<n>/verdict.json)."""
    waves = load_record(run_dir / "deploy.json").get("waves") or []
    return [(wave, load_record(run_dir / f"wave-{wave.get('wave')}" / "verdict.json"))
            for wave in waves[1:] if isinstance(wave, dict)]


def last_gate(run_dir: Path) -> tuple[str, dict[str, Any]]:
    """The canary and verdict of the deploy's last SLI gate that judged: its latest wave's once one did
    (waves across points of presence), else its first canary's ({} when none has)."""
    for wave, verdict in reversed(wave_gates(run_dir)):
        if verdict.get("verdict"):
            return str(wave.get("canary") or "?"), verdict
    return str(load_record(run_dir / "deploy.json").get("canary") or "?"), load_record(run_dir / "verdict.json")


def after_hold(run_dir: Path, deploy: Mapping[str, Any]) -> list[str]:
    """What the operator decides when the last gate held: the canary was not blamed and stays on the release."""
    canary, verdict = last_gate(run_dir)
    if verdict.get("verdict") != "hold" or deploy.get("check_mode"):
        return []
    deploy_id = deploy.get("deploy_id", run_dir.name)
    return [f"Held: {canary} stays on {deploy.get('version', '?')}, in rotation, and nothing after it rolled. "
            f"Decide: make resume DEPLOY_ID={deploy_id} (a fresh SLI gate, then the rest) "
            f"or make rollback NODES={canary}"]


def interrupted_at(steps: list[Any]) -> str:
    """How far an interrupted roll got, from the steps the play noted: '' when it did not start."""
    last = steps[-1].get("step") if len(steps) > 1 and isinstance(steps[-1], Mapping) else None
    if not last:
        return ""
    return f"interrupted after {last}" + (", not put back in rotation" if last in OUT_OF_ROTATION_AFTER else "")


def node_rows(run_dir: Path, live_steps: Mapping[str, list[Any]] | None = None) -> list[dict[str, str]]:
    """One row per node from the record folder; live_steps: the steps each roll noted in this run, for a
    node whose record the play never finished (an interrupted run)."""
    deploy = load_record(run_dir / "deploy.json")
    canary = deploy.get("canary")
    verdicts = {canary: load_record(run_dir / "verdict.json")}
    roles = {canary: "canary"}
    for wave, verdict in wave_gates(run_dir):
        verdicts[wave.get("canary")] = verdict
        roles[wave.get("canary")] = f"wave {wave.get('wave')} canary"
    rows = []
    for node in ([canary] if canary else []) + list(deploy.get("peers", [])):
        record = load_record(run_dir / "nodes" / f"{node}.json")
        before = release_name(record.get("before"))
        steps = record.get("steps") or (live_steps or {}).get(node) or []
        result = record.get("result", "not started")
        if result == "not started":  # as preflight wrote it: the roll never finished its record
            result = interrupted_at(steps) or result
        if result in ("ok", "already on the release"):
            after = record.get("release", "?")
        elif record.get("reverted_to"):
            after = release_name(record["reverted_to"])
        elif result == "failed":
            after = f"{record.get('release', '?')} (out of rotation)"
        elif result.startswith("interrupted") and any(step.get("step") == "push" for step in steps):
            after = str(deploy.get("version") or "?")
        else:
            after = before
        if verdicts.get(node, {}).get("verdict") == "reverted":
            why = str(verdicts[node].get("reason") or "")
            after, result = before, (f"reverted by the SLI watcher: {why}" if why.startswith("aborted by ")
                                     else "reverted by the SLI watcher")
        if result == "left alone":  # someone put it in maintenance after preflight: the roll left it there
            lbs = ", ".join(map(str, record.get("kept_in_maint") or [])) or "?"
            result = f"left alone: put in maintenance on {lbs} during the deploy (not rolled)"
        if result == "failed" and record.get("error"):
            result = f"failed: {record['error']}"
        if result == "ok" and deploy.get("check_mode"):
            result = "would be rolled"  # as a rollback's check mode says "would be rolled back"
        if result in ("ok", "already on the release", "would be rolled"):  # rolled, or not needed, all the same
            result += kept_in_maint_text(record.get("kept_in_maint"))
        rows.append(
            {
                "node": node,
                "role": roles.get(node, "peer"),
                "before": before,
                "after": after,
                "steps": _durations(steps),
                "result": result,
            }
        )
    for node, lbs in (deploy.get("left_out") or {}).items():  # preflight found them in maintenance
        rows.append({"node": node, "role": "peer", "before": "-", "after": "-", "steps": "-",
                     "result": f"left alone: in maintenance on {', '.join(lbs)} (not rolled)"})
    return rows


def approved(gate_dir: Path, what: str) -> list[str]:
    """Who let the peers roll after a gate waited for approval, and when (an abort, or a revert while
    waiting, is already the gate verdict's reason)."""
    record = load_record(gate_dir / "approval.json")
    if record.get("state") != "approved":
        return []
    return [f"{what}: {record.get('reason') or 'approved'} at {record.get('decided_at') or '?'}"]


def summary_table(run_dir: Path, live_steps: Mapping[str, list[Any]] | None = None) -> str:
    deploy = load_record(run_dir / "deploy.json")
    verdict = load_record(run_dir / "verdict.json")
    rows = node_rows(run_dir, live_steps)
    check = " — CHECK MODE, nothing changed" if deploy.get("check_mode") else ""
    version, sha256 = str(deploy.get("version", "?")), str(deploy.get("sha256", "?"))[:12]
    # A build with no embedded version is already named by its sha256 prefix: say it once.
    release = version if version == f"sha256:{sha256}" else f"{version} (sha256 {sha256})"
    lines = [f"\nDeploy {deploy.get('deploy_id', run_dir.name)} of {release}{check}"]
    if verdict:
        lines.append(f"SLI verdict: {str(verdict.get('verdict')).upper()} — {verdict.get('reason', '')}")
    lines += approved(run_dir, "Approval")
    for wave, wave_verdict in wave_gates(run_dir):
        if wave_verdict:
            lines.append(f"SLI verdict of wave {wave.get('wave')} ({wave.get('pop')}, canary {wave.get('canary')}): "
                         f"{str(wave_verdict.get('verdict')).upper()} — {wave_verdict.get('reason', '')}")
            lines += approved(run_dir / f"wave-{wave.get('wave')}", f"Approval of wave {wave.get('wave')}")
    lines += after_hold(run_dir, deploy)
    lines += table(rows)
    lines.append(f"Record: {run_dir}")
    return "\n".join(lines)


def rollout_summary(run_dir: Path) -> str:
    """How each stage ended, from the rollout's result.json."""
    result = load_record(run_dir / "result.json")
    if not result:
        return f"rollout: no result in {run_dir} (the play stopped early; see its output above)"
    check = bool(result.get("check_mode"))
    lines = ["", f"rollout {result.get('rollout_id')}{' — CHECK MODE, nothing changed' if check else ''}:"]
    for stage in result.get("stages", []):
        why = f" - {stage['reason']}" if stage.get("reason") else ""
        if stage.get("verdict") == "would be watched":  # check mode: the watcher is not started
            lines.append(f"  stage {stage.get('stage')}: {stage.get('pct')} % would be held {stage.get('hold')} s "
                         "and watched")
            continue
        held = "" if stage.get("verdict") == "not watched" else f" held {stage.get('hold')} s"  # nor held
        lines.append(f"  stage {stage.get('stage')}: {stage.get('pct')} %{held} -> {stage.get('verdict')}{why}")
    stopped = result.get("stopped")
    if stopped:
        lines.append(f"  STOPPED at {stopped.get('pct')} % ({stopped.get('verdict')})")
    failed = [str(node) for node in result.get("failed_nodes") or []]
    but = f" but {', '.join(failed)} (failed: see above)" if failed else ""
    lines.append(f"  every node{but} {'would be' if check else 'now'} at rollout_pct={result.get('rollout_pct')}; "
                 f"records in {run_dir}")
    return "\n".join(lines)


def table(rows: list[dict[str, str]]) -> list[str]:
    """Rows of the same keys as aligned text lines, a header line first ([] without rows)."""
    if not rows:
        return []
    widths = {key: max(len(key), *(len(row[key]) for row in rows)) for key in rows[0]}
    return ["  ".join(key.ljust(widths[key]) for key in rows[0]).rstrip(),
            *("  ".join(row[key].ljust(widths[key]) for key in row).rstrip() for row in rows)]


def failed_items(result: Mapping[str, Any]) -> str:
    """A loop's failed items, each with its message ('lb-2: cannot connect …'): Ansible's own message for
    the task is only 'One or more items failed'."""
    items = [item for item in result.get("results") or [] if isinstance(item, Mapping) and item.get("failed")]
    return "; ".join(f"{item.get('_ansible_item_label', item.get('item'))}: "
                     f"{item.get('msg') or item.get('stderr') or 'failed'}" for item in items)


def failure_reason(result: Mapping[str, Any]) -> str:
    """What a failed task says went wrong: its failed items' messages for a loop, else its own."""
    return failed_items(result) or str(result.get("msg") or result.get("stderr") or result.get("reason") or "failed")


def _first_line(value: Any) -> str:
    text = " ".join(str(value or "").split())
    return text if len(text) <= 400 else text[:397] + "..."


class RunRecord:
    """What a run reported, gathered from its task results as they come."""

    def __init__(self) -> None:
        self.kind = ""  # deploy | rollback | rollout (from the operator_inputs task)
        self.run_id = ""
        self.run_dir: Path | None = None
        self.refused = ""
        self.failures: list[dict[str, str]] = []
        self.steps: dict[str, list[Any]] = {}  # each host's node_release_steps as last noted
        self.check_mode = False
        self.plan: list[str] = []  # a rollback's nodes, in order (rollback.yml's rollback_plan)
        self.reverts: dict[str, dict[str, Any]] = {}  # each node's REVERT_FACTS as noted

    def ok(self, result: Mapping[str, Any], host: str = "") -> None:
        """A task's result on one host (an ok, or a failure ignored)."""
        if result.get("edge_canary_request"):
            self.kind = str(result["edge_canary_request"])
            self.run_id = str(result.get("run_id") or self.run_id)
            self.check_mode = bool(result.get("edge_canary_check_mode"))
        items = result.get("results")
        for facts in [result.get("ansible_facts")] + [
            item.get("ansible_facts") for item in items or [] if isinstance(item, Mapping)
        ]:
            if not isinstance(facts, Mapping):
                continue
            for fact, kind in RUN_DIR_FACTS.items():
                if facts.get(fact):
                    self.run_dir = Path(str(facts[fact]))
                    self.kind = self.kind or kind
            if host and isinstance(facts.get("node_release_steps"), list):
                self.steps[host] = facts["node_release_steps"]
            if isinstance(facts.get("rollback_plan"), list):
                self.plan = [str(node) for node in facts["rollback_plan"]]
            if host:
                self.reverts.setdefault(host, {}).update((k, facts[k]) for k in REVERT_FACTS if k in facts)

    def failed(self, host: str, task: str, result: Mapping[str, Any]) -> None:
        """A task that failed on `host` (not ignored)."""
        msg = _first_line(failure_reason(result))
        if result.get("refused"):
            self.kind = str(result.get("edge_canary_request") or self.kind)
            self.refused = msg
        self.failures.append({"host": host, "task": task, "msg": msg})

    def rollback_rows(self) -> list[dict[str, str]]:
        """One row per node of a rollback's plan: what it ran before, runs now, and how its revert ended."""
        failed = {f["host"]: f["msg"] for f in self.failures}  # each host's last failure says the most
        rows = []
        for node in self.plan:
            facts = self.reverts.get(node, {})
            before = release_name(facts.get("node_release_reverted_from"))
            if node in failed and self.revert_started(node):
                after, result = "?", f"failed: {failed[node]}"
            elif "node_release_after" in facts:
                after = release_name(facts["node_release_after"])
                needed = str(facts.get("node_release_revert_needed")).lower() in ("true", "1")
                result = "already on its last-known-good" if not needed else (
                    "would be rolled back" if self.check_mode else "rolled back")
                if not needed and facts.get("node_release_not_reached_by"):
                    result += f": deploy {facts['node_release_not_reached_by']} never reached it"
                result += restored_keys_text(facts.get("node_release_config_restored"))
                result += kept_in_maint_text(facts.get("node_release_kept_in_maint"))
            elif "node_release_reverted_from" in facts:  # read, then the run stopped before it was back
                after, result = "?", "not finished: may be out of rotation"
            else:
                after, result = before, "not started"
            rows.append({"node": node, "before": before, "after": after, "result": result})
        return rows

    def revert_started(self, host: str) -> bool:
        """The node's revert read it (revert.yml's first facts): a failure since is its revert's."""
        return host in self.plan and "node_release_reverted_from" in self.reverts.get(host, {})

    def status(self, hosts: Mapping[str, Mapping[str, int]], interrupted: bool = False) -> str:
        if self.refused:
            return "refused"
        if interrupted:
            return "interrupted"
        bad = any(counts.get("failures") or counts.get("unreachable") for counts in hosts.values())
        return "failed" if bad or self.failures else "successful"

    def summary(self, hosts: Mapping[str, Mapping[str, int]], interrupted: bool = False) -> dict[str, Any]:
        """The JSON summary: what ran, how it ended, each node's outcome, the failures."""
        data: dict[str, Any] = {
            "kind": self.kind or "play",
            "id": self.run_id or None,
            "status": self.status(hosts, interrupted),
            "record": str(self.run_dir) if self.run_dir else None,
        }
        if self.refused:
            data["refused"] = self.refused
        if self.kind == "deploy" and self.run_dir is not None:
            verdict = load_record(self.run_dir / "verdict.json")
            data["verdict"] = verdict.get("verdict")
            data["nodes"] = node_rows(self.run_dir, self.steps)
            waves = wave_gates(self.run_dir)
            if waves:
                data["waves"] = [{"wave": wave.get("wave"), "pop": wave.get("pop"), "canary": wave.get("canary"),
                                  "verdict": verdict.get("verdict")} for wave, verdict in waves]
        if self.kind == "rollback" and self.plan:
            data["nodes"] = self.rollback_rows()
        if self.kind == "rollout" and self.run_dir is not None:
            result = load_record(self.run_dir / "result.json")
            data.update(
                stages=result.get("stages", []), stopped=result.get("stopped"), rollout_pct=result.get("rollout_pct")
            )
        data["failures"] = self.failures[:20]
        data["hosts"] = {host: dict(counts) for host, counts in sorted(hosts.items())}
        return data

    def lines(self, hosts: Mapping[str, Mapping[str, int]], interrupted: bool = False) -> str:
        """The human summary, then one `EDGE_CANARY_SUMMARY {json}` line."""
        data = self.summary(hosts, interrupted)
        text = []
        if self.refused:
            text.append(f"{self.kind or 'play'}: refused: {self.refused}")
        elif self.kind == "deploy" and self.run_dir is not None and not (self.run_dir / "deploy.json").exists():
            # deploy.json is written once preflight's control-host checks passed and the lock is held
            text += ["", f"Deploy {self.run_id}: stopped in preflight, before anything changed",
                     *failure_lines(self.failures)]
        elif self.kind == "deploy" and self.run_dir is not None:
            text.append(summary_table(self.run_dir, self.steps))
        elif self.kind == "rollout" and self.run_dir is not None and (self.run_dir / "result.json").exists():
            text.append(rollout_summary(self.run_dir))
        elif self.kind == "rollout" and self.run_dir is not None:  # stopped before its end: say where and why
            text += ["", f"rollout {self.run_id or self.run_dir.name}: {data['status']} before its end "
                         f"(no result in {self.run_dir})", *failure_lines(self.failures)]
        elif self.kind == "rollback" and self.plan:
            check = " — CHECK MODE, nothing changed" if self.check_mode else ""
            text += ["", f"Rollback {self.run_id}: {data['status']}{check}", *table(data["nodes"])]
            # Not a node's revert: before the plan, or a run-wide step a node ran (the lock, a refusal)
            text += failure_lines([f for f in self.failures if not self.revert_started(f["host"])])
        else:
            text += [f"{self.kind or 'play'}: {data['status']}", *failure_lines(self.failures)]
        text.append(SUMMARY_PREFIX + json.dumps(data, sort_keys=True))
        return "\n".join(text)
