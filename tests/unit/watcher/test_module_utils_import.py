"""watcher.drain.module_utils: the collection's module_utils imported as Ansible names them, from the
repository's collections/ link without loading Ansible's configuration (every command pays for that),
and from Ansible's collection paths where there is no such link (an execution environment)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from watcher.drain import REPO_ROOT

OPERATOR_INPUTS = "ansible_collections.edge.canary.plugins.module_utils.operator_inputs"


def import_in_a_child(code: str, collections_path: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run `code` in a fresh Python (ANSIBLE_COLLECTIONS_PATH set when given); it prints what it imported."""
    env = {**os.environ, **({"ANSIBLE_COLLECTIONS_PATH": str(collections_path)} if collections_path else {})}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=60, env=env, check=False)


def without_the_link(repo_root: Path) -> str:
    """Code importing operator_inputs through watcher.drain with REPO_ROOT moved to a folder without collections/."""
    return f"""
        import sys
        from pathlib import Path
        from watcher import drain
        drain.REPO_ROOT = Path({str(repo_root)!r})
        module = drain.module_utils("operator_inputs")
        print(module.__name__, "ansible.constants" in sys.modules)
    """


def test_the_operator_commands_import_the_collection_without_ansible_configuration() -> None:
    result = import_in_a_child("""
        import sys
        import edge_canary.ops.rollout
        from edge_canary.ops.inputs import rules
        print(rules.__name__, "ansible.constants" in sys.modules)
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [OPERATOR_INPUTS, "False"]


def test_without_the_repository_link_the_collection_comes_from_ansible_collection_paths(tmp_path: Path) -> None:
    # As in an execution environment: no collections/ beside the package, the collection where
    # ansible-galaxy installs it (ANSIBLE_COLLECTIONS_PATH here: the repository's own link).
    result = import_in_a_child(without_the_link(tmp_path), REPO_ROOT / "collections")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [OPERATOR_INPUTS, "True"]


def test_without_any_copy_of_the_collection_the_import_fails_plainly(tmp_path: Path) -> None:
    result = import_in_a_child(without_the_link(tmp_path), tmp_path / "none")
    assert result.returncode != 0
    assert "ModuleNotFoundError" in result.stderr
