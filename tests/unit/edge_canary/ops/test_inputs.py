"""edge_canary.ops.inputs: the one schema of the on-call make variables (issue 15 items 5, 6, 13).

Every variable of deploy-canary, rollback and rollout is tried with what an attacker or a slip of the
keyboard would type: each is refused with one line (InputError), or, where the value is plain data
(a path, a URL), reaches the extra-vars file `!unsafe` and exactly as given."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest
import yaml

from edge_canary.ops import deploy, inputs, rollback, rollout

HOSTILE = [
    "{{ lookup('pipe','touch /tmp/x') }}",
    "{{lookup('pipe','id')}}",
    "{% for x in range(3) %}x{% endfor %}",
    "edge-2'",
    'edge-2"',
    "$(touch /tmp/x)",
    "`id`",
    "edge-2;id",
    "edge-2\nedge-3",
    "edge-2 force_lock=true",
    "force_lock=true",
    "a b",
    "\u00b2",
    "\u0663",  # ARABIC-INDIC DIGIT THREE: int() takes it, the schema must not
]


def one_line(exc: pytest.ExceptionInfo[inputs.InputError]) -> str:
    text = str(exc.value)
    assert "\n" not in text and text, text
    return text


# --- every variable against every hostile value ---------------------------------------------

DEPLOY_STRICT = ["CANARY_NODE", "PEER_NODES", "BATCH", "CONFIG", "SLI_WINDOW", "SLI_PROBE_INTERVAL",
                 "PROM_P95_THRESHOLD_S", "PROM_ERR_RATE_THRESHOLD", "ARTIFACT_SHA256", "PROM_URL"]


@pytest.mark.parametrize("name", DEPLOY_STRICT)
@pytest.mark.parametrize("value", HOSTILE)
def test_deploy_refuses_every_hostile_value(name: str, value: str) -> None:
    if (name, value) in (("CONFIG", "force_lock=true"), ("PEER_NODES", "a b")):
        pytest.skip("well-formed: a config key for the node's edge.conf; two node names")
    with pytest.raises(inputs.InputError) as err:
        deploy.checked_vars({name: value})
    assert one_line(err).startswith(name)


@pytest.mark.parametrize("name", ["ARTIFACT", "ROLLBACK_BINARY", "MIGRATIONS_DIR", "INVENTORY"])
@pytest.mark.parametrize("value", [v for v in HOSTILE if v not in ("a b", "force_lock=true", "edge-2 force_lock=true")])
def test_paths_refuse_quotes_braces_shell_and_control_characters(name: str, value: str) -> None:
    with pytest.raises(inputs.InputError) as err:
        deploy.checked_vars({name: value})
    assert one_line(err).startswith(name)


@pytest.mark.parametrize("name", ["NODES", "BATCH", "MAX_UNAVAILABLE", "ROLLBACK_BINARY", "INVENTORY"])
@pytest.mark.parametrize("value", HOSTILE)
def test_rollback_refuses_every_hostile_value(name: str, value: str) -> None:
    if (name in ("ROLLBACK_BINARY", "INVENTORY") and value in ("a b", "force_lock=true", "edge-2 force_lock=true")
            or (name, value) == ("NODES", "a b")):
        pytest.skip("well-formed: a file name (data in the vars file); two node names")
    with pytest.raises(inputs.InputError) as err:
        rollback.checked_vars({name: value})
    assert one_line(err).startswith(name)


@pytest.mark.parametrize("var", ["PCT", "STAGES", "ROLLOUT_HOLD"])
@pytest.mark.parametrize("value", HOSTILE)
def test_rollout_refuses_every_hostile_value(var: str, value: str) -> None:
    args = {"PCT": "", "STAGES": "", "ROLLOUT_HOLD": "", **({"PCT": "10"} if var == "ROLLOUT_HOLD" else {})}
    args[var] = value
    with pytest.raises(inputs.InputError) as err:
        rollout.parse_request(args["PCT"], args["STAGES"], args["ROLLOUT_HOLD"])
    one_line(err)


@pytest.mark.parametrize("hold", ["\u00b2", "\u00b3", "\u0663", "\uff11", "1\u00b2"])
def test_rollout_hold_with_non_ascii_digits_is_a_usage_error(hold: str) -> None:
    """Item 13: "²".isdigit() is True and int("²") raises; "١" is taken by int(): both refused."""
    with pytest.raises(inputs.InputError) as err:
        rollout.parse_request("10", "", hold)
    assert "ROLLOUT_HOLD=" in one_line(err) and "whole number of seconds" in one_line(err)


def test_rollout_main_says_usage_not_traceback(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PCT", "10")
    monkeypatch.setenv("ROLLOUT_HOLD", "\u00b2")
    assert rollout.main([]) == 64
    err = capsys.readouterr().err
    assert "Traceback" not in err and "nothing was changed" in err


@pytest.mark.parametrize("artifact", ["", "  "])
def test_a_deploy_without_an_artifact_is_refused_before_the_play(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], artifact: str) -> None:
    """It used to run the play, which wrote a run record before preflight said ARTIFACT is not set."""
    monkeypatch.setenv("ARTIFACT", artifact)
    monkeypatch.setattr(deploy, "run_play", lambda *_a, **_k: pytest.fail("the play ran"))
    assert deploy.main([]) == 64
    assert capsys.readouterr().err == ("deploy-canary: ARTIFACT is not set: run make deploy-canary "
                                       "ARTIFACT=/path/to/edge-binary; nothing was changed\n")


@pytest.mark.parametrize("user", ["bob{{ lookup('pipe','id') }}", "ann smith", "x;$(id)", "j\u00f6rg", "a'b\"c", ""])
@pytest.mark.parametrize("tool", ["deploy", "rollout"])
def test_the_run_id_user_part_is_letters_digits_dot_dash_underscore(
        monkeypatch: pytest.MonkeyPatch, user: str, tool: str) -> None:
    """The id names the user from $USER/$LOGNAME, and the watcher's revert passes it to ansible-runner,
    which templates extra vars: anything but [A-Za-z0-9._-] is replaced where the id is built."""
    module = deploy if tool == "deploy" else rollout
    seen: list[str] = []

    def run_play(_play: str, run_id: str, *_args: object, **_kwargs: object) -> int:
        seen.append(run_id)
        return 0

    monkeypatch.setattr(inputs.rules.getpass, "getuser", lambda: user)
    monkeypatch.setattr(module, "run_play", run_play)
    for name in ("PROM_URL", "CONFIG", "INVENTORY", "STAGES", "ROLLOUT_HOLD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ARTIFACT", sys.executable)
    monkeypatch.setenv("PCT", "10")
    assert module.main([]) == 0
    assert len(seen) == 1 and re.fullmatch(r"[A-Za-z0-9._-]+", seen[0]), seen
    assert ("bob" in seen[0]) == user.startswith("bob")


# --- good values ------------------------------------------------------------------------------

@pytest.mark.parametrize(("nodes", "expected"), [
    ("edge-2,edge-3", "edge-2,edge-3"),
    ("edge-2 edge-3", "edge-2,edge-3"),
    (" edge-2 , edge-3 ", "edge-2,edge-3"),
    ("edge-2,edge-2", "edge-2"),
    ("all", "all"),
])
def test_nodes_accepts_commas_spaces_and_all(nodes: str, expected: str) -> None:
    assert rollback.checked_vars({"NODES": nodes})["rollback_nodes"] == expected


def test_rollback_vars_batch_and_max_unavailable_are_ints_and_absent_when_unset() -> None:
    found = rollback.checked_vars({"BATCH": "2", "MAX_UNAVAILABLE": "1", "FORCE": "1"})
    assert found == {"rollback_batch": 2, "rollback_max_unavailable": 1, "force_lock": True}
    assert rollback.checked_vars({}) == {"force_lock": False}
    for bad in ("0", "-1", "1.5"):
        with pytest.raises(inputs.InputError):
            rollback.checked_vars({"BATCH": bad})


def test_deploy_vars_are_typed_and_paths_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "artifacts").mkdir()
    (tmp_path / "artifacts" / "edge v2").write_bytes(b"\x7fELF")
    (tmp_path / "artifacts" / "edge v2").chmod(0o755)
    found = deploy.checked_vars({"ARTIFACT": "artifacts/edge v2", "BATCH": "2", "CONFIG": " rollout_pct=10  a.b=x:1 ",
                                 "PEER_NODES": "edge-2 edge-3", "SLI_WINDOW": "9", "ARTIFACT_SHA256": "AB" * 32,
                                 "PROM_URL": "http://alice:s3cret@prom:9090/"})
    assert found["deploy_artifact"] == os.path.abspath("artifacts/edge v2")
    assert found["deploy_batch"] == 2
    assert found["deploy_config"] == "rollout_pct=10 a.b=x:1"
    assert found["deploy_peer_nodes"] == "edge-2,edge-3"
    assert found["deploy_artifact_sha256"] == "ab" * 32
    assert found["prom_url"] == "http://prom:9090"  # the credentials go by environment only


@pytest.fixture
def release_files(tmp_path: Path) -> dict[str, Path]:
    """A built binary, the same without its x bit, one without any read bit, a link to the first, a FIFO."""
    files = {"built": tmp_path / "edge", "noexec": tmp_path / "edge-noexec", "unreadable": tmp_path / "edge-0000"}
    for name, file in files.items():
        file.write_bytes(b"\x7fELF")
        file.chmod({"built": 0o755, "noexec": 0o644, "unreadable": 0o000}[name])
    files["link"] = tmp_path / "current"
    files["link"].symlink_to(files["built"])
    files["fifo"] = tmp_path / "fifo"
    os.mkfifo(files["fifo"])
    files["missing"], files["folder"] = tmp_path / "gone", tmp_path
    return files


@pytest.mark.parametrize(("given", "words"), [
    ("missing", "does not exist"),
    ("folder", "is a directory, not a binary"),
    ("fifo", "is not a regular file"),
    ("unreadable", "is not readable"),
    ("noexec", "is not executable"),
])
def test_an_artifact_that_is_not_a_built_binary_is_refused_before_the_play(
        release_files: dict[str, Path], given: str, words: str) -> None:
    """Before, these failed in preflight: a run record, status failed and exit 2 for a typed path."""
    with pytest.raises(inputs.InputError) as err:
        deploy.checked_vars({"ARTIFACT": str(release_files[given])})
    assert one_line(err) == (f"ARTIFACT={release_files[given]} {words}: give the path of a built edge binary "
                             "(make artifacts builds the lab's; chmod 0755 a downloaded one)")


def test_a_path_to_fix_is_quoted_whole(tmp_path: Path) -> None:
    """Messages cut a value at 80 characters; a path the operator must go and find is given whole."""
    deep = tmp_path / ("releases-" * 12) / "edge-v2"
    for name, vars_of in (("ARTIFACT", deploy.checked_vars), ("ROLLBACK_BINARY", rollback.checked_vars),
                          ("MIGRATIONS_DIR", deploy.checked_vars)):
        with pytest.raises(inputs.InputError) as err:
            vars_of({name: str(deep)})
        assert one_line(err).startswith(f"{name}={deep} "), one_line(err)


def test_an_artifact_or_rollback_binary_reached_through_a_link_is_taken_as_given(
        release_files: dict[str, Path]) -> None:
    assert deploy.checked_vars({"ARTIFACT": str(release_files["link"]), "ROLLBACK_BINARY": str(release_files["link"])}
                               ) == {"deploy_artifact": str(release_files["link"]),
                                     "rollback_binary": str(release_files["link"]), "force_lock": False,
                                     "force_migrate": False}


@pytest.mark.parametrize(("given", "words"), [
    ("missing", "does not exist"), ("folder", "is a directory, not a binary"), ("unreadable", "is not readable")])
def test_a_rollback_binary_that_cannot_be_pushed_is_refused_before_the_play(
        release_files: dict[str, Path], given: str, words: str) -> None:
    """It takes the mode of the binary it replaces: one without its x bit will do, one without a read bit not."""
    assert rollback.checked_vars({"ROLLBACK_BINARY": str(release_files["noexec"])})["rollback_binary"] == \
        str(release_files["noexec"])
    with pytest.raises(inputs.InputError) as err:
        rollback.checked_vars({"ROLLBACK_BINARY": str(release_files[given])})
    assert one_line(err) == f"ROLLBACK_BINARY={release_files[given]} {words}: give a known-good edge binary"


def test_migrations_dir_must_be_a_folder_of_the_control_host(release_files: dict[str, Path]) -> None:
    assert deploy.checked_vars({"MIGRATIONS_DIR": str(release_files["folder"])})["migrations_dir"] == \
        str(release_files["folder"])
    with pytest.raises(inputs.InputError, match="MIGRATIONS_DIR=.*/edge is not a directory on the control host"):
        deploy.checked_vars({"MIGRATIONS_DIR": str(release_files["built"])})


@pytest.mark.parametrize(("config", "words"), [
    ("oops", "CONFIG entry 'oops' is not key=value"),
    ("rollout_pct=101", "rollout_pct=101 is not a whole number from 0 to 100"),
    ("rollout_pct=\u00b2", "CONFIG entry 'rollout_pct=\\xb2' is not key=value"),
    ("a=1 a=2", "gives a key twice"),
    ("rollout-pct=5", "CONFIG key rollout-pct is not rollout_pct, which moves traffic between code paths; "
                      "write rollout_pct=5"),
    ("Rollout_Pct=5", "CONFIG key Rollout_Pct is not rollout_pct"),
])
def test_config_errors_say_what_to_give(config: str, words: str) -> None:
    with pytest.raises(inputs.InputError) as err:
        deploy.checked_vars({"CONFIG": config})
    assert words in one_line(err)


def test_prom_url_credentials_move_to_the_environment() -> None:
    env = deploy.play_env({"PROM_URL": "http://alice:p%40ss@prom:9090"})
    assert env["PROM_URL"] == "http://prom:9090"
    assert (env["PROM_USER"], env["PROM_PASSWORD"]) == ("alice", "p@ss")
    explicit = deploy.play_env({"PROM_URL": "http://a:b@prom:9090", "PROM_USER": "bob", "PROM_PASSWORD": "x"})
    assert (explicit["PROM_USER"], explicit["PROM_PASSWORD"]) == ("bob", "x")


def test_messages_never_quote_a_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROM_TOKEN", "tok-123456")
    with pytest.raises(inputs.InputError) as err:
        deploy.checked_vars({"PROM_URL": "http://alice:s3cret@prom:9090/x y"})
    assert "s3cret" not in one_line(err) and "alice" in one_line(err)
    assert "tok-123456" not in inputs.scrub("header: Bearer tok-123456 and tok-123456")


# --- the extra-vars file ----------------------------------------------------------------------

class _UnsafeLoader(yaml.SafeLoader):
    pass


def _unsafe(loader: yaml.SafeLoader, node: yaml.Node) -> tuple[str, object]:
    assert isinstance(node, yaml.ScalarNode)
    return ("UNSAFE", loader.construct_scalar(node))


_UnsafeLoader.add_constructor("!unsafe", _unsafe)


@pytest.mark.parametrize("value", [*HOSTILE, "\u2028x", "\\n", 'a"b\\'])
def test_every_string_is_written_unsafe_and_read_back_exactly(tmp_path: Path, value: str) -> None:
    target = tmp_path / "vars.yml"
    inputs.write_extra_vars(target, {"deploy_config": value, "nodes": [value], "batch": 2, "force_lock": False})
    assert target.stat().st_mode & 0o777 == 0o600
    loaded = yaml.load(target.read_text(), Loader=_UnsafeLoader)  # noqa: S506 - a SafeLoader subclass
    assert loaded == {"deploy_config": ("UNSAFE", value), "nodes": [("UNSAFE", value)], "batch": 2,
                      "force_lock": False}
    assert target.read_text().isascii()


def test_extra_var_names_are_plain() -> None:
    with pytest.raises(ValueError, match="not a plain variable name"):
        inputs.extra_vars_text({"a: b\nforce_lock": "x"})


@pytest.mark.parametrize(("name", "value"), [("ROLLOUT_STAGES", "10 \u00b2"), ("MAX_COLLATERAL", "\u0663")])
def test_gameday_numbers_with_non_ascii_digits_are_refused_not_a_traceback(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str, value: str) -> None:
    from edge_canary.gameday import cli as gameday

    monkeypatch.setenv(name, value)
    monkeypatch.setenv("GAMEDAY_RPS", "-1")  # checked after both: refused anyway, never a drill from here
    code = gameday.main(["--scenario", "green"])
    assert code != 0
    err = capsys.readouterr()
    assert name in err.err + err.out and "Traceback" not in err.err + err.out


@pytest.mark.parametrize("value", ["0.6", "-0.1", "nan", "2%", "abc"])
def test_a_background_errors_share_outside_0_to_half_is_refused_in_one_line(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], value: str) -> None:
    from edge_canary.gameday import cli as gameday

    monkeypatch.setenv("BACKGROUND_ERRORS", value)
    monkeypatch.setenv("GAMEDAY_RPS", "-1")  # refused anyway, never a drill from here
    assert gameday.main(["--scenario", "green"]) != 0
    err = capsys.readouterr()
    assert f"BACKGROUND_ERRORS={value!r}" in err.err + err.out and "Traceback" not in err.err + err.out
