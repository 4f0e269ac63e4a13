"""The version and fault profile baked into an artifact (``edge_app/build.json`` in the zipapp)."""

from __future__ import annotations

import json
import pkgutil
import re
from dataclasses import dataclass

from .faults import NO_FAULT, format_fault_spec, parse_fault_spec

BUILD_JSON = "build.json"
DEV_VERSION = "0.0.0+dev"
# Safe in an HTTP header, a Prometheus label and a file name.
VERSION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")


@dataclass(frozen=True)
class BuildInfo:
    version: str
    fault: str  # canonical fault SPEC, "none" for a good build


def validate_version(version: str) -> str:
    if not VERSION_RE.fullmatch(version):
        raise ValueError(
            f"version {version!r} is not valid: use 1-64 of A-Z a-z 0-9 . _ + - (e.g. 1.4.2)"
        )
    return version


def make_build_info(version: str, fault_spec: str) -> BuildInfo:
    """Validate inputs and canonicalise the fault SPEC. Raises ValueError with a one-line reason."""
    return BuildInfo(validate_version(version), format_fault_spec(parse_fault_spec(fault_spec)))


def to_json(info: BuildInfo) -> bytes:
    """Stable bytes (sorted keys) so that identical inputs give identical artifacts."""
    text = json.dumps({"version": info.version, "fault": info.fault}, sort_keys=True)
    return (text + "\n").encode()


def load_build_info() -> BuildInfo:
    """The baked build info; running from a source checkout (no build.json) is a dev build."""
    try:
        data = pkgutil.get_data(__package__ or "edge_app", BUILD_JSON)
    except OSError:
        data = None
    if data is None:
        return BuildInfo(DEV_VERSION, NO_FAULT)
    raw = json.loads(data)
    return BuildInfo(str(raw["version"]), str(raw.get("fault") or NO_FAULT))
