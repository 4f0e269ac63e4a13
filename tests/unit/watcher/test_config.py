"""Settings: flags > environment > config file > defaults; every bad input is one line, exit 64."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from watcher import EXIT_USAGE
from watcher.cli import main
from watcher.config import ConfigError, Settings, load_settings, parse_duration
from watcher.judge import ProbeResult, State, WatchState, advance
from watcher.promql import DEFAULT_P95
from watcher.settings import settings_warnings

BASE = [
    "--prom-url", "http://127.0.0.1:9",
    "--canary-selector", 'node="edge-2"',
    "--control-selector", 'node!="edge-2"',
    "--revert-action", "none",
]  # fmt: skip


def load(*extra: str, env: dict[str, str] | None = None, base: bool = True) -> Settings:
    return load_settings([*(BASE if base else []), *extra], environ=env or {})


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_default_max_staleness_lets_two_blind_probes_pass_and_the_third_act() -> None:
    # Production: 30 s probes, 15 s scrapes. A failed scrape hides the canary's series until its
    # next one, so one or two missed scrapes blind at most two probes in a row; the last fresh
    # sample may be a scrape interval old. Neither trigger may act on those; the third does.
    rules = load("--interval", "30", "--scrape-interval", "15").rules
    assert rules.max_staleness == 90
    fresh = ProbeResult(30.0, State.GREEN, ("green",), checked_kinds=frozenset({"errors", "latency"}),
                        fresh_at=30.0 - 15)  # fmt: skip
    state, decision = advance(WatchState(), fresh, rules)
    for at in (60.0, 90.0):
        state, decision = advance(state, ProbeResult(at, State.BLIND, ("blind: no canary samples",)), rules)
        assert decision is None, decision
    _, decision = advance(state, ProbeResult(120.0, State.BLIND, ("blind: no canary samples",)), rules)
    assert decision is not None and decision.blind and decision.action == "revert"


def test_defaults() -> None:
    s = load()
    assert (s.window, s.interval, s.scrape_interval) == (300, 15, 15)
    assert s.range_seconds == 60  # max(interval, 4 scrape intervals)
    r = s.rules
    assert (r.p95_threshold, r.err_threshold) == (0.5, 0.005)
    assert (r.lat_tolerance, r.alpha, r.sliding, r.planned_probes) == (0.05, 0.01, 300, 20)
    assert (r.err_ratio, r.min_requests, r.errors_consecutive, r.latency_consecutive) == (
        2.0, 20, 1, 2,
    )  # fmt: skip
    assert (r.max_staleness, r.blind_probes, r.blind_policy, r.promote_fraction) == (
        45, 3, "revert", 0.8,
    )  # fmt: skip  # max_staleness: 3 x interval
    assert s.query_retries == 1
    assert s.metrics_port == 0 and s.planned_probes == 20
    assert s.queries.p95 == DEFAULT_P95


def test_flags_beat_env_beat_file_beat_defaults(tmp_path: Path) -> None:
    cfg = write(
        tmp_path / "w.yml",
        "window: 100\ninterval: 5\np95_threshold: 0.9\nerr_threshold: 0.02\nmin_requests: 7\n",
    )
    env = {"SLI_WINDOW": "60", "SLI_PROBE_INTERVAL": "4", "PROM_P95_THRESHOLD_S": "0.7"}
    s = load("--config", cfg, "--window", "40", env=env)
    assert s.window == 40  # flag over env and file
    assert s.interval == 4  # env over file
    assert s.rules.p95_threshold == 0.7  # env over file
    assert s.rules.err_threshold == 0.02  # file over default
    assert s.rules.min_requests == 7  # file only
    assert s.rules.err_ratio == 2.0  # default


def test_env_supplies_url_and_thresholds() -> None:
    env = {
        "PROM_URL": "http://prom:9090/",
        "PROM_ERR_RATE_THRESHOLD": "0.01",
        "SLI_WINDOW": "5m",
        "SLI_PROBE_INTERVAL": "30s",
    }
    s = load_settings(
        ["--canary-selector", "a=\"1\"", "--control-selector", "a!=\"1\"", "--revert-action",
         "none"], environ=env,
    )  # fmt: skip
    assert s.prom_url == "http://prom:9090"
    assert (s.window, s.interval, s.rules.err_threshold) == (300, 30, 0.01)


def test_empty_env_values_count_as_unset() -> None:
    assert load(env={"SLI_WINDOW": ""}).window == 300


def test_json_config_file_with_templates_and_lists(tmp_path: Path) -> None:
    cfg = write(
        tmp_path / "w.json",
        json.dumps(
            {
                "query-p95": "max(my_p95{${selector}})",
                "revert_action": "command",
                "revert_command": ["true", "--flag"],
                "revert_extravars": {"edge_release_reason": "watcher"},
                "max_staleness": "1m",
            }
        ),
    )
    s = load("--config", cfg)
    assert s.queries.p95 == "max(my_p95{${selector}})"
    assert s.revert_action == "none"  # the flag in BASE still wins over the file
    assert s.revert_command == ("true", "--flag")
    assert s.revert_extravars == {"edge_release_reason": "watcher"}
    assert s.rules.max_staleness == 60


def test_command_string_is_split_like_a_shell() -> None:
    s = load("--revert-action", "command", "--revert-command", "true 'a b' c")
    assert s.revert_command == ("true", "a b", "c")


def test_basic_auth_in_the_url_is_taken_out_of_it() -> None:
    s = load_settings(
        [*BASE[2:], "--prom-url", "http://u:pw%21@prom:9090"], environ={}
    )
    assert s.prom_url == "http://prom:9090"
    assert (s.prom_user, s.prom_password) == ("u", "pw!")
    assert s.secrets == ("pw!",)
    assert s.public()["prom_password"] == "***"
    assert "pw!" not in json.dumps(s.public(), default=str)


def test_token_is_public_only_as_a_mask() -> None:
    s = load(env={"PROM_TOKEN": "tok-123"})
    assert s.prom_token == "tok-123" and s.public()["prom_token"] == "***"


@pytest.mark.parametrize(
    ("raw", "seconds"), [(30, 30.0), ("30", 30.0), ("1.5", 1.5), ("500ms", 0.5), ("2m", 120.0),
                         ("1h", 3600.0), ("10s", 10.0)],
)  # fmt: skip
def test_durations(raw: object, seconds: float) -> None:
    assert parse_duration(raw, "x") == seconds


def test_range_default_and_explicit() -> None:
    assert load("--interval", "2", "--scrape-interval", "1").range_seconds == 4
    assert load("--interval", "10", "--scrape-interval", "1").range_seconds == 10
    assert load("--range", "1m").range_seconds == 60


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--prom-url", "prom:9090"], {}, "--prom-url must look like http://host:9090"),
        (["--window", "ten"], {}, "--window: 'ten' is not a duration"),
        ([], {"SLI_PROBE_INTERVAL": "-3"}, "SLI_PROBE_INTERVAL: '-3' is not a duration"),
        (["--interval", "0"], {}, "--interval must be more than 0"),
        (["--window", "5", "--interval", "10"], {}, "--window (5s) is shorter than one"),
        (["--range", "50", "--scrape-interval", "15"], {}, "or than 4 scrape intervals (60s)"),
        (["--range", "10", "--interval", "15", "--scrape-interval", "1"], {},
         "--range 10s is shorter than the interval (15s)"),
        (["--interval", "30", "--max-staleness", "45"], {}, "--max-staleness 45s is under 2 probe"),
        (["--alpha", "0"], {}, "--alpha is a false-revert budget"),
        (["--blind-probes", "0"], {}, "--blind-probes must be at least 1"),
        (["--query-counts", "sum(increase(x{${selector}}[1m]))"], {},
         "query_counts must select raw counters"),
        (["--p95-threshold", "fast"], {}, "--p95-threshold: expected a number, got 'fast'"),
        ([], {"PROM_ERR_RATE_THRESHOLD": "5"}, "--err-threshold is a ratio between 0 and 1"),
        (["--lat-tolerance", "1.5"], {}, "--lat-tolerance is a share between 0 and 1"),
        (["--err-ratio", "0.9"], {}, "--err-ratio must be at least 1"),
        (["--min-requests", "0"], {}, "--min-requests must be at least 1"),
        (["--min-requests", "2.5"], {}, "--min-requests: expected a whole number"),
        (["--latency-consecutive", "0"], {}, "--latency-consecutive must be at least 1"),
        (["--max-staleness", "0"], {}, "--max-staleness 0s is under 2 probe intervals (30s)"),
        (["--promote-fraction", "1.2"], {}, "--promote-fraction is a share between 0 and 1"),
        (["--blind-policy", "panic"], {}, "invalid choice: 'panic'"),
        (["--metrics-port", "70000"], {}, "--metrics-port must be 0 (off) to 65535"),
        (["--canary-selector", "{node='a'}"], {}, "give only the label matchers"),
        (["--control-selector", 'node="edge-2"'], {}, "canary and control selectors are the same"),
        (["--query-p95", "max(x)"], {}, "query_p95 does not use ${selector}"),
        ([], {"PROM_TOKEN": "t", "PROM_USER": "u", "PROM_PASSWORD": "p"}, "not both"),
        ([], {"PROM_PASSWORD": "p"}, "password was given without a user"),
        (["--prom-user", "u"], {}, "basic-auth user 'u' has no password"),
        (["--revert-action", "command"], {}, "--revert-action command needs --revert-command"),
        (["--revert-action", "command", "--revert-command", "no-such-binary-xyz"], {},
         "'no-such-binary-xyz' is not an executable"),
        (["--revert-action", "ansible", "--playbook", "/nonexistent.yml"], {},
         "the ansible revert needs --canary-node"),
        (["--revert-action", "ansible", "--canary-node", "edge-2", "--playbook",
          "/nonexistent.yml"], {}, "rollback playbook /nonexistent.yml not found"),
        (["--canary-node", "edge-*"], {}, "must be one inventory host name"),
        (["--canary-node", "all"], {}, "must be one inventory host name"),
        (["--revert-extravars", "[1]"], {}, "--revert-extravars: expected a mapping"),
        (["--decision-log", "/nonexistent-dir/x.jsonl"], {}, "directory /nonexistent-dir does"),
        (["--no-such-flag"], {}, "unrecognized arguments: --no-such-flag"),
    ],
)  # fmt: skip
def test_validation_errors(args: list[str], env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings([*BASE, *args], environ=env)  # later flags win, so args override BASE
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_url() -> None:
    with pytest.raises(ConfigError, match="no Prometheus URL: pass --prom-url or set PROM_URL"):
        load_settings(BASE[2:], environ={})


def test_ansible_action_checks_the_inventory(tmp_path: Path) -> None:
    playbook = write(tmp_path / "rollback.yml", "- hosts: all\n  tasks: []\n")
    ok = load("--revert-action", "ansible", "--canary-node", "edge-2", "--playbook", playbook)
    assert ok.playbook == playbook and ok.inventory is None
    with pytest.raises(ConfigError, match="inventory /nope.yml not found"):
        load("--revert-action", "ansible", "--canary-node", "edge-2", "--playbook", playbook,
             "--inventory", "/nope.yml")  # fmt: skip


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("window: [1\n", "is not valid YAML or JSON"),
        ("- 1\n- 2\n", "must hold a mapping"),
        ("windw: 10\n", "unknown setting 'windw'"),
        ("interval: fast\n", ": interval: 'fast' is not a duration"),
    ],
)
def test_config_file_errors(tmp_path: Path, text: str, message: str) -> None:
    cfg = write(tmp_path / "bad.yml", text)
    with pytest.raises(ConfigError) as err:
        load("--config", cfg)
    assert message in str(err.value)


def test_missing_config_file() -> None:
    with pytest.raises(ConfigError, match="cannot read config file /nonexistent.yml"):
        load("--config", "/nonexistent.yml")


def test_cli_usage_error_is_one_line_exit_64_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROM_TOKEN", "sekrit-token")
    verdict = tmp_path / "verdict.json"
    verdict.write_text('{"verdict": "promote"}')  # a stale one must survive a usage error
    log = tmp_path / "decisions.jsonl"
    code = main(
        [*BASE, "--window", "sekrit-token", "--verdict-file", str(verdict),
         "--decision-log", str(log)]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == EXIT_USAGE
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edge-canary-watcher: error: ")
    assert "--window: '***' is not a duration" in captured.err  # the echoed value is scrubbed
    assert not log.exists()
    assert verdict.read_text() == '{"verdict": "promote"}'


def test_cli_bad_flag_exits_64(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--frobnicate"]) == EXIT_USAGE
    assert "unrecognized arguments: --frobnicate" in capsys.readouterr().err


def test_metrics_on_a_bad_address_is_exit_64_before_anything_changes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    verdict = tmp_path / "verdict.json"
    verdict.write_text("{}")
    code = main([*BASE, "--metrics-port", "9", "--metrics-addr", "192.0.2.1",
                 "--verdict-file", str(verdict), "--decision-log", str(tmp_path / "d.jsonl")])  # fmt: skip
    assert code == EXIT_USAGE
    assert "cannot serve metrics on 192.0.2.1:9" in capsys.readouterr().err
    assert verdict.exists() and not (tmp_path / "d.jsonl").exists()


@pytest.mark.parametrize("key", ["deploy_id", "edge_canary_lock_id"])
@pytest.mark.parametrize("bad", ["20240101T000000Z-{{ lookup('pipe','id') }}-abc", "x y", "a;b", "a$(id)", "",
                                 "20240101T000000Z-jos\u00e9-abc"])
def test_a_deploy_id_the_revert_would_template_is_refused(key: str, bad: str) -> None:
    """ansible-runner passes revert_extravars to the rollback play, which templates them: a deploy id
    (built from $USER) may hold only letters, digits, '.', '_' and '-'."""
    with pytest.raises(ConfigError) as err:
        load("--revert-extravars", json.dumps({key: bad, "rollback_reason": "SLI watcher verdict"}))
    assert key in str(err.value) and "letters, digits" in str(err.value) and "\n" not in str(err.value)


def test_deploy_and_rollout_ids_pass() -> None:
    for good in ("20240101T000000Z-alice-0a1b2c", "rollout-20240101T000000Z-svc.deploy_1"):
        s = load("--revert-extravars", json.dumps({"deploy_id": good, "edge_canary_lock_id": good,
                                                   "rollback_reason": "SLI watcher verdict"}))
        assert s.revert_extravars["deploy_id"] == good


@pytest.mark.parametrize(
    ("window", "interval", "fraction", "warned"),
    [
        ("9", "3", "0.8", "3 probes (9 s window, one every 3 s) with promote_fraction 0.8: every probe must be "
         "green to promote, so one inconclusive probe (a Prometheus hiccup, a quiet spell) holds a healthy "
         "canary; give the window at least 5 probes (SLI_WINDOW 15 s or more at this interval) or lower "
         "promote_fraction"),
        ("3", "3", "0.5", "1 probe (3 s window, one every 3 s) with promote_fraction 0.5: every probe must be "
         "green to promote"),
        ("300", "3", "1", "lower promote_fraction below 1"),
        ("15", "3", "0.8", None),  # 4 of 5 promote: one probe may come up inconclusive
        ("10", "3", "0.5", None),
    ],
)  # fmt: skip
def test_a_window_with_no_room_for_an_inconclusive_probe_is_warned_of(
    window: str, interval: str, fraction: str, warned: str | None
) -> None:
    found = settings_warnings(load("--window", window, "--interval", interval, "--scrape-interval", "1",
                                   "--promote-fraction", fraction))
    if warned is None:
        assert found == []
    else:
        assert len(found) == 1 and warned in found[0], found


def test_check_config_says_what_weakens_the_watch_and_watches_nothing(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("SLI_WINDOW", "SLI_PROBE_INTERVAL", "PROM_URL", "PROM_TOKEN", "PROM_USER", "PROM_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    # BASE's Prometheus (port 9) answers nothing: a watch would fail; a check never asks it.
    assert main(["--check-config", *BASE, "--window", "9", "--interval", "3", "--scrape-interval", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "settings ok: 3 probes, every 3s"
    assert out[1].startswith("warning: 3 probes (9 s window, one every 3 s)") and len(out) == 2
    assert main(["--check-config", *BASE, "--window", "5", "--interval", "10"]) == EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip() == ("edge-canary-watcher: error: --window (5s) is shorter than one --interval (10s): "
                                    "widen the window")
