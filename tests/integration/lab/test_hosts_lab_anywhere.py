"""The hosts-mode lab from any folder (issue 15, item 12): a clone below a world-writable sticky folder (the
system's temporary folder) must come up too, although sshd's StrictModes refuses a key file below any
group- or world-writable folder, and in a folder whose name holds a blank and a % (ssh expands %-tokens in
the key's and known_hosts' paths). A lab of its own (ports 700 above the slot's, a subnet of its own), two
nodes, brought up, logged in to over SSH, and taken down leaving nothing."""

from __future__ import annotations

import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from edge_canary.lab.settings import known_hosts_option, ssh_path
from tests.helpers.lab import Lab, lab_processes, net_leftovers
from tests.integration.conftest import TEST_LAB_PORTS, TEST_SLOT, hosts_mode_unavailable


def test_a_hosts_lab_in_a_clone_below_a_world_writable_sticky_folder_comes_up_and_down() -> None:
    reason = hosts_mode_unavailable()
    if reason:
        pytest.skip(reason)
    sticky = Path(tempfile.mkdtemp(prefix="edge-canary-anywhere-", dir="/tmp"))
    sticky.chmod(0o1777)  # as /tmp itself
    lab_dir = sticky / "my clone 100%" / ".lab"
    lab_dir.parent.mkdir(mode=0o755)
    settings = {**{name: str(port + 1000 * TEST_SLOT + 700) for name, port in TEST_LAB_PORTS.items()},
                "LAB_MODE": "hosts", "LAB_SUBNET": f"10.214.{TEST_SLOT}.0/24", "LAB_NODES": "2"}
    lab = Lab(lab_dir, settings)
    prefix = lab.settings.link_prefix()
    try:
        up = lab.up()
        assert up.returncode == 0, up.stdout[-4000:] + up.stderr
        # A fresh lab starts each process once, on the configuration this run wrote: no restart right after.
        assert "Restart the sshd" not in up.stdout and "RUNNING HANDLER" not in up.stdout, up.stdout[-4000:]
        keys = Path("/run/edge-canary-lab") / prefix
        assert stat.S_IMODE(keys.stat().st_mode) == 0o700 and keys.stat().st_uid == 0
        key = ssh_path(lab_dir / "ssh" / "id_ed25519")  # as Ansible passes it (ssh -i takes no % in a path)
        for address in lab.settings.node_addresses():
            login = subprocess.run(["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "IdentitiesOnly=yes",
                                    "-o", known_hosts_option(lab_dir / "ssh" / "known_hosts"),
                                    "-o", "StrictHostKeyChecking=yes", "-o", f'IdentityFile="{key}"',
                                    f"root@{address}", "true"], capture_output=True, text=True, timeout=30)
            assert login.returncode == 0, login.stderr
    finally:
        down = lab.down()
        shutil.rmtree(sticky, ignore_errors=True)
    assert down.returncode == 0, down.stdout + down.stderr
    assert net_leftovers(prefix) == [] and lab_processes(lab_dir) == []
    assert not (Path("/run/edge-canary-lab") / prefix).exists()
