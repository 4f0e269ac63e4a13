"""`make demo`'s path from a clone whose folder holds a space and a % ("my clones 100%"): make's recipes, the
lab's command lines and configuration files, ansible-runner's owned ansible-playbook and the watcher's revert
must each take that path as one word, and supervisord, which expands %(name)s in its values, as it is. A copy
of the working tree with the repository's .venv linked into it (no reinstall), on a lab of its own (ports 800
above the slot's), in a short folder of /tmp (pytest's are too deep for the lab's sockets): up, a bad release
reverted by its watcher, status, the alerts' runbook links, a bench roll, down."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from tests.helpers.lab import REPO, Lab, lab_processes
from tests.helpers.summary import run_summary
from tests.integration.conftest import TEST_LAB_PORTS, TEST_SLOT

PORTS = {name: str(port + 1000 * TEST_SLOT + 800) for name, port in TEST_LAB_PORTS.items()}


def copy_working_tree(dest: Path) -> None:
    """The repository's files as they are now (committed or not), symlinks kept as links."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if not source.is_symlink() and not source.exists():  # deleted, not yet committed
            continue
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, dest / name, follow_symlinks=False)


def make(clone: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # Only what a user's shell would hold: not the venv, folders or Ansible settings `make test` exported.
    env = {key: value for key, value in os.environ.items()
           if key not in {"VENV", "PY", "ARTIFACTS_DIR", "ANSIBLE_CONFIG"} and not key.startswith("LAB_")}
    return subprocess.run(["make", "--no-print-directory", *args], cwd=clone, env={**env, **PORTS},
                          capture_output=True, text=True, timeout=900)


def test_a_clone_in_a_folder_with_a_space_and_a_percent_brings_its_lab_up_reverts_a_bad_release_and_stops() -> None:
    top = Path(tempfile.mkdtemp(prefix="edge-canary-", dir="/tmp"))
    clone = top / "my clones 100%" / "edge canary"
    copy_working_tree(clone)
    (clone / ".venv").symlink_to(Path(sys.prefix))
    lab_dir = clone / ".lab"
    try:
        up = make(clone, "lab-up")
        assert up.returncode == 0, up.stdout[-4000:] + up.stderr
        built = make(clone, "artifacts")
        assert built.returncode == 0, built.stdout + built.stderr

        deploy = make(clone, "deploy-canary", f"ARTIFACT={clone}/artifacts/edge-v2-errors", "CANARY_NODE=edge-2")
        assert deploy.returncode != 0, deploy.stdout[-4000:]
        result = run_summary(deploy.stdout)
        assert result["status"] == "failed" and result["verdict"] == "reverted", deploy.stdout[-4000:]
        assert str(result["record"]).startswith(str(lab_dir)), result["record"]
        canary = next(row for row in result["nodes"] if row["node"] == "edge-2")
        assert canary["result"] == "reverted by the SLI watcher" and canary["after"] == canary["before"], canary
        assert Lab(lab_dir, PORTS).node_version("edge-2")["version"] == "v1"
        # The watcher's own account of its revert comes before the play's failure it explains, not after.
        said = deploy.stdout
        assert "    watcher | revert OK" in said and said.index("    watcher | revert OK") < said.index("PLAY RECAP"), \
            said[-4000:]

        status = make(clone, "status")
        assert status.returncode == 0 and "OK: 3 node(s) up and ready" in status.stdout, status.stdout + status.stderr

        # The lab's alerts link to this clone's runbook by a URL (the space percent-encoded).
        with urllib.request.urlopen(f"http://127.0.0.1:{PORTS['LAB_PROM_PORT']}/api/v1/rules?type=alert") as resp:
            links = {rule["annotations"]["runbook_url"].split("#")[0]
                     for group in json.load(resp)["data"]["groups"] for rule in group["rules"]}
        assert links == {(clone / "docs" / "RUNBOOK.md").as_uri()}, links

        # The bench's roll, whose module runs go through the clone's module_cpu.sh.
        work = top / "bench"
        rolled = make(clone, "bench", "BENCH_ARGS=--use-running-lab --phases roll --fleets 3:1 --roll-runs 1 --forks 1"
                                      " --green-window 15"
                                      f" --out {work}/BENCHMARKS.md --json {work}/bench.json --work {work}")
        assert rolled.returncode == 0, rolled.stdout[-3000:] + rolled.stderr
        assert [roll["code"] for roll in json.loads((work / "bench.json").read_text())["rolls"]] == [0]
    finally:
        down = make(clone, "lab-down")
        shutil.rmtree(top, ignore_errors=True)
    assert down.returncode == 0, down.stdout + down.stderr
    assert lab_processes(lab_dir) == []
