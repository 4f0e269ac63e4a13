"""An ansible-runner job of this repository's playbooks, laid out as AWX lays one out: a private data
folder with the project (the playbooks, roles and plugins: the collection edge.canary, as the
repository's collections/ link finds it), the inventory with its group_vars, and env/ (the job's
environment, and the extra vars as an `!unsafe` YAML file: AWX's way of keeping survey input from
being templated). Run here (`ansible-runner run`) or streamed to an execution node
(`ansible-runner transmit | ssh node ansible-runner worker | ansible-runner process`).
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from edge_canary.ops.inputs import write_extra_vars
from tests.helpers.paths import REPO

VENV_BIN = Path(sys.executable).parent
# What the plays load from the project: the collection (plugins, roles, meta, galaxy.yml) and the playbooks.
PROJECT = ["ansible.cfg", "galaxy.yml", "meta", "playbooks", "plugins", "roles", "collections"]


def private_data_dir(root: Path, inventory: Path, extra_vars: Mapping[str, object],
                     env: Mapping[str, str]) -> Path:
    """A private data folder under `root` for one job: project/, inventory/, env/."""
    pdd = root / "job"
    project = pdd / "project"
    project.mkdir(parents=True)
    for name in PROJECT:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, project / name, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, project / name)
    (pdd / "inventory").mkdir()
    shutil.copy2(inventory, pdd / "inventory" / inventory.name)
    shutil.copytree(inventory.parent / "group_vars", pdd / "inventory" / "group_vars")
    (pdd / "env").mkdir()
    write_extra_vars(pdd / "env" / "extravars", extra_vars)
    (pdd / "env" / "envvars").write_text(yaml.safe_dump(dict(env)))
    return pdd


# ssh's ControlPath is a Unix socket: at most 107 bytes, and ssh first binds `<path>.<16 random chars>`;
# Ansible's path is `<dir>/<10 hex chars>`. A pytest tmp_path (longer under xdist: popen-gw1/) overruns it.
CONTROL_DIR_MAX = 107 - len("/0123456789") - len(".0123456789abcdef")


def short_control_dir(prefix: str = "edge-canary-cp-") -> tempfile.TemporaryDirectory[str]:
    """A folder for a job's SSH multiplexing sockets whose path is short enough for them (removed on exit)."""
    return tempfile.TemporaryDirectory(prefix=prefix, dir="/tmp")


def job_env(lab_env: Mapping[str, str], control_dir: Path) -> dict[str, str]:
    """The job's environment: the lab to run against, this virtualenv's Ansible first on PATH (an execution
    environment's image has it on its PATH), and SSH multiplexing sockets of the job's own (in ~/.ansible/cp,
    which every namespace shares, a local run's connection would carry a remote run's SSH) in `control_dir`,
    which must be short enough for a socket's path (short_control_dir)."""
    if len(str(control_dir)) > CONTROL_DIR_MAX:
        raise ValueError(f"{control_dir}: longer than {CONTROL_DIR_MAX} characters, too long for ssh's control "
                         "sockets (unix_listener: path too long); use short_control_dir()")
    return {"LAB_DIR": lab_env["LAB_DIR"], "ANSIBLE_NOCOLOR": "1", "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control_dir),
            "PATH": f"{VENV_BIN}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}


def run_here(pdd: Path, playbook: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """`ansible-runner run` on this machine: the local run."""
    return subprocess.run([str(VENV_BIN / "ansible-runner"), "run", str(pdd), "-p", playbook],
                          capture_output=True, text=True, timeout=timeout, cwd=pdd)


def run_on_node(pdd: Path, playbook: str, ssh: Sequence[str], out: Path,
                timeout: float = 900) -> tuple[int, str, str]:
    """transmit here | worker on the node (over `ssh`, an argv ending with the destination) | process here:
    (process's exit code, its stdout, the stderr of all three)."""
    transmit = subprocess.Popen([str(VENV_BIN / "ansible-runner"), "transmit", str(pdd), "-p", playbook],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    remote = shlex.join([str(VENV_BIN / "ansible-runner"), "worker", "--delete", "--private-data-dir",
                         str(out / "worker")])  # ssh hands its command to the node's shell
    worker = subprocess.Popen([*ssh, remote],
                              stdin=transmit.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert transmit.stdout is not None and worker.stdout is not None
    transmit.stdout.close()  # the worker holds the pipe now
    process = subprocess.Popen([str(VENV_BIN / "ansible-runner"), "process", str(out / "processed")],
                               stdin=worker.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    worker.stdout.close()
    stdout, process_err = process.communicate(timeout=timeout)
    errors = [process_err]
    for step in (transmit, worker):
        _, err = step.communicate(timeout=60)
        errors.append(err.decode(errors="replace"))
    return process.returncode, stdout, "\n".join(errors)
