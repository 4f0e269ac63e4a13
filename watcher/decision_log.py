"""The decision log: one JSON object per line (start, probe, revert, verdict), secrets scrubbed.

Scrubbing is belt and braces: the known secret values anywhere in any string, passwords in
URLs, Authorization headers, token=/password= parameters, and any mapping key that names a
secret.
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

MASK = "***"
_SECRET_KEY = re.compile(r"(token|password|passwd|secret|authorization|api[_-]?key)", re.I)
_URL_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/\s@]+)@")
_AUTH_HEADER = re.compile(
    r"(?P<head>authorization[\"']?\s*[:=]\s*[\"']?)(?P<kind>(?:bearer|basic)\s+)?[^\s\"',;}]+",
    re.I,
)
_BEARER = re.compile(r"(?P<head>\bbearer\s+)[A-Za-z0-9._~+/=-]+", re.I)
_PARAM = re.compile(
    r"(?P<head>\b(?:access_token|token|password|passwd|secret|api_key|apikey)=)[^&\s\"']+", re.I
)


def _mask_userinfo(match: re.Match[str]) -> str:
    userinfo = match.group("userinfo")
    user = userinfo.split(":", 1)[0] if ":" in userinfo else ""
    return f"{match.group('scheme')}{user + ':' if user else ''}{MASK}@"


class Scrubber:
    """Removes secrets from strings and from nested JSON-like values."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values = {s for s in secrets if s}
        # A basic-auth header carries base64(user:password); catch that encoding too.
        for s in list(values):
            values.add(base64.b64encode(s.encode()).decode())
        self._secrets = sorted(values, key=len, reverse=True)

    def add(self, user: str | None, password: str | None) -> None:
        if user is not None and password:
            pair = base64.b64encode(f"{user}:{password}".encode()).decode()
            self._secrets = sorted({*self._secrets, pair}, key=len, reverse=True)

    def text(self, value: str) -> str:
        for secret in self._secrets:
            value = value.replace(secret, MASK)
        value = _URL_USERINFO.sub(_mask_userinfo, value)
        value = _AUTH_HEADER.sub(lambda m: f"{m.group('head')}{m.group('kind') or ''}{MASK}", value)
        value = _BEARER.sub(lambda m: f"{m.group('head')}{MASK}", value)
        return _PARAM.sub(lambda m: f"{m.group('head')}{MASK}", value)

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            out = {}
            for key, item in value.items():
                skey = str(key)
                if _SECRET_KEY.search(skey) and item not in (None, "", MASK):
                    out[skey] = MASK
                else:
                    out[skey] = self.value(item)
            return out
        if isinstance(value, list | tuple | set | frozenset):
            return [self.value(v) for v in value]
        if isinstance(value, float) and not math.isfinite(value):
            return str(value)  # JSON has no NaN/Inf; keep the lines strictly parseable
        return value


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class DecisionLog:
    """Appends scrubbed JSON lines to a file; without a path it records nothing."""

    def __init__(self, path: str | None, scrubber: Scrubber) -> None:
        self.path = path
        self._scrub = scrubber
        self._file: IO[str] | None = None
        if path is not None:
            self._file = Path(path).open("a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def line(self, event: str, **fields: Any) -> str:
        record = self._scrub.value({"ts": now_iso(), "event": event, **fields})
        return json.dumps(record, sort_keys=False, allow_nan=False, default=str)

    def write(self, event: str, **fields: Any) -> None:
        if self._file is None:
            return
        self._file.write(self.line(event, **fields) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
