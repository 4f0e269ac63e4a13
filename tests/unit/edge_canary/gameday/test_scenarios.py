"""The scenario table (edge_canary/gameday/scenarios.py): names, what each expects, and the window rule."""

from __future__ import annotations

import ast
import re
import subprocess
import sys

import pytest

from edge_canary.gameday import cli
from edge_canary.gameday import scenarios as sc
from tests.helpers.paths import REPO

ISSUE_SCENARIOS = {"errors", "slow", "unhealthy", "crash", "prometheus-outage", "watcher-killed", "bad-rollout",
                   "green"}


def test_every_scenario_of_the_issue_exists_and_all_runs_each_once() -> None:
    assert set(sc.SCENARIOS) >= ISSUE_SCENARIOS
    names = [s.name for s in sc.resolve("all")]
    assert set(names) == set(sc.SCENARIOS) - set(sc.EXTRA) and len(names) == len(set(names))
    assert names[0] == "green"


def test_partition_drills_run_only_when_named_and_cut_a_node_or_prometheus() -> None:
    assert not {"partition-node", "partition-peer", "partition-prometheus"} & {s.name for s in sc.resolve("all")}
    (prom,) = sc.resolve("partition-prometheus")
    assert (prom.disturbance, prom.expect.tool_verdict, prom.expect.reverted) == (sc.CUT_PROMETHEUS, sc.REVERTED, True)
    assert prom.disturbance in sc.NETWORK_CUTS and prom.disturbance not in sc.PARTITIONS  # no node is cut
    assert sc.watch_window(prom, 15, 3, 6) == 3 + 6 + 9
    node, peer = sc.resolve("partition-node,partition-peer")
    assert (node.disturbance, node.expect.tool_verdict, node.expect.reverted) == (sc.CUT_CANARY, sc.REVERTED, True)
    assert (peer.disturbance, peer.expect.tool_verdict, peer.expect.reverted) == (sc.CUT_PEER, sc.PROMOTE, False)
    # The canary's cut lasts until the watcher is blind for max_staleness: the window leaves room for it.
    assert sc.watch_window(node, 15, 3, 6) == 3 + 6 + 9


def test_several_names_keep_their_order_and_drop_repeats() -> None:
    assert [s.name for s in sc.resolve("crash, errors,crash")] == ["crash", "errors"]


@pytest.mark.parametrize("value, needle", [
    ("", "SCENARIO is not set"),
    ("  ", "SCENARIO is not set"),
    ("erors", "SCENARIO='erors' is not a game-day scenario"),
    ("errors,nope", "SCENARIO='nope'"),
    ("all,errors", "SCENARIO='all'"),
])
def test_unknown_names_are_refused_with_the_list(value: str, needle: str) -> None:
    with pytest.raises(sc.ScenarioError) as err:
        sc.resolve(value)
    assert needle in str(err.value)
    assert "green, errors, slow" in str(err.value)


@pytest.mark.parametrize("name, verdict, reverted", [
    ("green", sc.PROMOTE, False),
    ("errors", sc.REVERTED, True),
    ("slow", sc.REVERTED, True),
    ("unhealthy", sc.ROLL_FAILED, True),
    ("crash", sc.ROLL_FAILED, True),
    ("prometheus-outage", sc.REVERTED, True),
    ("watcher-killed", sc.DIED, True),
    ("bad-rollout", sc.REVERTED, True),
])
def test_what_each_scenario_expects_of_the_tool(name: str, verdict: str, reverted: bool) -> None:
    expect = sc.SCENARIOS[name].expect
    assert (expect.tool_verdict, expect.reverted) == (verdict, reverted)


def test_faulty_releases_carry_their_fault_and_good_ones_none() -> None:
    assert sc.SCENARIOS["errors"].release == sc.Release("v2-errors", "errors=0.2:502")
    assert sc.SCENARIOS["errors"].release.file_name == "edge-v2-errors"
    assert "scope=new" in (sc.SCENARIOS["bad-rollout"].release.fault or "")
    for name in ("green", "prometheus-outage", "watcher-killed", "acceptance"):
        assert sc.SCENARIOS[name].release.fault is None


def test_the_outage_window_leaves_room_for_the_blind_revert() -> None:
    outage = sc.SCENARIOS["prometheus-outage"]
    # first probe (3) + staleness (6) + three more probes (9)
    assert sc.watch_window(outage, 10, 3, 6) == 18
    assert sc.watch_window(outage, 60, 3, 6) == 60
    assert sc.watch_window(sc.SCENARIOS["watcher-killed"], 5, 3, 6) == 12
    assert sc.watch_window(sc.SCENARIOS["errors"], 5, 3, 6) == 5


# --- one list: --list, make help, the docs and the README are made from (or held to) SCENARIOS ----------


def test_all_and_the_hosts_lab_drills_are_the_list_split_in_two() -> None:
    assert list(sc.ALL + sc.EXTRA) == list(sc.SCENARIOS)
    assert all(not sc.SCENARIOS[n].hosts_lab_only for n in sc.ALL)
    assert all(sc.SCENARIOS[n].hosts_lab_only for n in sc.EXTRA)
    assert sc.names() == "|".join((*sc.ALL, "all", *sc.EXTRA))


def test_list_prints_every_scenario_once(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--list"]) == 0
    out = capsys.readouterr().out
    assert out == sc.listing()
    assert [line.split()[0] for line in out.splitlines()] == [*sc.SCENARIOS, "all"]


def test_the_scenarios_module_runs_with_the_standard_library_alone() -> None:
    # -S: no site-packages (no venv, nothing installed), as `make help` runs it before `make setup`.
    done = subprocess.run([sys.executable, "-S", "-m", "edge_canary.gameday.scenarios", "--names"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, sc.names() + "\n", "")
    imported = {alias.name.split(".")[0] for node in ast.walk(ast.parse((REPO / "edge_canary/gameday/scenarios.py")
                                                                          .read_text()))
                if isinstance(node, ast.Import | ast.ImportFrom)
                for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])}
    assert imported <= sys.stdlib_module_names | {"__future__"}


def test_make_help_names_every_scenario_even_before_setup() -> None:
    done = subprocess.run(["make", "-s", "help", f"VENV={REPO}/no-such-venv"], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    (line,) = [line for line in done.stdout.splitlines() if line.strip().startswith("make gameday ")]
    assert f"SCENARIO={sc.names()} " in line


def test_the_docs_table_names_exactly_the_scenarios_in_their_order() -> None:
    doc = (REPO / "docs/GAMEDAY.md").read_text()
    table = doc.split("\n## Scenarios\n", 1)[1].split("\n\n| scenario |", 1)[1].split("\n\n", 1)[0]
    rows = [re.match(r"\| `([a-z-]+)`( \(hosts-mode lab only, not in `all`\))?", line) for line in
            table.splitlines()[2:]]
    assert all(rows), table
    assert [m.group(1) for m in rows if m] == list(sc.SCENARIOS)
    assert [m.group(1) for m in rows if m and m.group(2)] == list(sc.EXTRA)


def test_the_readme_points_at_the_list_instead_of_repeating_it() -> None:
    readme = (REPO / "README.md").read_text()
    assert "edge-canary gameday --list" in readme
    assert not re.search(r"(?:[a-z-]+\|){4,}", readme), "a list of scenarios is written out in the README"
