"""Where the bench reads each node directly (its loopback port, or its own address in hosts mode), and on
which CPUs it runs the lab and the controller."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_canary.bench.cli import OWN_HOSTS_LAB, OWN_LAB, Bench, parse_args
from edge_canary.bench.lab import VENV_BIN, BenchError, LabHandle, split_cpus
from tests.helpers.paths import REPO


def test_a_loopback_lab_is_read_on_each_nodes_own_port(tmp_path: Path) -> None:
    lab = LabHandle({**OWN_LAB, "LAB_DIR": str(tmp_path), "LAB_NODES": "3"}, tmp_path)
    assert lab.node_urls() == {"edge-1": "http://127.0.0.1:24101", "edge-2": "http://127.0.0.1:24102",
                               "edge-3": "http://127.0.0.1:24103"}


def test_a_hosts_lab_is_read_at_each_nodes_address_on_the_subnet(tmp_path: Path) -> None:
    lab = LabHandle({**OWN_HOSTS_LAB, "LAB_DIR": str(tmp_path), "LAB_NODES": "2"}, tmp_path)
    assert lab.node_urls() == {"edge-1": "http://10.212.0.2:8080", "edge-2": "http://10.212.0.3:8080"}


def test_the_lab_gets_the_first_cpu_and_the_controller_the_others() -> None:
    assert split_cpus({3, 1, 2, 0}) == ("0", "1,2,3")
    assert split_cpus({5, 7}) == ("5", "7")
    with pytest.raises(BenchError, match="needs at least 2 CPUs"):
        split_cpus({0})


def test_only_an_isolated_bench_pins_the_controller_and_the_lab(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1})
    playbook = [str(VENV_BIN / "ansible-playbook"), str(REPO / "playbooks/rollback.yml"), "-e", "@vars.json"]
    assert LabHandle({}, tmp_path).controller("rollback.yml", "-e", "@vars.json") == playbook
    assert LabHandle({}, tmp_path).pinned(["loadgen"], "lab") == ["loadgen"]
    isolated = LabHandle({}, tmp_path, isolate=True)
    assert isolated.controller("rollback.yml", "-e", "@vars.json") == ["taskset", "-c", "1", *playbook]
    assert isolated.pinned(["loadgen"], "lab") == ["taskset", "-c", "0", "loadgen"]


def test_an_isolated_controller_is_in_the_reports_command_and_settings(tmp_path: Path) -> None:
    bench = Bench(parse_args(["--phases", "green", "--isolate-controller", "--work", str(tmp_path)]))
    assert bench.lab.isolate
    assert "--isolate-controller " in bench.results.command
    assert bench.results.settings["controller"] == "on CPUs of its own"
    assert "controller" not in Bench(parse_args(["--work", str(tmp_path)])).results.settings


def test_an_isolated_controller_needs_the_benchs_own_lab(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--isolate-controller", "--use-running-lab"])
    assert "drop --use-running-lab" in capsys.readouterr().err


def test_a_green_window_of_its_own_is_in_the_reports_command_and_settings(tmp_path: Path) -> None:
    bench = Bench(parse_args(["--phases", "roll", "--green-window", "15", "--work", str(tmp_path)]))
    assert bench.green_window == 15
    assert " --green-window 15 " in bench.results.command
    assert bench.results.settings["green SLI window"] == "15 s"
    default = Bench(parse_args(["--work", str(tmp_path)]))
    assert default.green_window == 30 and "--green-window" not in default.results.command


@pytest.mark.parametrize("window", ["14", "nan", "-30", "7200"])
def test_a_green_window_too_short_for_five_probes_is_refused(window: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--green-window", window])
    assert f"--green-window {float(window):g} is out of range; use 15 to 3600 seconds" in capsys.readouterr().err
