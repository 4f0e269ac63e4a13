"""The game day's plays get their extra vars as the on-call tools do (issue 15, operator input is data): an
`!unsafe` vars file, never a JSON one, which ansible-core trusts and templates. Paths in them come from
REPORT_DIR and ARTIFACTS_DIR as the operator typed them."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from edge_canary.gameday import plays


def test_a_drills_extra_vars_are_never_templated(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    hostile = f"{tmp_path}/{{{{ lookup('pipe','touch {marker}') }}}}/edge-v2"
    extra: dict[str, object] = {"deploy_artifact": hostile, "force_lock": True, "edge_service_health_timeout": 20,
                                "sli_watch_settings": {"max_staleness": 6.0, "min_requests": 3, "note": hostile,
                                                       "alpha": 1e-05}}
    play = plays.playbook("deploy", "deploy-canary.yml", None, extra, {}, tmp_path / "deploy.log")
    vars_file = Path(play.argv[play.argv.index("-e") + 1].removeprefix("@"))
    book = tmp_path / "show.yml"
    book.write_text("""\
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.assert:
        that:
          - deploy_artifact is string and force_lock is sameas true
          - edge_service_health_timeout == 20
          - sli_watch_settings.max_staleness == 6.0 and sli_watch_settings.alpha == 0.00001
          - sli_watch_settings.min_requests == 3
    - ansible.builtin.debug:
        msg: "{{ deploy_artifact }} {{ sli_watch_settings | to_json }}"
""")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    result = subprocess.run([play.argv[0], "-i", "localhost,", "-c", "local", str(book), "-e", f"@{vars_file}"],
                            capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert not marker.exists()
    assert "lookup('pipe','touch" in result.stdout
    assert vars_file.stat().st_mode & 0o777 == 0o600


def test_make_gameday_takes_its_variables_literally(tmp_path: Path) -> None:
    """On make's command line, make expanded an exported variable itself (`$(shell …)` ran in make) and the
    recipe quoted ARTIFACTS_DIR into the shell. A stand-in PY prints what edge-canary gameday would get;
    `-o setup` skips the set-up."""
    marker, stand_in = tmp_path / "ran", tmp_path / "python"
    stand_in.write_text("#!/bin/sh\nexec env\n")
    stand_in.chmod(0o755)
    values = {"REPORT_DIR": f"$(shell touch {marker})", "SCENARIO": f"$(shell touch {marker})",
              "ARTIFACTS_DIR": f"/tmp/a'b;touch {marker};'$(shell touch {marker})"}
    done = subprocess.run(["make", "--no-print-directory", "-o", "setup", "gameday", f"PY={stand_in}",
                           *(f"{k}={v}" for k, v in values.items())], cwd=plays.REPO, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert not marker.exists()
    env = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    assert {k: env.get(k) for k in values} == values
