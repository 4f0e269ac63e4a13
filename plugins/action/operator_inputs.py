"""Action plugin: check a play's operator input (its extra vars) with the one schema, name the run.

The first task of deploy-canary.yml, rollback.yml and rollout.yml. The rules are
plugins/module_utils/operator_inputs.py, the same the on-call tools apply to the make variables; here
a value is named by its extra var (deploy_batch=x ...). Only extra vars are checked: they are what a
person (make, ansible-playbook -e, an AWX survey) gave; group_vars are the fleet's own settings.
A refused value fails the task with one line and `refused: true` (the edge-canary driver exits 64 on
it), before anything is written or taken. Runs in the controller process: no module run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.edge.canary.plugins.module_utils import operator_inputs as rules

Check = Callable[[str, str], object]
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")

# Extra vars the plays take besides the make variables' ones.
_RUN: dict[str, dict[str, Check]] = {
    "deploy": {
        "deploy_id": rules.run_id,
        "deploy_resume_of": rules.run_id,  # make resume: the held deploy this one resumes
        "deploy_announce_file": rules.path,
        "prom_url": rules.url_without_credentials,  # credentials go by environment only
    },
    "rollback": {"edge_canary_lock_id": rules.run_id},
    "rollout": {"rollout_id": rules.run_id, "rollout_announce_file": rules.path, "edge_canary_lock_id": rules.run_id},
}
# The extra vars a YAML list may give (the play reads the others as text).
_LISTS = ("rollout_stages",)
_FLAGS = {"deploy": ("force_lock", "force_migrate", "deploy_approval"), "rollback": ("force_lock",),
          "rollout": ("force_lock",)}


def _text(name: str, value: Any) -> str:
    """An extra var as the rules read it: a string, a number (or, for rollout_stages, a list of them)."""
    if isinstance(value, bool):
        raise rules.InputError(f"{name}={str(value).lower()} is not a value for {name}; give text or a number")
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    if (name in _LISTS and isinstance(value, list | tuple)
            and all(isinstance(v, str | int) and not isinstance(v, bool) for v in value)):
        return " ".join(str(v) for v in value)
    raise rules.InputError(f"{name} is a {type(value).__name__}, not a value; give text or a number"
                           + (", e.g. edge-2,edge-3" if name.endswith("nodes") else ""))


def _flag(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in _TRUE + _FALSE:
        raise rules.InputError(f"{name}={rules.shown(str(value))} is not true or false; e.g. {name}=true")
    return text in _TRUE


def _known_nodes(checked: Mapping[str, Any], edge: Sequence[str]) -> None:
    """Every node named (the canary, the peers, the nodes to roll back) is an edge node of the inventory:
    a mistyped name is the operator's input, refused like any other before anything is taken."""
    known = set(edge)
    some_of = ", ".join(edge[:5]) + (f", … ({len(edge)} edge nodes)" if len(edge) > 5 else "")
    for var, what in (("deploy_canary_node", "one of"), ("deploy_peer_nodes", "some of"),
                      ("rollback_nodes", "all or some of")):
        names = str(checked.get(var, "")).split(",")
        unknown = [name for name in names if name and name != "all" and name not in known]
        if unknown:
            named = "is" if unknown == names else f"names {', '.join(unknown)},"
            raise rules.InputError(f"{var}={rules.shown(checked[var])} {named} not an edge node of this inventory; "
                                   f"give {what} {some_of}")


def _batch_within_forks(checked: Mapping[str, Any], forks: int, edge_nodes: int | None = None) -> None:
    """A batch is drained at once (one run per load balancer) but Ansible works on `forks` hosts at a
    time: a bigger batch would keep its nodes out of rotation while they wait their turn. With `edge_nodes`
    (the inventory's), a batch counts only the nodes it can hold: the peers or the nodes named, and without
    MAX_UNAVAILABLE every edge node but one (with PoPs the plays drain fewer still: never looser)."""
    for var in ("deploy_batch", "rollback_batch"):
        if var not in checked:
            continue
        asked = f"{var}={checked[var]}"
        batch = int(checked[var])
        cap = checked.get("rollback_max_unavailable") if var == "rollback_batch" else None
        if cap is not None and int(cap) < batch:
            asked, batch = f"{asked} with rollback_max_unavailable={cap}", int(cap)
        if edge_nodes is not None:
            named = checked.get("deploy_peer_nodes" if var == "deploy_batch" else "rollback_nodes", "all")
            most = edge_nodes if cap is not None else edge_nodes - 1
            if named != "all":
                most = min(most, len(named.split(",")))
            if most < batch:
                asked, batch = f"{asked} on {edge_nodes} edge nodes", max(most, 1)
        if batch > forks:
            raise rules.InputError(
                f"{asked} drains {batch} nodes at once, more than this run's {forks} forks: they would be pushed "
                f"and restarted {forks} at a time, the rest waiting out of rotation; give a batch of at most "
                f"{forks}, or run with at least {batch} forks (ANSIBLE_FORKS, --forks, AWX's Forks)")


def check(request: str, given: Mapping[str, Any], forks: int | None = None,
          edge: Sequence[str] | None = None) -> dict[str, Any]:
    """The checked request: `checked` (extra var -> value as the play uses it) and `run_id`. With `edge`
    (the inventory's edge nodes) a node it does not hold is refused, and their count bounds what a batch
    drains; with `forks` (the run's, ansible_forks), a batch that drains more nodes than it at once is refused."""
    checks: dict[str, Check] = dict(rules.SCHEMAS.get(request, {}).values())
    checks.update(_RUN[request])
    checked: dict[str, Any] = {}
    for var, chk in checks.items():
        if var in given and given[var] is not None:
            text = _text(var, given[var])
            if text.strip():
                checked[var] = chk(var, text)
    for var in _FLAGS[request]:
        if var in given:
            checked[var] = _flag(var, given[var])
    if edge is not None:
        _known_nodes(checked, edge)
    if forks is not None:
        _batch_within_forks(checked, forks, None if edge is None else len(edge))
    out: dict[str, Any] = {"checked": checked}
    if request == "deploy":
        out["run_id"] = checked.get("deploy_id") or rules.new_deploy_id()
    elif request == "rollback":  # the watcher's runs inside its deploy's lock, named by it
        out["run_id"] = checked.get("edge_canary_lock_id") or rules.new_run_id("rollback")
    elif request == "rollout":
        pct = _text("rollout_pct", given.get("rollout_pct", "") if given.get("rollout_pct") is not None else "")
        stages = _text("rollout_stages", given.get("rollout_stages") or "")
        values, asked = rules.rollout_stages("rollout_pct", pct, "rollout_stages", stages)
        hold = rules.hold_seconds("rollout_hold", _text("rollout_hold", given.get("rollout_hold") or ""))
        out.update(
            run_id=checked.get("rollout_id") or rules.new_run_id("rollout"), stages=list(values), asked=asked, hold=hold
        )
    return out


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("request",))

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        request = self._task.args.get("request")
        if request not in _RUN:
            raise AnsibleActionFail(f"operator_inputs: request must be one of {', '.join(_RUN)}, got {request!r}")
        manager = self._task.get_variable_manager()
        given = manager.extra_vars if manager is not None else (task_vars or {})
        # For the run summary (run_summary callback, edge-canary).
        result.update(edge_canary_request=request, edge_canary_check_mode=bool(self._play_context.check_mode))
        try:
            edge = (task_vars or {}).get("groups", {}).get("edge")
            result.update(check(request, given, (task_vars or {}).get("ansible_forks"), edge), changed=False)
        except rules.InputError as exc:
            result.update(failed=True, refused=True, msg=f"{exc}; nothing was changed")
        return result
