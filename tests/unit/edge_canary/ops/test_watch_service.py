"""edge_canary.ops.watch_service: the command lines and program files that start the watcher as a service
(the supervisor path runs for real in tests/integration/lab/watch_host_cases.py; the lab has no systemd)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from edge_canary.ops import watch_service
from edge_canary.ops.watch_service import (
    ServiceError,
    program_conf,
    read_credentials,
    start_supervisor,
    systemd_argv,
    unit_name,
)

WATCHER = ["/venv/bin/python", "-m", "edge_canary", "lock", "--dir", "/var/lib/edge-canary", "exec", "deploy", "--",
           "/venv/bin/python", "-m", "watcher", "--config", "/var/lib/edge-canary/runs/d1/watcher.json"]


def test_the_systemd_unit_is_transient_hardened_logs_to_the_run_and_gets_credentials_by_name_only() -> None:
    argv = systemd_argv("edge-canary-watch-d1", Path("/var/lib/edge-canary/runs/d1"), ["PROM_TOKEN"], WATCHER)
    assert argv[:4] == ["systemd-run", "--unit=edge-canary-watch-d1", "--collect", "--quiet"]
    assert argv[argv.index("--") + 1:] == WATCHER
    options = argv[:argv.index("--")]
    assert "--property=StandardOutput=append:/var/lib/edge-canary/runs/d1/watcher.log" in options
    assert "--working-directory=/var/lib/edge-canary/runs/d1" in options
    for setting in ("NoNewPrivileges=yes", "ProtectSystem=full", "PrivateTmp=yes", "RestrictSUIDSGID=yes"):
        assert f"--property={setting}" in options
    assert "--setenv=PROM_TOKEN" in options and not any("PROM_TOKEN=" in arg for arg in argv)


def test_the_supervisor_program_runs_once_quoted_with_its_environment() -> None:
    conf = program_conf("edge-canary-watch-d1", Path("/lab/runs/d1"),
                        {"EDGE_CANARY_LOCK_TOKEN": "abc", "PROM_URL": "http://127.0.0.1:9090/a%20b"}, WATCHER)
    lines = conf.splitlines()
    assert lines[0] == "[program:edge-canary-watch-d1]"
    assert lines[1] == "command=" + " ".join(f'"{arg}"' for arg in WATCHER)
    assert {"autorestart=false", "startretries=0", "stopasgroup=true", "killasgroup=true",
            "stdout_logfile=/lab/runs/d1/watcher.log"} <= set(lines)
    assert 'environment=EDGE_CANARY_LOCK_TOKEN="abc",PROM_URL="http://127.0.0.1:9090/a%%20b"' in lines
    with pytest.raises(ServiceError, match="double quote"):
        program_conf("edge-canary-watch-d1", Path("/lab"), {"PROM_URL": 'http://x/"'}, WATCHER)


def test_a_percent_in_the_run_dir_is_doubled_once_per_expansion_supervisor_makes_of_the_value() -> None:
    lines = program_conf("edge-canary-watch-d1", Path("/lab 100%/runs/d1"), {}, WATCHER).splitlines()
    assert "directory=/lab 100%%/runs/d1" in lines
    assert "stdout_logfile=/lab 100%%%%/runs/d1/watcher.log" in lines  # supervisor expands log file paths twice


@pytest.mark.parametrize("env", [{"PROM_TOKEN": "secret"}, {"PROM_PASSWORD": "pw"},
                                 {"PROM_URL": "http://user:pw@prometheus:9090"}])
def test_the_supervisor_service_refuses_credentials_before_writing_anything(tmp_path: Path, env: dict[str, str],
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watch_service, "supervisorctl", lambda *a: pytest.fail("supervisorctl was run"))
    with pytest.raises(ServiceError, match="takes no Prometheus credentials.*edge_canary_watch_manager=systemd"):
        start_supervisor("edge-canary-watch-d1", tmp_path, env, WATCHER, tmp_path / "supervisord.conf", tmp_path)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["edge-canary-watch-", "other-d1", "edge-canary-watch-a/b", "edge-canary-watch-a b"])
def test_a_service_name_other_than_edge_canary_watch_and_the_deploy_id_is_refused(name: str) -> None:
    with pytest.raises(ServiceError, match="must be edge-canary-watch-<deploy id>"):
        unit_name(name)
    assert unit_name("edge-canary-watch-20261202T011546Z-ops-a1b2c3") == "edge-canary-watch-20261202T011546Z-ops-a1b2c3"


def test_credentials_come_from_a_0600_file_that_is_removed_and_go_to_systemd_by_name(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[list[str]] = []

    def start_systemd(name: str, run_dir: Path, env_names: list[str], argv: list[str]) -> int:
        started.append([*env_names, os.environ["PROM_TOKEN"]])
        return 4242

    monkeypatch.setattr(watch_service, "start_systemd", start_systemd)
    monkeypatch.setenv("PROM_TOKEN", "the controller's")  # restored after main() sets the file's
    credentials = tmp_path / "credentials.json"
    credentials.write_text(json.dumps({"PROM_TOKEN": "s3cret"}))
    credentials.chmod(0o600)
    assert watch_service.main(["--manager", "systemd", "--name", "edge-canary-watch-d1", "--run-dir", str(tmp_path),
                               "--credentials", str(credentials), "--", *WATCHER]) == 0
    assert started == [["PROM_TOKEN", "s3cret"]] and not credentials.exists()


@pytest.mark.parametrize(("mode", "text", "error"), [
    (0o644, '{"PROM_TOKEN": "s3cret"}', "must be ours and mode 0600"),
    (0o600, '{"PROM_URL": "http://other"}', "must be a JSON object of PROM_TOKEN"),
    (0o600, "PROM_TOKEN=s3cret", "must be a JSON object of PROM_TOKEN"),
])
def test_a_credentials_file_others_may_read_or_that_names_other_variables_is_refused_and_removed(
        tmp_path: Path, mode: int, text: str, error: str) -> None:
    credentials = tmp_path / "credentials.json"
    credentials.write_text(text)
    credentials.chmod(mode)
    with pytest.raises(ServiceError, match=error):
        read_credentials(credentials)
    assert not credentials.exists()
