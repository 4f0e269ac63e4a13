"""release_plan: the pure parts of edge_release (config keys, push, revert and configure decisions,
record merging)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from ansible_collections.edge.canary.plugins.module_utils import release_plan as er

V0, V1, V2, V3 = ("0" * 64, "1" * 64, "2" * 64, "3" * 64)


def node(
    binary: str | None = V1,
    previous: str | None = V0,
    config: str | None = "rollout_pct=0\n",
    config_previous: str | None = None,
    record: dict[str, Any] | None = None,
) -> Any:
    return er.NodeState(
        binary=er.FileState(binary, 0o755 if binary else None),
        previous=er.FileState(previous, 0o755 if previous else None),
        config_text=config,
        config_previous_text=config_previous,
        record=record or {},
    )


def pending(from_sha: str | None = V1, from_config: str | None = "rollout_pct=0\n") -> dict:
    return {"pending": {"from_sha256": from_sha, "from_version": "v1",
                        "from_config_sha256": er.sha256_text(from_config), "target_sha256": V2}}


# --- config keys -------------------------------------------------------------------------------


def test_parse_config_reads_flat_keys_and_skips_comments() -> None:
    text = "# header\nrollout_pct = 10\n\nfeature=on\nnot a key\nrollout_pct=20\n"
    assert er.parse_config(text) == {"rollout_pct": "20", "feature": "on"}


def test_merge_config_sets_keys_in_place_and_keeps_other_lines() -> None:
    text = "# edge config\nfeature=on\nrollout_pct=0\n"
    merged = er.merge_config(text, {"rollout_pct": "10", "new_key": "x"})
    assert merged == "# edge config\nfeature=on\nrollout_pct=10\nnew_key=x\n"


def test_merge_config_leaves_commented_key_alone_and_creates_missing_file() -> None:
    merged = er.merge_config("#rollout_pct=5\n", {"rollout_pct": "1"})
    assert merged == "#rollout_pct=5\nrollout_pct=1\n"
    assert er.merge_config(None, {"rollout_pct": "1"}) == "rollout_pct=1\n"
    assert er.merge_config(None, {}) is None


def test_normalize_config_renders_values_the_binary_reads() -> None:
    assert er.normalize_config({"rollout_pct": 10, "flag": True, "off": False}) == {
        "rollout_pct": "10", "flag": "true", "off": "false"}


@pytest.mark.parametrize(
    ("updates", "message"),
    [({"bad key": 1}, "not a plain key"), ({"k": "a\nb"}, "one line"), ({"k": None}, "no value")],
)
def test_normalize_config_refuses_bad_keys_and_values(updates: dict, message: str) -> None:
    with pytest.raises(er.ReleaseError, match=message):
        er.normalize_config(updates)


# --- push decisions ----------------------------------------------------------------------------


def test_push_of_the_current_artifact_and_keys_changes_nothing() -> None:
    plan = er.plan_push(node(binary=V2), V2, {"rollout_pct": "0"})
    assert not plan.changed
    assert not (plan.rotate_binary or plan.write_binary or plan.rotate_config or plan.write_config)


def test_push_of_a_new_artifact_rotates_the_pair_into_previous() -> None:
    plan = er.plan_push(node(), V2, {})
    assert plan.changed and plan.write_binary and plan.rotate_binary and plan.rotate_config
    assert not plan.write_config and not plan.first_deploy
    assert plan.previous_after_sha256 == V1
    assert plan.pending is not None and plan.pending.from_sha256 == V1


def test_push_of_new_config_keys_alone_keeps_previous() -> None:
    """Issue 15.1: same artifact + new CONFIG is not a new release; .previous stays the last-known-good."""
    plan = er.plan_push(node(binary=V2, previous=V1, record={"good_sha256": V1, "current": {}}), V2,
                        {"rollout_pct": "10"})
    assert plan.changed and plan.write_config and not plan.write_binary
    assert not plan.rotate_binary and not plan.rotate_config
    assert plan.previous_after_sha256 == V1
    assert plan.new_config_text == "rollout_pct=10\n"


def test_new_config_file_on_a_deployed_node_gets_an_empty_previous() -> None:
    plan = er.plan_push(node(config=None), V2, {"rollout_pct": "5"})
    assert plan.rotate_config and plan.write_config


def test_no_config_keys_and_no_config_file_leaves_config_alone() -> None:
    plan = er.plan_push(node(config=None), V2, {})
    assert not plan.rotate_config and not plan.write_config


def test_first_deploy_has_nothing_to_rotate() -> None:
    plan = er.plan_push(node(binary=None, previous=None, config=None), V1, {"rollout_pct": "0"})
    assert plan.first_deploy and plan.write_binary and plan.write_config
    assert not plan.rotate_binary and not plan.rotate_config
    assert plan.previous_after_sha256 is None


def test_resumed_push_after_binary_replaced_does_not_rotate_it_into_previous() -> None:
    # Killed after the new binary was renamed in: .previous already holds v1; a re-run must not
    # copy v2 over it even though the config still needs writing.
    state = node(binary=V2, previous=V1, config_previous="rollout_pct=0\n", record=pending())
    plan = er.plan_push(state, V2, {"rollout_pct": "10"})
    assert plan.resumed and plan.changed and plan.write_config
    assert not plan.rotate_binary and not plan.write_binary
    assert plan.previous_after_sha256 == V1


def test_resumed_push_with_another_artifact_keeps_the_starting_release_in_previous() -> None:
    state = node(binary=V2, previous=V1, record=pending())
    plan = er.plan_push(state, V3, {})
    assert plan.write_binary and not plan.rotate_binary
    assert plan.previous_after_sha256 == V1
    assert plan.pending is not None and plan.pending.from_sha256 == V1


def test_resumed_push_before_binary_replaced_rotates_as_usual() -> None:
    plan = er.plan_push(node(binary=V1, previous=V0, record=pending()), V2, {})
    assert plan.resumed and plan.rotate_binary and plan.write_binary
    assert plan.previous_after_sha256 == V1


def test_resumed_push_with_everything_in_place_only_completes_the_record() -> None:
    state = node(binary=V2, previous=V1, config_previous="rollout_pct=0\n", record=pending())
    plan = er.plan_push(state, V2, {})
    assert plan.changed and plan.resumed
    assert not (plan.rotate_binary or plan.write_binary or plan.rotate_config or plan.write_config)


# --- revert decisions --------------------------------------------------------------------------


def test_revert_without_previous_or_rollback_binary_names_path_and_rollback_binary() -> None:
    with pytest.raises(er.ReleaseError) as err:
        er.plan_revert(node(previous=None), None, "/opt/edge/edge.previous")
    assert "/opt/edge/edge.previous" in str(err.value) and "ROLLBACK_BINARY" in str(err.value)
    assert "\n" not in str(err.value)


def test_revert_restores_previous_binary_and_config() -> None:
    plan = er.plan_revert(node(binary=V2, previous=V1, config="rollout_pct=10\n",
                               config_previous="rollout_pct=0\n"), None, "p")
    assert plan.changed and plan.restore_binary and plan.restore_config
    assert plan.source_sha256 == V1 and not plan.sync_previous_binary


def test_revert_when_current_equals_previous_is_a_no_op() -> None:
    plan = er.plan_revert(node(binary=V1, previous=V1, config="a=1\n", config_previous="a=1\n"),
                          None, "p")
    assert not plan.changed


def test_revert_to_rollback_binary_also_makes_it_previous() -> None:
    plan = er.plan_revert(node(binary=V2, previous=None), er.FileState(V0, 0o755), "p")
    assert plan.restore_binary and plan.sync_previous_binary and plan.source_sha256 == V0


def test_revert_after_a_push_killed_before_the_binary_moved_keeps_the_binary() -> None:
    # .previous (v0) was not yet rotated; the binary is still v1, the release the push started from.
    state = node(binary=V1, previous=V0, config="rollout_pct=0\n", config_previous="old=1\n",
                 record=pending())
    plan = er.plan_revert(state, None, "p")
    assert not plan.restore_binary and plan.sync_previous_binary and plan.source_sha256 == V1
    assert not plan.restore_config and plan.sync_previous_config
    assert plan.clears_pending


def test_revert_after_a_push_killed_after_the_binary_moved_restores_previous() -> None:
    state = node(binary=V2, previous=V1, config="rollout_pct=0\n",
                 config_previous="rollout_pct=0\n", record=pending())
    plan = er.plan_revert(state, None, "p")
    assert plan.restore_binary and plan.source_sha256 == V1 and not plan.restore_config


# --- record ------------------------------------------------------------------------------------


def test_merge_owned_keeps_keys_the_module_does_not_own() -> None:
    on_disk = {"serving_sha256": V1, "team": "edge", "current": {"sha256": V1}, "pending": {"x": 1}}
    ours = {"current": {"sha256": V2}, "serving_sha256": "ignored", "action": "deploy"}
    assert er.merge_owned(on_disk, ours) == {
        "serving_sha256": V1, "team": "edge", "current": {"sha256": V2}, "action": "deploy"}


def test_version_of_reads_record_entries_and_known_versions() -> None:
    record = {"current": {"sha256": V2, "version": "v2"},
              "previous": {"sha256": V1, "version": "v1"}}
    assert er.version_of(V1, record) == "v1"
    assert er.version_of(V3, record) is None
    assert er.version_of(V3, record, {V3: "v3"}) == "v3"


# --- state=configured: the decision ----------------------------------------------------------

S1, S0 = "1" * 64, "0" * 64


def state(config: str | None = "rollout_pct=0\n", record: dict[str, Any] | None = None,
          managed: bool = True) -> Any:
    return er.NodeState(
        binary=er.FileState(S1, 0o755),
        previous=er.FileState(S0, 0o755),
        config_text=config,
        config_previous_text="rollout_pct=0\n",
        record=record or {},
        config_managed=managed,
    )


def test_plan_sets_the_key_in_place_and_keeps_other_lines() -> None:
    plan = er.plan_configure(state("# edge\nfeature=on\nrollout_pct=0\n"), {"rollout_pct": "10"})
    assert plan.changed and plan.write_config
    assert plan.new_config_text == "# edge\nfeature=on\nrollout_pct=10\n"
    assert plan.record_config == {"feature": "on", "rollout_pct": "10"}


def test_plan_with_the_key_already_set_and_recorded_is_a_no_op() -> None:
    plan = er.plan_configure(state("rollout_pct=10\n", {"config": {"rollout_pct": "10"}}),
                             {"rollout_pct": "10"})
    assert not plan.changed and not plan.write_config


def test_plan_completes_a_record_left_stale_by_a_killed_run() -> None:
    plan = er.plan_configure(state("rollout_pct=10\n", {"config": {"rollout_pct": "0"}}),
                             {"rollout_pct": "10"})
    assert plan.changed and not plan.write_config


def test_plan_creates_a_missing_config_file() -> None:
    plan = er.plan_configure(state(config=None), {"rollout_pct": "5"})
    assert plan.write_config and plan.new_config_text == "rollout_pct=5\n"


@pytest.mark.parametrize(
    ("node", "updates", "words"),
    [
        (state(), {}, "at least one key"),
        (state(managed=False), {"rollout_pct": "1"}, "config_path"),
        (state(record={"pending": {"target_sha256": S1, "from_sha256": S0}}), {"rollout_pct": "1"},
         "interrupted push"),
        (state(record={"pending_rollback": {"target_sha256": S0}}), {"rollout_pct": "1"},
         "interrupted rollback"),
    ],
)
def test_plan_refusals_say_what_to_do_in_one_line(node: Any, updates: dict[str, str],
                                                   words: str) -> None:
    with pytest.raises(er.ReleaseError) as err:
        er.plan_configure(node, updates)
    assert words in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"install_dir": "/srv/edge", "binary_name": "edge", "config_path": "/etc/edge.conf"}, None),
        ({"install_dir": "/srv/edge"}, None),  # the action plugin's args: the module's defaults not filled in
        ({"install_dir": "/srv/edge", "binary_name": "a/edge"}, "binary_name 'a/edge' must be a plain file name"),
        ({"install_dir": "/srv/edge", "binary_name": ""}, "binary_name '' must be a plain file name"),
        ({"install_dir": "srv/edge"}, "install_dir 'srv/edge' must be an absolute path"),
        ({"install_dir": "/srv/edge", "config_path": "edge.conf"}, "config_path 'edge.conf' must be an absolute"),
        ({"install_dir": "/srv/edge", "record_path": "/srv/../r.json"}, "record_path '/srv/../r.json' contains '..'"),
    ],
)
def test_check_names_needs_no_file_system(params: dict[str, Any], message: str | None) -> None:
    if message is None:
        er.check_names(params)
    else:
        with pytest.raises(er.ReleaseError, match=re.escape(message)):
            er.check_names(params)
