"""edge-canary check-prometheus, preflight's Prometheus check (issue 15 item 7): it authenticates like
the watcher (bearer token or basic auth, the credentials from the environment), against a real local
HTTP server that requires them, and never prints a credential."""

from __future__ import annotations

import subprocess
import sys

from edge_canary.ops.prom_check import check
from tests.helpers.authprom import protected_prometheus


def test_a_bearer_token_from_the_environment_is_sent() -> None:
    with protected_prometheus(token="tok-s3cret") as (url, seen):
        assert check({"PROM_URL": url, "PROM_TOKEN": "tok-s3cret"}) is None
        problem = check({"PROM_URL": url})
    assert seen.authorizations[0] == "Bearer tok-s3cret"
    assert problem is not None and "HTTP 401" in problem


def test_userinfo_in_the_url_becomes_basic_auth_and_is_never_printed() -> None:
    with protected_prometheus(user="alice", password="p@ss w0rd") as (url, seen):
        with_userinfo = url.replace("http://", "http://alice:p%40ss%20w0rd@")
        assert check({"PROM_URL": with_userinfo}) is None
        assert check({"PROM_URL": url, "PROM_USER": "alice", "PROM_PASSWORD": "p@ss w0rd"}) is None
        wrong = check({"PROM_URL": url.replace("http://", "http://alice:wr0ng-pw@")})
    assert seen.authorizations[0].startswith("Basic ")
    assert wrong is not None and "HTTP 401" in wrong
    assert "wr0ng-pw" not in wrong and "p%40ss" not in wrong


def test_a_wrong_token_is_scrubbed_from_the_message() -> None:
    with protected_prometheus(token="right") as (url, _seen):
        problem = check({"PROM_URL": url, "PROM_TOKEN": "wr0ng-t0ken"})
    assert problem is not None and "wr0ng-t0ken" not in problem


def test_unreachable_names_the_url_without_its_password() -> None:
    problem = check({"PROM_URL": "http://bob:hunter2@127.0.0.1:9"}, timeout=2)
    assert problem is not None and "127.0.0.1:9" in problem and "hunter2" not in problem


def test_the_subcommand_takes_nothing_secret_as_an_argument() -> None:
    with protected_prometheus(token="tok-env") as (url, _seen):
        ok = subprocess.run([sys.executable, "-m", "edge_canary", "check-prometheus"], capture_output=True,
                            text=True, env={"PROM_URL": url, "PROM_TOKEN": "tok-env", "PATH": "/usr/bin:/bin"})
        refused = subprocess.run([sys.executable, "-m", "edge_canary", "check-prometheus"], capture_output=True,
                                 text=True, env={"PROM_URL": url, "PATH": "/usr/bin:/bin"})
    assert ok.returncode == 0, ok.stderr
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1
