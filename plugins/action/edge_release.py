"""Action plugin: copy the artifact given as `src` to the node, then run the edge_release module on it.

A push used to be `ansible.builtin.copy` to the node's staging folder (two module runs: a remote stat,
then the copy) followed by the module run that installs it. This makes the staging folder, transfers the
file into it (no module run) and hands it to the module as `staged` (or `rollback_binary` for a revert):
one module run per node. The module removes the staged file once installed; after a failure this removes
the staging folder (or whatever was in its way, as the copy's clean-up task did). The sha256 the node
must find is computed here, on the control host, when the task does not give it. The paths and the
binary's name are checked here before the copy, by the module's own rules (a relative install_dir would
put the staging folder somewhere else). Check mode copies nothing and leaves `src` to the module, which
notes it. Without `src` the module runs exactly as called.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.edge.canary.plugins.module_utils.release_plan import ReleaseError, check_names, check_path_name

STAGED_OPTION = {"pushed": "staged", "reverted": "rollback_binary"}


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as artifact:
        for chunk in iter(lambda: artifact.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class ActionModule(ActionBase):
    TRANSFERS_FILES = True

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        src, staging_dir = args.pop("src", None), args.pop("staging_dir", None)
        if not src:
            result.update(self._execute_module(module_args=args, task_vars=task_vars))
            return result
        option = STAGED_OPTION.get(args.get("state", "inspected"))
        if option is None:
            raise AnsibleActionFail("edge_release: src is only for state=pushed or state=reverted")
        if not isinstance(src, str) or not os.path.isfile(src) or not os.access(src, os.R_OK):
            what = "the artifact" if option == "staged" else "the rollback binary"
            advice = "" if option == "staged" else "; give a known-good edge binary"
            raise AnsibleActionFail(
                f"edge_release: {what} {src!r} (src) is not a readable file on the control host{advice}")
        if not staging_dir:
            raise AnsibleActionFail("edge_release: src needs staging_dir, an absolute folder on the node")
        try:  # the module refuses these too, but only once the copy is on the node
            check_names(args)
            check_path_name("staging_dir", staging_dir)
        except ReleaseError as bad:
            raise AnsibleActionFail(f"edge_release: {bad}; nothing was copied to the node") from None
        if not args.get("sha256"):
            args["sha256"] = file_sha256(src)
        if self._task.check_mode:
            result.update(self._execute_module(module_args={**args, "src": src}, task_vars=task_vars))
            return result
        shell = self._connection._shell
        staged = shell.join_path(staging_dir, os.path.basename(src))
        installed = False
        try:
            made = self._low_level_execute_command(f"umask 077 && mkdir -p {shell.quote(staging_dir)}")
            if made["rc"] != 0:
                why = (made.get("stderr") or made.get("stdout") or "").strip()
                raise AnsibleActionFail(f"edge_release: cannot make the staging folder {staging_dir} on the node "
                                        f"({why}); removed what was in its way, re-run")
            self._transfer_file(src, staged)
            result.update(self._execute_module(module_args={**args, option: staged, "remove_staged": True},
                                               task_vars=task_vars))
            installed = not result.get("failed")
        finally:
            if not installed:
                self._low_level_execute_command(shell.remove(staging_dir, recurse=True))
        return result
