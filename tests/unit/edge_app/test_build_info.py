"""What a build bakes in: validated version, canonical fault SPEC, stable JSON."""

from __future__ import annotations

import json

import pytest
from edge_app.build_info import BuildInfo, load_build_info, make_build_info, to_json


@pytest.mark.parametrize("version", ["1", "1.4.2", "2.0.0-rc.1", "1.4.3+bad", "v7_x"])
def test_valid_versions(version: str) -> None:
    assert make_build_info(version, "").version == version


@pytest.mark.parametrize("version", ["", "-1", "1.0 beta", "1.0\n", 'a"b', "x" * 65, "é"])
def test_invalid_versions_are_refused_in_one_line(version: str) -> None:
    with pytest.raises(ValueError) as info:
        make_build_info(version, "")
    assert "is not valid" in str(info.value)
    assert "\n" not in str(info.value)


def test_fault_is_canonicalised() -> None:
    info = make_build_info("1.0", "scope=new, errors=0.20:502")
    assert info == BuildInfo("1.0", "errors=0.2:502,scope=new")


def test_json_is_stable_and_sorted() -> None:
    data = to_json(BuildInfo("1.0", "none"))
    assert data == b'{"fault": "none", "version": "1.0"}\n'
    assert json.loads(data) == {"version": "1.0", "fault": "none"}


def test_source_checkout_is_a_dev_build() -> None:
    info = load_build_info()
    assert info.version.endswith("+dev")
    assert info.fault == "none"
