"""Issue 15 items 1, 2, 3, 4 and the config part of 7 on the edge_release module, against real files
in a tmp dir: `.previous` is always the last release that served healthily, it is verified before it
is installed, hostile node files are refused without hanging, and secret config values never leave
the config file."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.edge.canary.plugins.module_utils import release_actions, release_files

from tests.unit.plugins.module_utils.test_release_actions import V0, V1, V2, V3, Node, sha


@pytest.fixture
def node(tmp_path: Path) -> Node:
    return Node(tmp_path)


def serving_v1(node: Node) -> Node:
    """v1 serving healthily with rollout_pct=0, v0 (which served before it) as .previous."""
    assert node.push(V0, version="v0", config={"rollout_pct": 0}).rc == 0
    assert node.serve().rc == 0
    assert node.push(V1, version="v1").rc == 0
    assert node.serve().rc == 0
    return node


# --- item 1: same artifact, new config ---------------------------------------------------------


def test_canary_on_hold_then_same_artifact_with_new_config_keeps_v1_as_previous(node: Node) -> None:
    serving_v1(node)
    assert node.push(V2, version="v2").rc == 0
    assert node.serve(good=False).rc == 0  # the canary serves v2, its SLI gate said hold
    run = node.push(V2, version="v2", config={"rollout_pct": 10})
    assert run.rc == 0 and run.result["changed"]
    assert node.previous.read_bytes() == V1
    assert node.config_previous.read_text() == "rollout_pct=0\n"
    assert node.record()["previous"]["sha256"] == sha(V1)
    reverted = node.revert()
    assert reverted.rc == 0 and node.binary.read_bytes() == V1
    assert node.config.read_text() == "rollout_pct=0\n"


def test_re_push_of_the_running_binary_keeps_previous(node: Node) -> None:
    serving_v1(node)
    assert node.push(V1, version="v1", config={"rollout_pct": 5}).rc == 0
    assert node.push(V1, version="v1", config={"rollout_pct": 7}).rc == 0
    assert node.previous.read_bytes() == V0


# --- item 2: a release that never served --------------------------------------------------------


def test_a_release_that_never_served_does_not_become_previous(node: Node) -> None:
    serving_v1(node)
    assert node.push(V2, version="v2").rc == 0  # v2 fails its health check: no serving mark
    run = node.push(V3, version="v3")
    assert run.rc == 0
    assert node.previous.read_bytes() == V1, "v2 never served, v1 is the last-known-good"
    assert "left as it is" in run.result["msg"]
    assert node.revert().rc == 0
    assert node.binary.read_bytes() == V1


def test_a_canary_on_probation_is_not_the_last_known_good_until_promoted(node: Node) -> None:
    serving_v1(node)
    assert node.push(V2).rc == 0
    assert node.serve(good=False).rc == 0
    assert node.push(V3).rc == 0
    assert node.previous.read_bytes() == V1
    assert node.serve().rc == 0  # v3 promoted
    assert node.push(V2).rc == 0
    assert node.previous.read_bytes() == V3


def test_a_node_installed_by_hand_counts_its_binary_as_the_last_known_good(node: Node) -> None:
    node.binary.write_bytes(V1)
    node.previous.write_bytes(V0)
    assert node.push(V2).rc == 0
    assert node.previous.read_bytes() == V1
    assert node.record()["good_sha256"] == sha(V1)


# --- item 3: .previous verified, no symlink, no '..', no FIFO, no temp left ----------------------


def test_truncated_previous_is_refused_naming_rollback_binary(node: Node) -> None:
    serving_v1(node)
    assert node.push(V2).rc == 0
    node.previous.write_bytes(V1[:5])
    before = node.snapshot()
    run = node.revert()
    assert run.rc == 1
    assert "does not match the release record" in run.result["msg"]
    assert "ROLLBACK_BINARY=" in run.result["msg"] and "\n" not in run.result["msg"]
    assert node.snapshot() == before


def test_replaced_previous_is_refused_but_rollback_binary_is_the_way_out(node: Node) -> None:
    serving_v1(node)
    assert node.push(V2).rc == 0
    node.previous.write_bytes(V3)
    assert node.revert().rc == 1
    staged, digest = node.stage(V1)
    run = node.revert(rollback_binary=staged, sha256=digest)
    assert run.rc == 0, run.result
    assert node.binary.read_bytes() == V1


def test_a_config_redeploy_never_writes_a_replaced_previous_into_the_record(node: Node) -> None:
    """A push that leaves .previous alone must not record whatever sits there as the last-known-good:
    a replaced .previous would then pass the revert's check and be installed."""
    serving_v1(node)
    assert node.push(V2, version="v2").rc == 0
    assert node.serve(good=False).rc == 0
    node.previous.write_bytes(V3)
    run = node.push(V2, version="v2", config={"rollout_pct": 10})
    assert run.rc == 0 and "does not match the release record" in run.result["msg"]
    assert node.record()["previous"]["sha256"] == sha(V1)
    reverted = node.revert()
    assert reverted.rc == 1 and "does not match the release record" in reverted.result["msg"]
    assert node.binary.read_bytes() == V2


def test_a_previous_swapped_after_its_check_is_never_installed(node: Node,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The sha256 is checked on the bytes being installed, before the rename, not after it."""
    serving_v1(node)
    assert node.push(V2).rc == 0
    planned = release_actions.plan_revert

    def swap_after_the_check(*args: Any, **kwargs: Any) -> Any:
        plan = planned(*args, **kwargs)
        node.previous.write_bytes(V3)
        return plan

    monkeypatch.setattr(release_actions, "plan_revert", swap_after_the_check)
    run = node.revert()
    assert run.rc == 1 and "changed while being installed" in run.result["msg"]
    assert node.binary.read_bytes() == V2
    assert node.leftovers() == []


def test_symlinked_previous_is_not_followed(node: Node) -> None:
    serving_v1(node)
    assert node.push(V2).rc == 0
    elsewhere = node.work / "elsewhere"
    elsewhere.write_bytes(V1)
    node.previous.unlink()
    node.previous.symlink_to(elsewhere)
    run = node.revert()
    assert run.rc == 1 and "symlink" in run.result["msg"]
    assert node.binary.read_bytes() == V2


def test_install_dir_with_dot_dot_is_refused(node: Node) -> None:
    run = node.run({"state": "inspected", "install_dir": str(node.install) + "/../edge"})
    assert run.rc == 1 and "'..'" in run.result["msg"]


def test_symlinked_install_dir_is_refused(node: Node) -> None:
    """The install dir itself a symlink to a folder elsewhere: every file would land there."""
    serving_v1(node)
    link = node.root / "opt" / "edge-link"
    link.symlink_to(node.install)
    before = node.snapshot()
    for state in ("inspected", "pushed", "reverted"):
        run = node.run({"state": state, "install_dir": str(link)})
        assert run.rc == 1, (state, run.result)
        msg = run.result["msg"]
        assert "install_dir" in msg and "symlink" in msg and "\n" not in msg, msg
    assert node.snapshot() == before


def test_install_dir_under_a_symlinked_parent_folder_is_refused(node: Node) -> None:
    serving_v1(node)
    (node.root / "srv").symlink_to(node.root / "opt")
    run = node.run({"state": "inspected", "install_dir": str(node.root / "srv" / "edge")})
    assert run.rc == 1 and "install_dir" in run.result["msg"] and "symlink" in run.result["msg"]


def test_config_and_record_in_a_symlinked_folder_are_refused(node: Node) -> None:
    serving_v1(node)
    (node.root / "etc-link").symlink_to(node.etc)
    run = node.run({"state": "inspected", "config_path": str(node.root / "etc-link" / "edge.conf")})
    assert run.rc == 1 and "config_path" in run.result["msg"] and "symlink" in run.result["msg"]
    run = node.run({"state": "inspected", "record_path": str(node.root / "etc-link" / "release.json")})
    assert run.rc == 1 and "record_path" in run.result["msg"] and "symlink" in run.result["msg"]


def test_a_staged_artifact_in_a_symlinked_folder_is_refused(node: Node) -> None:
    serving_v1(node)
    staged, digest = node.stage(V2)
    (node.root / "work-link").symlink_to(node.work)
    run = node.run({"state": "pushed", "sha256": digest,
                    "staged": str(node.root / "work-link" / os.path.basename(staged))})
    assert run.rc == 1 and "staged" in run.result["msg"] and "symlink" in run.result["msg"]
    assert node.binary.read_bytes() == V1


def test_fifo_at_the_config_path_is_refused_without_hanging(node: Node) -> None:
    serving_v1(node)
    node.config.unlink()
    os.mkfifo(node.config)
    done: dict[str, object] = {}
    worker = threading.Thread(target=lambda: done.update(run=node.run({"state": "inspected"})), daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive(), "inspect blocked on a FIFO"
    run = done["run"]
    assert run.rc == 1 and "not a regular file" in run.result["msg"]  # type: ignore[attr-defined]


def test_failed_push_removes_its_temp_file(node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    serving_v1(node)

    def no_space(*_args: object, **_kwargs: object) -> str:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(release_actions, "atomic_copy", no_space)
    run = node.push(V2)
    assert run.rc == 1 and "No space left" in run.result["msg"]
    assert node.leftovers() == []
    assert node.binary.read_bytes() == V1


def test_failed_rename_removes_its_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dest = tmp_path / "edge"
    tmp, _digest = release_files.write_temp(str(dest), b"x" * 1000, release_files.FileState(), 0o755)

    def refuse(*_args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError):
        release_files.install(tmp, str(dest))
    assert list(tmp_path.iterdir()) == []


# --- item 4: a node a deploy never reached -------------------------------------------------------


def test_not_reached_is_noted_only_on_a_node_running_its_last_known_good(node: Node) -> None:
    serving_v1(node)
    run = node.run({"state": "not_reached", "deploy_id": "d9"})
    assert run.rc == 0 and run.result["changed"]
    assert node.record()["not_reached"]["deploy_id"] == "d9"
    assert node.run({"state": "not_reached", "deploy_id": "d9"}).result["changed"] is False
    inspected = node.run({"state": "inspected"}).result
    assert inspected["not_reached"]["sha256"] == sha(V1)
    assert node.push(V2).rc == 0
    assert "not_reached" not in node.record()
    # v2 reached it and never served: nothing to note.
    assert node.run({"state": "not_reached", "deploy_id": "d9"}).result["changed"] is False


def test_not_reached_leaves_alone_a_node_already_on_the_release_being_deployed(node: Node) -> None:
    """A deploy notes each of its nodes as it starts. One that a first attempt already rolled runs the
    release, healthy (its last-known-good): noted, a rollback would leave it on the release being undone."""
    serving_v1(node)
    assert node.run({"state": "not_reached", "deploy_id": "d9", "sha256": sha(V1).upper()}).result["changed"] is False
    assert "not_reached" not in node.record()
    assert node.run({"state": "not_reached", "deploy_id": "d9", "sha256": sha(V2)}).result["changed"]
    assert node.record()["not_reached"] == {**node.record()["not_reached"], "deploy_id": "d9", "sha256": sha(V1)}


# --- item 7 (config values) ----------------------------------------------------------------------


def test_secret_config_values_never_leave_the_config_file(node: Node) -> None:
    serving_v1(node)
    secret: dict[str, Any] = {"secret_config_keys": ["api_key"]}
    pushed = node.push(V2, config={"api_key": "s3cr3t-value", "rollout_pct": 3}, **secret)
    configured = node.run({"state": "configured", "config": {"api_key": "other-s3cr3t"}, "_ansible_diff": True,
                           **secret})
    inspected = node.run({"state": "inspected", **secret})
    reverted = node.revert(**secret)
    assert node.config_previous.read_text() == "rollout_pct=0\n"
    for run in (pushed, configured, inspected, reverted):
        assert run.rc == 0, run.result
        text = json.dumps(run.result)
        assert "s3cr3t" not in text, text
    assert configured.result["diff"]["after"].count("api_key=********") == 1
    assert "s3cr3t" not in node.record_path.read_text()
    assert node.record()["config"].get("api_key") in (None, "********")
    assert stat.S_IMODE(node.record_path.stat().st_mode) == 0o600


# --- the config's .previous is verified like the binary's ----------------------------------------


def test_the_record_keeps_the_sha256_of_the_config_previous(node: Node) -> None:
    serving_v1(node)
    assert node.record()["previous_config_sha256"] == sha(node.config_previous.read_bytes())
    assert node.push(V2, config={"rollout_pct": 10}).rc == 0
    assert node.record()["previous_config_sha256"] == sha(b"rollout_pct=0\n")
    assert node.revert().rc == 0
    assert node.record()["previous_config_sha256"] == sha(node.config_previous.read_bytes())


def test_replaced_config_previous_is_refused_before_anything_changes(node: Node) -> None:
    serving_v1(node)
    assert node.push(V2, config={"rollout_pct": 10}).rc == 0
    node.config_previous.write_text("rollout_pct=100\nfeature_x=on\n")
    before = node.snapshot()
    run = node.revert()
    assert run.rc == 1, run.result
    msg = run.result["msg"]
    assert "edge.conf.previous does not match the release record" in msg and "\n" not in msg
    assert "move it away" in msg
    assert node.snapshot() == before
    # The way out: moved away, the revert restores the binary and leaves the config as it is.
    node.config_previous.unlink()
    run = node.revert()
    assert run.rc == 0, run.result
    assert node.binary.read_bytes() == V1 and node.config.read_text() == "rollout_pct=10\n"


def test_a_config_only_redeploy_never_records_a_replaced_config_previous(node: Node) -> None:
    serving_v1(node)
    assert node.push(V2).rc == 0
    assert node.serve(good=False).rc == 0
    node.config_previous.write_text("rollout_pct=100\n")
    assert node.push(V2, config={"rollout_pct": 10}).rc == 0
    assert node.record()["previous_config_sha256"] == sha(b"rollout_pct=0\n")
    run = node.revert()
    assert run.rc == 1 and "edge.conf.previous does not match" in run.result["msg"]


def test_a_record_without_the_config_sha256_is_read_and_the_result_says_so(node: Node) -> None:
    """A release record written before previous_config_sha256: the revert works, and says the
    config's .previous could not be verified."""
    serving_v1(node)
    assert node.push(V2, config={"rollout_pct": 10}).rc == 0
    record = node.record()
    del record["previous_config_sha256"]
    node.record_path.write_text(json.dumps(record))
    run = node.revert()
    assert run.rc == 0, run.result
    assert "not verified" in run.result["msg"] and "edge.conf.previous" in run.result["msg"]
    assert node.config.read_text() == "rollout_pct=0\n"
    assert node.record()["previous_config_sha256"] == sha(b"rollout_pct=0\n")
