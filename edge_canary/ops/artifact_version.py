"""`edge-canary artifact-version ARTIFACT`: the version an edge artifact declares, read without running it.

Preflight runs as root before anything vouches for the artifact, so it never executes it: the build
(edge-canary build-artifact, edge_canary/lab/artifact.py) embeds `edge_app/build.json` in the zipapp,
and this reads that member as data. Prints the version and exits 0; exits 1 with one line when the
artifact declares none (not a zipapp, no or bad metadata): preflight then labels the release
`sha256:<prefix>`, or takes DEPLOY_VERSION.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import zipfile
from pathlib import Path

BUILD_MEMBER = "edge_app/build.json"
MAX_METADATA = 64 * 1024  # a build.json is a few dozen bytes: refuse to inflate anything bigger
# Safe in an HTTP header, a Prometheus label and a file name (lab/edge_app/build_info.py's rule).
VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")


class NoVersion(Exception):
    """The artifact declares no usable version; the message says why."""


def declared_version(path: Path) -> str:
    """The version in the artifact's embedded build metadata; NoVersion when there is none."""
    try:
        with zipfile.ZipFile(path) as archive:
            try:
                info = archive.getinfo(BUILD_MEMBER)
            except KeyError:
                raise NoVersion(f"{path} has no {BUILD_MEMBER}") from None
            if info.file_size > MAX_METADATA:
                raise NoVersion(f"{path}: {BUILD_MEMBER} is too big to be build metadata")
            raw = archive.read(info)
    except (zipfile.BadZipFile, OSError) as exc:
        raise NoVersion(f"{path} is not an edge zipapp with build metadata ({type(exc).__name__})") from None
    try:
        version = json.loads(raw)["version"]
    except (ValueError, KeyError, TypeError):
        raise NoVersion(f"{path}: {BUILD_MEMBER} has no version") from None
    if not isinstance(version, str) or not VERSION.fullmatch(version):
        raise NoVersion(f"{path}: {BUILD_MEMBER} declares an unusable version")
    return version


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("artifact", type=Path, help="the edge artifact (never executed)")
    args = parser.parse_args(argv)
    try:
        print(declared_version(args.artifact))
    except NoVersion as exc:
        print(f"artifact-version: {exc}", file=sys.stderr)
        return 1
    return 0
