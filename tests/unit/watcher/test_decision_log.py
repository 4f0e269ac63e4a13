"""Secret scrubbing and the JSON-lines decision log."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from watcher.config import load_settings
from watcher.decision_log import MASK, DecisionLog, Scrubber


@pytest.mark.parametrize(
    ("text", "leak", "kept"),
    [
        ("GET http://alice:hunter2@prom:9090/api", "hunter2", "http://alice:***@prom:9090/api"),
        ("https://tok3n@prom/api", "tok3n", "https://***@prom/api"),
        ("Authorization: Bearer abc.def-123", "abc.def-123", "Authorization: Bearer ***"),
        ("{'Authorization': 'Basic dXNlcjpwdw=='}", "dXNlcjpwdw==", "'Authorization': 'Basic ***'"),
        ("sent bearer xyz987 to prom", "xyz987", "bearer ***"),
        ("http://prom/api?query=up&access_token=q1w2e3", "q1w2e3", "access_token=***"),
        ("password=letmein&x=1", "letmein", "password=***&x=1"),
    ],
)
def test_patterns_are_scrubbed(text: str, leak: str, kept: str) -> None:
    out = Scrubber().text(text)
    assert leak not in out
    assert kept in out


def test_known_secrets_are_scrubbed_anywhere_even_encoded() -> None:
    scrub = Scrubber(["s3cr3t-token", "pa55"])
    scrub.add("alice", "pa55")
    pair = base64.b64encode(b"alice:pa55").decode()
    out = scrub.text(f"error: token s3cr3t-token rejected; header {pair}; pw pa55")
    assert "s3cr3t-token" not in out and "pa55" not in out and pair not in out
    assert out.count(MASK) == 3


def test_nested_values_and_secret_keys() -> None:
    scrub = Scrubber(["tok"])
    data = {
        "settings": {"prom_token": "anything", "prom_password": None, "window": 30},
        "extravars": {"vault_password": "v", "node": "edge-2"},
        "headers": [{"Authorization": "Bearer zzz"}],
        "reasons": ["url http://u:p@h/ tok"],
        "nan": float("nan"),
    }
    out = scrub.value(data)
    assert out["settings"] == {"prom_token": MASK, "prom_password": None, "window": 30}
    assert out["extravars"] == {"vault_password": MASK, "node": "edge-2"}
    assert out["headers"] == [{"Authorization": MASK}]
    assert out["reasons"] == [f"url http://u:{MASK}@h/ {MASK}"]
    assert out["nan"] == "nan"


def test_log_lines_parse_and_carry_no_secret(tmp_path: Path) -> None:
    settings = load_settings(
        ["--prom-url", "http://bob:b0bs-pass@127.0.0.1:9", "--canary-selector", 'node="a"',
         "--control-selector", 'node!="a"', "--revert-action", "none"],
        environ={},
    )  # fmt: skip
    scrub = Scrubber(settings.secrets)
    scrub.add(settings.prom_user, settings.prom_password)
    path = tmp_path / "d.jsonl"
    log = DecisionLog(str(path), scrub)
    log.write("start", settings=settings.public())
    log.write("probe", k=1, reasons=["blind: cannot reach http://bob:b0bs-pass@127.0.0.1:9"],
              p95=float("inf"))  # fmt: skip
    log.close()
    log = DecisionLog(str(path), scrub)  # appends, never truncates
    log.write("verdict", verdict="hold", exit_code=2)
    log.close()
    text = path.read_text()
    assert "b0bs-pass" not in text
    records = [json.loads(line) for line in text.splitlines()]
    assert [r["event"] for r in records] == ["start", "probe", "verdict"]
    assert all("ts" in r for r in records)
    assert records[0]["settings"]["prom_password"] == MASK
    assert records[0]["settings"]["prom_url"] == "http://127.0.0.1:9"
    assert records[1]["p95"] == "inf"


def test_no_path_means_no_file(tmp_path: Path) -> None:
    log = DecisionLog(None, Scrubber())
    log.write("probe", k=1)
    log.close()
    assert list(tmp_path.iterdir()) == []
    assert json.loads(log.line("probe", k=1))["k"] == 1
