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


def run_python(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=60, env=env, check=False)


def test_the_operator_commands_import_the_collection_without_ansible_configuration() -> None:
    result = run_python("""
        import sys
        import edge_canary.ops.rollout
        from edge_canary.ops.inputs import rules
        print(rules.__name__, "ansible.constants" in sys.modules)
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ansible_collections.edge.canary.plugins.module_utils.operator_inputs", "False"]


def test_without_the_repository_link_the_collection_comes_from_ansible_collection_paths(tmp_path: Path) -> None:
    # As in an execution environment: no collections/ beside the package, the collection where
    # ansible-galaxy installs it (ANSIBLE_COLLECTIONS_PATH here: the repository's own link).
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(REPO_ROOT / "collections")}
    result = run_python(f"""
        import sys
        from pathlib import Path
        from watcher import drain
        drain.REPO_ROOT = Path({str(tmp_path)!r})
        module = drain.module_utils("operator_inputs")
        print(module.__name__, "ansible.constants" in sys.modules)
    """, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ansible_collections.edge.canary.plugins.module_utils.operator_inputs", "True"]


def test_without_any_copy_of_the_collection_the_import_fails_plainly(tmp_path: Path) -> None:
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(tmp_path / "none")}
    result = run_python(f"""
        from pathlib import Path
        from watcher import drain
        drain.REPO_ROOT = Path({str(tmp_path)!r})
        drain.module_utils("operator_inputs")
    """, env=env)
    assert result.returncode != 0
    assert "ModuleNotFoundError" in result.stderr
