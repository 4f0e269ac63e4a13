"""project_code: the project's own code run in-process by the controller-side actions."""

from __future__ import annotations

import sys

import pytest
from ansible.errors import AnsibleActionFail
from ansible_collections.edge.canary.plugins.plugin_utils.project_code import ops_module, run_captured


def test_the_ops_module_is_the_projects_own() -> None:
    from edge_canary.ops import notify

    assert ops_module("deploy_event", "notify") is notify


def test_a_controller_without_the_project_is_told_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "edge_canary.ops.lock", None)  # what a missing package raises: ImportError
    with pytest.raises(AnsibleActionFail) as failure:
        ops_module("deploy_lock", "lock")
    message = str(failure.value)
    assert message.startswith("deploy_lock: the controller's Python cannot import edge_canary")
    assert "install the project into the environment that runs ansible-playbook" in message
    assert "\n" not in message


def test_what_a_call_prints_and_returns_is_its_rc_stdout_and_stderr() -> None:
    def call() -> int:
        print("taken")
        print("a warning", file=sys.stderr)
        return 3

    assert run_captured(call) == (3, "taken\n", "a warning\n")


@pytest.mark.parametrize(("code", "rc"), [(2, 2), (None, 64), ("usage: bad value", 64)])
def test_an_argparse_exit_is_a_return_code_not_the_controllers_exit(code: object, rc: int) -> None:
    def call() -> int:
        print("usage: notify EVENT", file=sys.stderr)
        raise SystemExit(code)

    assert run_captured(call) == (rc, "", "usage: notify EVENT\n")
