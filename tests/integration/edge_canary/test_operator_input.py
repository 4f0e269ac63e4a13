"""Operator input is data, never code or shell (issue 15 items 5, 6, 13), end to end: the real `make`
targets and playbooks against the lab; a hostile value runs nothing and changes nothing.

The first test needs no lab: it proves on ansible-core itself that the extra-vars file the tools write
keeps Jinja away (a JSON extra-vars file, what the tools wrote before, is trusted and templated)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from edge_canary.ops.inputs import write_extra_vars
from tests.helpers.authprom import protected_prometheus
from tests.helpers.fleet import node_files, node_pids
from tests.helpers.lab import Lab
from tests.helpers.watch_window import PROMOTING_WINDOW

ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")


def payload(marker: Path) -> str:
    return f"rollout_pct=10 feature_x={{{{ lookup('pipe','touch {marker}') }}}}"


def output(result: subprocess.CompletedProcess[str]) -> str:
    return f"{result.stdout[-4000:]}\n{result.stderr[-2000:]}"


def test_the_vars_file_is_never_templated_where_a_json_one_is(tmp_path: Path) -> None:
    play = tmp_path / "play.yml"
    play.write_text("""\
- hosts: localhost
  gather_facts: false
  vars:
    derived: "{{ deploy_config }}"
  tasks:
    - ansible.builtin.set_fact:
        pairs: "{{ deploy_config | regex_findall('\\\\S+') }}"
        again: "{{ derived }}"
    - ansible.builtin.debug:
        msg: "{{ pairs | join(' ') }} {{ again }} {{ nodes | join(',') }}"
""")
    marker = tmp_path / "ran"
    argv = [ANSIBLE_PLAYBOOK, "-i", "localhost,", "-c", "local", str(play)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}  # not the repo's ansible.cfg

    safe = tmp_path / "vars.yml"
    write_extra_vars(safe, {"deploy_config": payload(marker), "nodes": [payload(marker)]})
    result = subprocess.run([*argv, "-e", f"@{safe}"], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert result.returncode == 0, output(result)
    assert not marker.exists()
    assert "lookup('pipe','touch" in result.stdout  # the text went through as text

    # Why: ansible-core 2.19 trusts a JSON extra-vars file and renders it.
    unsafe = tmp_path / "vars.json"
    unsafe.write_text(json.dumps({"deploy_config": payload(marker), "nodes": ["x"]}))
    subprocess.run([*argv, "-e", f"@{unsafe}"], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert marker.exists()


def test_hostile_make_variables_run_nothing_and_change_nothing(fleet: Lab, artifacts: dict[str, Path],
                                                               tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    shell = f"$(touch {marker})"
    files, pids = node_files(fleet), node_pids(fleet)
    cases: list[tuple[str, dict[str, str], str]] = [
        ("deploy-canary", {"ARTIFACT": str(artifacts["v2"]), "CONFIG": payload(marker)}, "CONFIG entry"),
        ("deploy-canary", {"ARTIFACT": str(artifacts["v2"]), "CANARY_NODE": f"edge-1'{shell}'"}, "CANARY_NODE="),
        ("deploy-canary", {"ARTIFACT": f"{artifacts['v2']};touch {marker}"}, "ARTIFACT="),
        ("deploy-canary", {"ARTIFACT": str(artifacts["v2"]), "BATCH": "1 force_lock=true"}, "BATCH="),
        ("rollback", {"NODES": "edge-2 force_lock=true"}, "not a node name"),
        ("rollback", {"NODES": f"edge-2'; touch {marker}; '"}, "not a node name"),
        ("rollback", {"NODES": "edge-2\nedge-3"}, "not a node name"),
        ("rollback", {"NODES": "{{ lookup('pipe','id') }}"}, "not a node name"),
        ("rollback", {"NODES": "all", "MAX_UNAVAILABLE": "\u00b2"}, "MAX_UNAVAILABLE="),
        ("rollout", {"PCT": "10", "ROLLOUT_HOLD": "\u00b2"}, "ROLLOUT_HOLD="),
        ("rollout", {"STAGES": f"1 {shell}"}, "is not a whole number"),
    ]
    for target, env, words in cases:
        result = fleet.make(target, extra_env={**PROMOTING_WINDOW, **env})
        assert result.returncode != 0, (target, env, output(result))
        assert words in result.stderr and "nothing was changed" in result.stderr, (target, env, output(result))
        assert "Traceback" not in output(result) and "PLAY [" not in result.stdout, (target, env)
        assert not marker.exists(), (target, env)
    # On make's own command line, make would expand $(shell …) itself when exporting the variable.
    for target, assignment in (("rollback", f"NODES=$(shell touch {marker})"),
                               ("deploy-canary", f"CONFIG=a=$(shell touch {marker})"),
                               ("rollout", f"PCT=$(shell touch {marker})")):
        result = fleet.make(target, assignment)
        assert result.returncode != 0 and "nothing was changed" in result.stderr, (assignment, output(result))
        assert not marker.exists(), assignment
    assert node_files(fleet) == files and node_pids(fleet) == pids
    assert set(fleet.lb_states().values()) == {"READY"}
    assert not list((fleet.lab_dir / "control").glob("*.lock"))


def test_the_real_plays_do_not_template_a_value_the_schema_would_refuse(fleet: Lab, artifacts: dict[str, Path],
                                                                       tmp_path: Path) -> None:
    """Belt and braces: the schema is bypassed and the hostile value handed to the real playbooks in the
    tools' vars file; Ansible must treat it as text (refused by preflight), never run it."""
    marker = tmp_path / "ran"
    files, pids = node_files(fleet), node_pids(fleet)
    deploy_vars, rollback_vars = tmp_path / "deploy.yml", tmp_path / "rollback.yml"
    write_extra_vars(deploy_vars, {"deploy_id": "input-test", "deploy_artifact": str(artifacts["v2"]),
                                   "deploy_config": payload(marker), "deploy_canary_node": "edge-1"})
    write_extra_vars(rollback_vars, {"rollback_nodes": f"edge-2 {{{{ lookup('pipe','touch {marker}') }}}}"})
    for book, extra in (("deploy-canary.yml", deploy_vars), ("rollback.yml", rollback_vars)):
        result = fleet.playbook(book, "-e", f"@{extra}")
        assert result.returncode != 0, output(result)
        assert not marker.exists(), (book, output(result))
    assert node_files(fleet) == files and node_pids(fleet) == pids
    assert set(fleet.lb_states().values()) == {"READY"}


def test_a_batch_bigger_than_the_runs_forks_is_refused_and_changes_nothing(fleet: Lab,
                                                                          artifacts: dict[str, Path]) -> None:
    """A batch is drained at once, then rolled `forks` nodes at a time: with fewer forks than the batch, nodes
    would wait drained for their turn. The play's first task refuses it (exit 64), whatever runs the play."""
    files, pids = node_files(fleet), node_pids(fleet)
    for target, env in (("deploy-canary", {"ARTIFACT": str(artifacts["v2"]), "BATCH": "2"}),
                        ("rollback", {"NODES": "all", "BATCH": "2"})):
        result = fleet.make(target, extra_env={**PROMOTING_WINDOW, **env, "ANSIBLE_FORKS": "1"})
        # make exits 2 when its recipe fails; the tool's own exit code is the one make names
        assert result.returncode != 0 and "Error 64" in result.stderr, (target, output(result))
        assert "_batch=2 drains 2 nodes at once, more than this run's 1 forks" in result.stdout, output(result)
        assert "nothing was changed" in result.stdout and result.stdout.count("PLAY [") == 1, output(result)
    # A batch counts the nodes it can drain: a 3-node fleet's deploy has 2 peers.
    bigger = fleet.make("deploy-canary",
                        extra_env={"ARTIFACT": str(artifacts["v2"]), "BATCH": "9", "ANSIBLE_FORKS": "1"})
    assert ("deploy_batch=9 on 3 edge nodes drains 2 nodes at once, more than this run's 1 forks"
            in " ".join(bigger.stdout.split())), output(bigger)
    checked = fleet.make("deploy-canary", extra_env={**PROMOTING_WINDOW, "ARTIFACT": str(artifacts["v2"]), "BATCH": "9",
                                                     "CHECK": "1", "ANSIBLE_FORKS": "2"})
    assert checked.returncode == 0, output(checked)
    assert node_files(fleet) == files and node_pids(fleet) == pids
    assert set(fleet.lb_states().values()) == {"READY"}
    assert not list((fleet.lab_dir / "control").glob("*.lock"))


def test_a_node_the_inventory_does_not_hold_is_refused_like_any_bad_input(fleet: Lab,
                                                                          artifacts: dict[str, Path]) -> None:
    """A mistyped node name was refused by a later task: exit 2 and status "failed", where every other bad
    input gets exit 64 and "refused". The play's first task now refuses it, whatever runs the play."""
    files, pids = node_files(fleet), node_pids(fleet)
    for target, env, refusal in (
            ("deploy-canary", {"CANARY_NODE": "edge-9"}, "deploy_canary_node=edge-9 is not an edge node"),
            ("deploy-canary", {"PEER_NODES": "edge-2,edge-7"}, "deploy_peer_nodes=edge-2,edge-7 names edge-7, not"),
            ("rollback", {"NODES": "edge-3 edge-33"}, "rollback_nodes=edge-3,edge-33 names edge-33, not")):
        result = fleet.make(target, extra_env={**PROMOTING_WINDOW, "ARTIFACT": str(artifacts["v2"]), **env})
        assert result.returncode != 0 and "Error 64" in result.stderr, (target, output(result))
        said = f"{target.removesuffix('-canary')}: refused: {refusal}"
        assert said in result.stdout and '"status": "refused"' in result.stdout, (said, output(result))
        assert "nothing was changed" in result.stdout and result.stdout.count("PLAY [") == 1, output(result)
    assert node_files(fleet) == files and node_pids(fleet) == pids
    assert set(fleet.lb_states().values()) == {"READY"}
    assert not list((fleet.lab_dir / "control").glob("*.lock"))


def test_watcher_settings_the_watcher_would_refuse_are_refused_before_the_canary_is_touched(
        fleet: Lab, artifacts: dict[str, Path]) -> None:
    """The watcher checked its settings only once started: a window shorter than one probe interval got
    the canary drained, pushed and restarted, then the watcher refused to start and the deploy reverted it.
    Preflight now has the watcher check them; a window with no room for an inconclusive probe is said."""
    files, pids = node_files(fleet), node_pids(fleet)
    v2 = str(artifacts["v2"])
    refused = fleet.make("deploy-canary", extra_env={"ARTIFACT": v2, "SLI_WINDOW": "5", "SLI_PROBE_INTERVAL": "10"})
    assert refused.returncode != 0, output(refused)
    assert ("the SLI watcher would refuse its settings (--window (5s) is shorter than one --interval (10s): "
            "widen the window)") in " ".join(refused.stdout.split()), output(refused)
    assert "nothing was changed" in refused.stdout and "PLAY [Canary]" not in refused.stdout, output(refused)
    assert node_files(fleet) == files and node_pids(fleet) == pids
    assert set(fleet.lb_states().values()) == {"READY"}
    assert not list((fleet.lab_dir / "control").glob("*.lock"))

    said = fleet.make("deploy-canary", extra_env={"ARTIFACT": v2, "CHECK": "1", "SLI_WINDOW": "6",
                                                  "SLI_PROBE_INTERVAL": "3"})
    assert said.returncode == 0, output(said)
    assert ("warning: 2 probes (6 s window, one every 3 s) with promote_fraction 0.8: every probe must be green "
            "to promote") in " ".join(said.stdout.split()), output(said)
    assert node_files(fleet) == files and node_pids(fleet) == pids


def test_approval_settings_the_watcher_would_refuse_are_refused_before_the_canary_is_touched(
        fleet: Lab, artifacts: dict[str, Path]) -> None:
    """With APPROVE=1 the canary's watcher also gets the approval settings (deploy_approval_*, the fleet's
    group_vars): preflight's check left them out, so a bad one got the canary rolled, then refused."""
    files, pids = node_files(fleet), node_pids(fleet)
    refused = fleet.playbook("deploy-canary.yml", "-e", json.dumps(
        {"deploy_artifact": str(artifacts["v2"]), "deploy_approval": True, "deploy_approval_on_timeout": "later"}))
    assert refused.returncode != 0, output(refused)
    assert ("the SLI watcher would refuse its settings (--approval: on_timeout 'later' is not one of abort, "
            "approve)") in " ".join(refused.stdout.split()), output(refused)
    assert "PLAY [Canary]" not in refused.stdout, output(refused)
    assert node_files(fleet) == files and node_pids(fleet) == pids
    assert set(fleet.lb_states().values()) == {"READY"}
    assert not list((fleet.lab_dir / "control").glob("*.lock"))

    checked = fleet.make("deploy-canary", extra_env={"ARTIFACT": str(artifacts["v2"]), "CHECK": "1", "APPROVE": "1"})
    assert checked.returncode == 0, output(checked)
    assert node_files(fleet) == files and node_pids(fleet) == pids


def test_rollback_nodes_with_spaces_takes_every_node(fleet: Lab) -> None:
    """Item 6: NODES="edge-2 edge-3" reached Ansible's key=value parser as rollback_nodes=edge-2 and
    silently rolled back only edge-2."""
    edge1 = node_pids(fleet)["edge-1"]
    result = fleet.make("rollback", extra_env={"NODES": "edge-3 edge-2"})
    assert result.returncode == 0, output(result)
    said = re.findall(r"(edge-\d): (?:rolled back from|already on its last-known-good)", result.stdout)
    assert sorted(said) == ["edge-2", "edge-3"], output(result)
    assert node_pids(fleet)["edge-1"] == edge1


def test_preflight_never_runs_the_artifact_and_checks_its_sha256(fleet: Lab, artifacts: dict[str, Path],
                                                                tmp_path: Path) -> None:
    """Item 8: preflight ran `<artifact> --version` as root before anything vouched for the artifact."""
    marker = tmp_path / "ran"
    evil = tmp_path / "edge-evil"
    evil.write_text(f"#!/bin/sh\ntouch {marker}\necho v9\n")
    evil.chmod(0o755)
    digest = hashlib.sha256(evil.read_bytes()).hexdigest()
    files, pids = node_files(fleet), node_pids(fleet)
    # The right sha256: preflight reads the version, and a check-mode deploy goes through every node.
    passed_artifact = fleet.make("deploy-canary", extra_env={**PROMOTING_WINDOW, "ARTIFACT": str(evil),
                                                            "ARTIFACT_SHA256": digest, "CHECK": "1"})
    assert passed_artifact.returncode == 0, output(passed_artifact)
    assert "CHECK MODE, nothing changed" in passed_artifact.stdout, output(passed_artifact)
    wrong = fleet.make("deploy-canary", extra_env={"ARTIFACT": str(artifacts["v2"]), "ARTIFACT_SHA256": digest})
    assert wrong.returncode != 0
    assert f"not the expected ARTIFACT_SHA256={digest}" in wrong.stdout, output(wrong)
    assert not marker.exists()
    assert node_files(fleet) == files and node_pids(fleet) == pids


def test_a_watcher_user_set_as_a_variable_reaches_preflights_prometheus_check(
        fleet: Lab, artifacts: dict[str, Path]) -> None:
    """sli_watch_prom_user may be a variable (a PoP's group_vars), the password coming from PROM_PASSWORD:
    the watcher's start passed the user, preflight's Prometheus check did not, and refused the deploy."""
    upstream = f"http://127.0.0.1:{fleet.env['LAB_PROM_PORT']}"
    password = "pw-5c0e93d7"
    with protected_prometheus(user="alice", password=password, upstream=upstream) as (url, seen):
        checked = fleet.playbook("deploy-canary.yml", "--check", "-e", json.dumps(
            {"deploy_artifact": str(artifacts["v2"]), "prom_url": url, "sli_watch_prom_user": "alice"}),
            extra_env={"PROM_PASSWORD": password})
    assert checked.returncode == 0, output(checked)
    assert seen.authorizations and seen.refused == 0, seen
    assert password not in output(checked)


def test_credentials_reach_preflight_and_the_watcher_and_no_file(fleet: Lab, artifacts: dict[str, Path],
                                                                tmp_path: Path) -> None:
    """Item 7: an exported PROM_TOKEN was replaced by an empty one before the watcher; preflight sent no
    credentials; user:password@ in PROM_URL was printed and written into watcher.json."""
    upstream = f"http://127.0.0.1:{fleet.env['LAB_PROM_PORT']}"
    token, password = "tok-3f9a1c77e2", "pw-8d2b6e41"
    with protected_prometheus(token=token, user="alice", password=password, upstream=upstream) as (url, seen):
        result = fleet.make("deploy-canary", extra_env={"ARTIFACT": str(artifacts["v2"]), **PROMOTING_WINDOW,
                                                        "PROM_URL": url, "PROM_TOKEN": token})
        assert result.returncode == 0, output(result)
        assert "SLI verdict: PROMOTE" in result.stdout
        assert seen.refused == 0 and f"Bearer {token}" in seen.authorizations
        # Basic auth from user:password@: preflight passes Prometheus and stops at the next check, the
        # migrations (a cheap way to prove the Prometheus check passed without another deploy).
        migrations = tmp_path / "migrations"
        migrations.mkdir()
        (migrations / "0002_drop.sql").write_text("ALTER TABLE users DROP COLUMN email;\n")
        basic = fleet.make("deploy-canary", extra_env={"ARTIFACT": str(artifacts["v2"]),
                                                       "MIGRATIONS_DIR": str(migrations),
                                                       "PROM_URL": url.replace("//", f"//alice:{password}@")})
        assert basic.returncode != 0 and "DROP COLUMN" in basic.stdout, output(basic)
        refused = fleet.make("deploy-canary", extra_env={"ARTIFACT": str(artifacts["v2"]),
                                                         "PROM_URL": url.replace("//", "//alice:wr0ng-pw@")})
    assert refused.returncode != 0 and "does not answer queries" in refused.stdout, output(refused)
    for run in (result, basic, refused):
        assert token not in output(run) and password not in output(run) and "wr0ng-pw" not in output(run)
    written = [path for path in (fleet.lab_dir / "control").rglob("*") if path.is_file()
               and (token.encode() in path.read_bytes() or password.encode() in path.read_bytes())]
    assert written == []
    newest = max((fleet.lab_dir / "control").rglob("watcher.json"), key=lambda p: p.stat().st_mtime)
    watcher = json.loads(newest.read_text())
    assert watcher["prom_url"] == url
