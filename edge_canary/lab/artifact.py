"""Build the edge binary artifact: a single-file Python zipapp with version and faults baked in.

    edge-canary build-artifact --version 1.4.2 --out artifacts/edge-1.4.2
    edge-canary build-artifact --version 1.4.3-bad --fault errors=0.2:502,scope=new --out ...

The build is reproducible (same inputs, same sha256) and the output appears atomically, 0755.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import zipfile
from pathlib import Path
from typing import NoReturn

import edge_app
from edge_app.build_info import BUILD_JSON, BuildInfo, make_build_info, to_json

PACKAGE = "edge_app"
SHEBANG = b"#!/usr/bin/env python3\n"
ROOT_MAIN = b"from edge_app.server import main\n\nraise SystemExit(main())\n"
FIXED_DATE = (1980, 1, 1, 0, 0, 0)  # the zip epoch: no build-time mtimes in the archive



class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"build-edge-artifact: {message} (see --help)\n")


def archive_members(info: BuildInfo) -> list[tuple[str, bytes]]:
    """(name, bytes) of every member, in a fixed order; no caches or editor files."""
    sources = sorted(Path(edge_app.__file__).parent.glob("*.py"))
    members = [("__main__.py", ROOT_MAIN)]
    members += [(f"{PACKAGE}/{path.name}", path.read_bytes()) for path in sources]
    members.append((f"{PACKAGE}/{BUILD_JSON}", to_json(info)))
    return members


def zipapp_bytes(members: list[tuple[str, bytes]]) -> bytes:
    with tempfile.SpooledTemporaryFile() as buffer:
        buffer.write(SHEBANG)
        with zipfile.ZipFile(buffer, "w") as archive:
            for name, data in members:
                entry = zipfile.ZipInfo(name, date_time=FIXED_DATE)
                entry.compress_type = zipfile.ZIP_DEFLATED
                entry.create_system = 3  # unix, whatever the build host
                entry.external_attr = 0o644 << 16
                archive.writestr(entry, data, compresslevel=9)
        buffer.seek(0)
        return buffer.read()


def write_atomically(out: Path, data: bytes) -> None:
    """Write beside the target, fsync, chmod 0755, then rename: never a half-written binary."""
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o755)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--version", required=True, help="release version, e.g. 1.4.2")
    parser.add_argument(
        "--fault",
        default="none",
        help="fault SPEC baked in, e.g. errors=0.02:502,latency=0.4~0.1,health=fail,"
        "crash=start,scope=new (default: none)",
    )
    parser.add_argument("--out", required=True, type=Path, help="artifact path to write")
    args = parser.parse_args(argv)
    try:
        info = make_build_info(args.version, args.fault)
    except ValueError as exc:
        parser.exit(2, f"build-edge-artifact: {exc}\n")
    out: Path = args.out
    if not out.parent.is_dir():
        parser.exit(2, f"build-edge-artifact: directory {out.parent} does not exist: create it\n")
    if out.is_dir():
        parser.exit(2, f"build-edge-artifact: --out {out} is a directory; give a file path\n")
    data = zipapp_bytes(archive_members(info))
    write_atomically(out, data)
    digest = hashlib.sha256(data).hexdigest()
    print(f"built {out} version={info.version} fault={info.fault} sha256={digest}")
    return 0

