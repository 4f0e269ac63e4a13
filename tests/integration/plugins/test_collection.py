"""The repository as the collection edge.canary: `ansible-galaxy collection build` makes a tarball that
installs, and ansible-doc renders every module and filter and lists the roles from the installed copy (not
from the checkout's collections/ link)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from tests.helpers.paths import REPO

BIN = Path(sys.executable).parent
MODULES = ("edge_release", "haproxy_server", "edge_service_health", "control_file", "haproxy_servers_info",
           "deploy_lock", "deploy_event")
# What the tarball must never carry: local state, the Python sources pip installs, the other tests.
LEFT_OUT = (".venv/", ".lab", ".git/", "collections/", "edge_canary/", "watcher/", "lab/", "scripts/",
            "tests/unit/", "tests/integration/", "tests/helpers/", "__pycache__/", "ansible.cfg")


def run(*cmd: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=300)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, str]]:
    """(tarball, collections path, environment that sees only that path)."""
    work = tmp_path_factory.mktemp("collection")
    collections = work / "collections"
    # No project ansible.cfg (cwd is the temp dir, ANSIBLE_* dropped): only the installed copy is found.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_") and k != "PYTHONPATH"}
    env.update({"ANSIBLE_COLLECTIONS_PATH": str(collections), "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false",
                "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCAL_TEMP": str(work / "tmp")})
    run(str(BIN / "ansible-galaxy"), "collection", "build", str(REPO), "--output-path", str(work / "dist"),
        env=env, cwd=work)
    (tarball,) = (work / "dist").glob("edge-canary-*.tar.gz")
    run(str(BIN / "ansible-galaxy"), "collection", "install", str(tarball), "-p", str(collections),
        env=env, cwd=work)
    return tarball, collections, env


def test_the_tarball_is_small_and_holds_the_collection_only(installed: tuple[Path, Path, dict[str, str]]) -> None:
    tarball, _, _ = installed
    with tarfile.open(tarball) as tar:
        names = [m.name + ("/" if m.isdir() else "") for m in tar.getmembers()]
    for module in MODULES:
        assert f"plugins/modules/{module}.py" in names
    assert "plugins/action/control_file.py" in names and "meta/runtime.yml" in names
    assert any(n.startswith("plugins/module_utils/") for n in names)
    assert any(n.startswith("roles/edge_release/") for n in names)
    shipped = [n for n in names if any(n.startswith(bad) or f"/{bad}" in n for bad in LEFT_OUT)]
    assert shipped == [], "build_ignore in galaxy.yml lets these through"
    assert tarball.stat().st_size < 1_000_000


@pytest.mark.parametrize("module", MODULES)
def test_ansible_doc_renders_every_module_from_the_installed_copy(
    installed: tuple[Path, Path, dict[str, str]], module: str
) -> None:
    _, collections, env = installed
    proc = run(str(BIN / "ansible-doc"), "--json", f"edge.canary.{module}", env=env, cwd=collections)
    doc = json.loads(proc.stdout)[f"edge.canary.{module}"]["doc"]
    assert doc["filename"].startswith(str(collections)), doc["filename"]
    assert doc["short_description"] and doc["options"]
    assert {"check_mode", "diff_mode", "platform"} <= set(doc["attributes"])
    text = run(str(BIN / "ansible-doc"), f"edge.canary.{module}", env=env, cwd=collections).stdout
    assert f"edge.canary.{module}" in text and "EXAMPLES" in text


FILTERS = sorted(p.stem for p in (REPO / "plugins" / "filter").glob("*.py"))


@pytest.mark.parametrize("name", FILTERS)
def test_ansible_doc_renders_every_filter_from_the_installed_copy(
    installed: tuple[Path, Path, dict[str, str]], name: str
) -> None:
    _, collections, env = installed
    proc = run(str(BIN / "ansible-doc"), "-t", "filter", "--json", f"edge.canary.{name}", env=env, cwd=collections)
    doc = json.loads(proc.stdout)[f"edge.canary.{name}"]
    assert doc["doc"]["filename"].startswith(str(collections)), doc["doc"]["filename"]
    assert doc["doc"]["short_description"] and doc["doc"]["options"] and doc["examples"]


def test_ansible_doc_lists_the_roles_of_the_installed_copy(installed: tuple[Path, Path, dict[str, str]]) -> None:
    _, collections, env = installed
    listed = run(str(BIN / "ansible-doc"), "-t", "role", "-l", "edge.canary", env=env, cwd=collections).stdout
    roles = sorted(p.name for p in (REPO / "roles").iterdir() if (p / "tasks").is_dir())
    assert roles and all(f"edge.canary.{role}" in listed for role in roles), listed


ROLES = sorted(p.name for p in (REPO / "roles").iterdir() if (p / "tasks").is_dir())


@pytest.mark.parametrize("role", ROLES)
def test_ansible_doc_renders_every_entry_point_of_every_role(
    installed: tuple[Path, Path, dict[str, str]], role: str
) -> None:
    _, collections, env = installed
    specs = yaml.safe_load((REPO / "roles" / role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    proc = run(str(BIN / "ansible-doc"), "-t", "role", "--json", f"edge.canary.{role}", env=env, cwd=collections)
    doc = json.loads(proc.stdout)[f"edge.canary.{role}"]
    assert doc["path"].startswith(str(collections)), doc["path"]
    assert set(doc["entry_points"]) == set(specs) and specs
    for name, entry in doc["entry_points"].items():
        assert entry["short_description"], f"{role} {name}: no short_description"
