"""The operator_inputs action's check: a play's extra vars against the one schema, named by extra var."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from ansible_collections.edge.canary.plugins.action.operator_inputs import check
from ansible_collections.edge.canary.plugins.module_utils.operator_inputs import InputError

DEPLOY_ID = re.compile(r"[0-9]{8}T[0-9]{6}Z-[A-Za-z0-9_.-]+-[0-9a-f]{6}")


def nodes(count: int) -> list[str]:
    return [f"edge-{n}" for n in range(1, count + 1)]


def test_a_deploy_without_an_id_gets_one_and_its_values_as_the_play_uses_them(tmp_path: Path) -> None:
    artifact = tmp_path / "edge-v2"
    artifact.write_bytes(b"\x7fELF")
    artifact.chmod(0o755)
    out = check("deploy", {"deploy_artifact": str(artifact), "deploy_batch": 2,
                           "deploy_peer_nodes": "edge-2 edge-3", "deploy_artifact_sha256": "AB" * 32,
                           "force_lock": "yes", "unrelated": {"x": 1}})
    assert DEPLOY_ID.fullmatch(out["run_id"])
    assert out["checked"] == {"deploy_artifact": str(artifact), "deploy_batch": 2,
                              "deploy_peer_nodes": "edge-2,edge-3", "deploy_artifact_sha256": "ab" * 32,
                              "force_lock": True}
    assert check("deploy", {"deploy_id": "given-1"})["run_id"] == "given-1"


def test_a_release_file_the_control_host_lacks_is_refused_as_input(tmp_path: Path) -> None:
    """Before, a missing ARTIFACT or ROLLBACK_BINARY given to ansible-playbook -e (or an AWX survey)
    failed later in the play, as a failed run with a record, not as refused input."""
    with pytest.raises(InputError, match=f"deploy_artifact={tmp_path}/gone does not exist: give the path"):
        check("deploy", {"deploy_artifact": str(tmp_path / "gone")})
    with pytest.raises(InputError, match=f"rollback_binary={tmp_path} is a directory, not a binary"):
        check("rollback", {"rollback_binary": str(tmp_path)})
    with pytest.raises(InputError, match="migrations_dir=.* is not a directory on the control host"):
        check("deploy", {"migrations_dir": str(tmp_path / "gone")})


def test_a_rollback_is_named_by_its_own_id_or_by_the_deploy_whose_watcher_runs_it() -> None:
    assert re.fullmatch(r"rollback-\d{8}T\d{6}Z-[\w.-]+", check("rollback", {"rollback_nodes": "all"})["run_id"])
    assert check("rollback", {"edge_canary_lock_id": "20261207T0900Z-alice-3f9a0c"})["run_id"] == \
        "20261207T0900Z-alice-3f9a0c"


@pytest.mark.parametrize(("request_", "given", "words"), [
    ("deploy", {"deploy_batch": "²"}, "deploy_batch=\\xb2 is not a whole number of at least 1; e.g. deploy_batch=2"),
    ("deploy", {"deploy_batch": True}, "deploy_batch=true is not a value for deploy_batch"),
    # (the password masked: alone, or with the user when edge_canary.ops.inputs' scrubber is loaded)
    ("deploy", {"prom_url": "http://u:pw@prom:9090"}, "***@prom:9090 carries a user or password"),
    ("deploy", {"deploy_id": "a/b"}, "deploy_id=a/b is not a usable id"),
    ("deploy", {"force_migrate": "maybe"}, "force_migrate=maybe is not true or false"),
    ("deploy", {"deploy_config": {"a": 1}}, "deploy_config is a dict, not a value"),
    ("rollback", {"rollback_nodes": ["edge-1"]}, "rollback_nodes is a list, not a value; give text or a number, e.g."),
    ("rollback", {"rollback_nodes": "all,edge-1"}, "rollback_nodes=all,edge-1 mixes 'all' with node names"),
    ("rollout", {}, 'give rollout_pct=N (0-100) or rollout_stages="1 10 50 100"'),
    ("rollout", {"rollout_pct": 5, "rollout_stages": "1 10"}, "give rollout_pct or rollout_stages, not both"),
    ("rollout", {"rollout_pct": "10", "rollout_hold": "2h"}, "rollout_hold=2h is not a whole number of seconds"),
])
def test_a_bad_value_is_refused_in_one_line_naming_the_extra_var(request_: str, given: dict[str, object],
                                                                 words: str) -> None:
    with pytest.raises(InputError) as err:
        check(request_, given)
    assert words in str(err.value) and "\n" not in str(err.value), str(err.value)
    assert "pw@" not in str(err.value)


def test_a_rollout_takes_a_pct_of_0_or_a_list_of_stages() -> None:
    zero = check("rollout", {"rollout_pct": 0})
    assert zero["stages"] == [0] and zero["asked"] == "rollout_pct=0" and zero["hold"] is None
    assert zero["run_id"].startswith("rollout-")
    staged = check("rollout", {"rollout_stages": [1, 10, 50], "rollout_hold": "5", "rollout_id": "r-1"})
    assert staged["stages"] == [1, 10, 50] and staged["hold"] == 5 and staged["run_id"] == "r-1"


def test_a_batch_bigger_than_the_runs_forks_is_refused_naming_both() -> None:
    with pytest.raises(InputError) as err:
        check("deploy", {"deploy_batch": "10"}, forks=5)
    assert str(err.value).startswith("deploy_batch=10 drains 10 nodes at once, more than this run's 5 forks")
    assert "run with at least 10 forks (ANSIBLE_FORKS" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(InputError) as err:
        check("rollback", {"rollback_batch": "10", "rollback_max_unavailable": "8"}, forks=5)
    assert str(err.value).startswith("rollback_batch=10 with rollback_max_unavailable=8 drains 8 nodes at once")


def test_a_batch_within_the_forks_or_capped_to_them_passes() -> None:
    assert check("deploy", {"deploy_batch": "5"}, forks=5)["checked"]["deploy_batch"] == 5
    assert check("rollback", {"rollback_batch": "10", "rollback_max_unavailable": "5"}, forks=5)["checked"] == {
        "rollback_batch": 10, "rollback_max_unavailable": 5}
    assert check("deploy", {"deploy_batch": "50"})["checked"]["deploy_batch"] == 50  # forks unknown: no check


def test_a_batch_counts_only_the_nodes_it_can_drain() -> None:
    """BATCH=50 on a 10-node fleet drains 9 (the peers; a rollback keeps one node in rotation without
    MAX_UNAVAILABLE), or the nodes named: refused only when that is more than the forks."""
    assert check("deploy", {"deploy_batch": "50"}, forks=9, edge=nodes(10))["checked"]["deploy_batch"] == 50
    assert check("rollback", {"rollback_batch": "50"}, forks=9, edge=nodes(10))["checked"]["rollback_batch"] == 50
    assert check("deploy", {"deploy_batch": "10", "deploy_peer_nodes": "edge-2,edge-3"}, forks=2, edge=nodes(30))
    assert check("rollback", {"rollback_batch": "10", "rollback_nodes": "edge-2,edge-3,edge-4"}, forks=3,
                 edge=nodes(30))
    with pytest.raises(InputError) as err:
        check("deploy", {"deploy_batch": "50"}, forks=8, edge=nodes(10))
    assert str(err.value).startswith("deploy_batch=50 on 10 edge nodes drains 9 nodes at once, more than this "
                                     "run's 8 forks")
    # With MAX_UNAVAILABLE the whole fleet can be one batch; the nodes named bound it still.
    with pytest.raises(InputError) as err:
        check("rollback", {"rollback_batch": "50", "rollback_max_unavailable": "40"}, forks=9, edge=nodes(10))
    assert "on 10 edge nodes drains 10 nodes at once" in str(err.value)
    with pytest.raises(InputError) as err:
        check("rollback", {"rollback_batch": "10", "rollback_max_unavailable": "10", "rollback_nodes": "all"},
              forks=9, edge=nodes(10))
    assert "drains 10 nodes at once" in str(err.value)
    with pytest.raises(InputError):
        check("rollback", {"rollback_batch": "5", "rollback_nodes": "edge-1,edge-2,edge-3,edge-4,edge-5"},
              forks=4, edge=nodes(10))


@pytest.mark.parametrize(("request_", "given", "refusal"), [
    ("deploy", {"deploy_canary_node": "edge-9"},
     "deploy_canary_node=edge-9 is not an edge node of this inventory; give one of edge-1, edge-2, edge-3"),
    ("deploy", {"deploy_peer_nodes": "edge-2,edge-7,edge-8"},
     "deploy_peer_nodes=edge-2,edge-7,edge-8 names edge-7, edge-8, not an edge node of this inventory; "
     "give some of edge-1, edge-2, edge-3"),
    ("rollback", {"rollback_nodes": "edge-3 edge-33"},
     "rollback_nodes=edge-3,edge-33 names edge-33, not an edge node of this inventory; "
     "give all or some of edge-1, edge-2, edge-3"),
])
def test_a_node_the_inventory_does_not_hold_is_refused(request_: str, given: dict[str, str], refusal: str) -> None:
    with pytest.raises(InputError) as err:
        check(request_, given, forks=5, edge=nodes(3))
    assert str(err.value) == refusal


def test_known_nodes_and_all_pass_and_a_big_fleet_is_named_by_a_few_and_its_count() -> None:
    assert check("rollback", {"rollback_nodes": "all"}, edge=nodes(3))["checked"] == {"rollback_nodes": "all"}
    assert check("deploy", {"deploy_canary_node": "edge-3", "deploy_peer_nodes": "edge-1"}, edge=nodes(3))
    with pytest.raises(InputError) as err:
        check("rollback", {"rollback_nodes": "edge-1001"}, edge=nodes(1000))
    assert str(err.value) == ("rollback_nodes=edge-1001 is not an edge node of this inventory; "
                              "give all or some of edge-1, edge-2, edge-3, edge-4, edge-5, … (1000 edge nodes)")
