"""What the controller-side actions share: the project's own Python (edge_canary), run in-process.

deploy_event and deploy_lock call edge_canary.ops code in the controller instead of starting a command
module run for it. The collection cannot ship that package, so a controller without it fails the task
in one line that says how to install it.
"""

from __future__ import annotations

import contextlib
import importlib
import io
from collections.abc import Callable
from types import ModuleType

from ansible.errors import AnsibleActionFail


def ops_module(action: str, name: str) -> ModuleType:
    """edge_canary.ops.<name>, or the task's one-line failure naming the action."""
    try:
        return importlib.import_module(f"edge_canary.ops.{name}")
    except ImportError as exc:
        raise AnsibleActionFail(
            f"{action}: the controller's Python cannot import edge_canary ({exc}); "
            "install the project into the environment that runs ansible-playbook"
        ) from exc


def run_captured(call: Callable[[], int]) -> tuple[int, str, str]:
    """call()'s return code with what it printed, as a command's rc, stdout and stderr.

    argparse's SystemExit (a value the command does not take) is a return code too, 64 if it has none.
    """
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = call()
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else 64
    return rc, out.getvalue(), err.getvalue()
