"""Action plugin: write a small text file on the control host, in the controller process itself.

The deploy record's files live on the control host. `ansible.builtin.copy` delegated to localhost
costs two module runs (a remote stat, then the copy: two new Python processes) per node and per
write; this writes the file directly (atomic rename), whatever the task's host or connection is.
Arguments as copy's: dest, content, mode; make_dirs creates the file's folder; state=absent removes
dest instead, state=directory creates dest as a folder (mode, default 0755, and its parents), as the
file module's.
Check mode writes nothing (set check_mode: false to write).
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("dest", "content", "mode", "make_dirs", "state"))

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        dest, content = self._task.args.get("dest"), self._task.args.get("content")
        mode = str(self._task.args.get("mode", "0644"))
        if not isinstance(dest, str) or not os.path.isabs(dest):
            raise AnsibleActionFail(f"control_file: dest must be an absolute path on the control host, got {dest!r}")
        state = self._task.args.get("state", "file")
        if state not in ("file", "absent", "directory"):
            raise AnsibleActionFail(f"control_file: state must be file, absent or directory, got {state!r}")
        if state == "absent":
            return self._remove(result, dest)
        if state == "directory":
            return self._make_dir(result, dest, str(self._task.args.get("mode", "0755")))
        if isinstance(content, (int, float)) and not isinstance(content, bool):
            # "{{ now().timestamp() }}\n" renders to a float (Jinja's native types): its text, one line.
            content = f"{content}\n"
        if not isinstance(content, str):
            raise AnsibleActionFail("control_file: content must be a string (use to_nice_json for data)")
        try:
            mode_bits = int(mode, 8)
        except ValueError:
            raise AnsibleActionFail(f"control_file: mode {mode!r} is not an octal mode like '0644'") from None
        try:
            with open(dest, encoding="utf-8") as current:
                unchanged = current.read() == content
        except OSError:
            unchanged = False
        result.update(changed=not unchanged, dest=dest)
        if unchanged or self._task.check_mode:
            return result
        directory = os.path.dirname(dest)
        try:
            if boolean(self._task.args.get("make_dirs", False), strict=False):
                os.makedirs(directory, mode=0o755, exist_ok=True)
            fd, tmp_path = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(dest)}.")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as out:
                    out.write(content)
                os.chmod(tmp_path, mode_bits)
                os.replace(tmp_path, dest)
            except BaseException:
                os.unlink(tmp_path)
                raise
        except OSError as exc:
            raise AnsibleActionFail(f"control_file: cannot write {dest}: {exc.strerror or exc}; check the "
                                    f"folder exists and is writable on the control host") from exc
        return result

    def _remove(self, result: dict[str, Any], dest: str) -> dict[str, Any]:
        result.update(changed=os.path.lexists(dest), dest=dest)
        if result["changed"] and not self._task.check_mode:
            try:
                os.unlink(dest)
            except FileNotFoundError:
                result["changed"] = False
            except OSError as exc:
                raise AnsibleActionFail(f"control_file: cannot remove {dest}: {exc.strerror or exc}; check the "
                                        f"folder is writable on the control host") from exc
        return result

    def _make_dir(self, result: dict[str, Any], dest: str, mode: str) -> dict[str, Any]:
        try:
            mode_bits = int(mode, 8)
        except ValueError:
            raise AnsibleActionFail(f"control_file: mode {mode!r} is not an octal mode like '0755'") from None
        if os.path.isdir(dest):
            result.update(changed=False, dest=dest)
            return result
        result.update(changed=True, dest=dest)
        if self._task.check_mode:
            return result
        try:
            os.makedirs(dest, mode=0o755, exist_ok=True)
            os.chmod(dest, mode_bits)
        except OSError as exc:
            raise AnsibleActionFail(f"control_file: cannot create the folder {dest}: {exc.strerror or exc}; check "
                                    f"its parent is writable on the control host") from exc
        return result
