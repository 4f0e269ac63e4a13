"""Prometheus HTTP API client: instant queries with a timeout and optional auth.

Credentials go in headers (bearer token) or requests' basic auth, never in the URL, so that
no URL this module builds or reports carries a secret.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import requests

_ERRNO = re.compile(r"\[Errno -?\d+\] [^'\")]+")


class PromError(Exception):
    """Prometheus could not answer a query (unreachable, HTTP error, API error, bad payload)."""


@dataclass(frozen=True)
class Sample:
    labels: Mapping[str, str]
    value: float
    timestamp: float  # for instant queries: Prometheus' evaluation time


@dataclass(frozen=True)
class QueryResult:
    query: str
    result_type: str  # vector | scalar | matrix | string
    samples: tuple[Sample, ...] = field(default_factory=tuple)


def split_userinfo(url: str) -> tuple[str, str | None, str | None]:
    """The URL without user:password@, and the user and password it carried (if any)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None, None
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    clean = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    user = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return clean, user, password


def _number(raw: object, query: str) -> float:
    try:
        return float(raw)  # type: ignore[arg-type]  # Prometheus sends "NaN", "+Inf" as strings
    except (TypeError, ValueError):
        raise PromError(f"query {query!r}: Prometheus sent a non-numeric value {raw!r}") from None


def parse_response(query: str, payload: Any) -> QueryResult:
    """Check the /api/v1/query envelope and turn it into a QueryResult (pure)."""
    if not isinstance(payload, dict):
        raise PromError(f"query {query!r}: Prometheus answered with non-object JSON")
    if payload.get("status") != "success":
        kind = payload.get("errorType", "error")
        raise PromError(f"query {query!r}: Prometheus {kind}: {payload.get('error', 'no detail')}")
    data = payload.get("data")
    if not isinstance(data, dict) or "resultType" not in data:
        raise PromError(f"query {query!r}: Prometheus answer has no data.resultType")
    warnings = payload.get("warnings")
    if warnings:
        # A partial answer (a shard or a remote store missing): blind, never data.
        first = str(warnings[0]) if isinstance(warnings, list) else str(warnings)
        raise PromError(f"query {query!r}: Prometheus answered with warnings (partial data): {first}")
    result_type = str(data["resultType"])
    raw = data.get("result")
    if result_type == "scalar":
        if not isinstance(raw, list) or len(raw) != 2:
            raise PromError(f"query {query!r}: malformed scalar result {raw!r}")
        return QueryResult(query, result_type, (Sample({}, _number(raw[1], query), float(raw[0])),))
    if result_type != "vector":
        return QueryResult(query, result_type)  # the shape check names it
    if not isinstance(raw, list):
        raise PromError(f"query {query!r}: malformed vector result")
    samples = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("value"), list):
            raise PromError(f"query {query!r}: malformed vector sample {item!r}")
        ts, value = item["value"]
        labels = item.get("metric") or {}
        samples.append(Sample(dict(labels), _number(value, query), float(ts)))
    return QueryResult(query, result_type, tuple(samples))


def _short(exc: Exception) -> str:
    found = _ERRNO.search(str(exc))
    return f"{type(exc).__name__} ({found.group(0).strip()})" if found else type(exc).__name__


class PromClient:
    """Instant queries against one Prometheus."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        user: str | None = None,
        password: str | None = None,
        timeout: float = 5.0,
        session: requests.Session | None = None,
    ) -> None:
        clean, url_user, url_password = split_userinfo(url.rstrip("/"))
        self.base_url = clean
        self.timeout = timeout
        self._session = session or requests.Session()
        self._session.trust_env = False  # no proxy or .netrc surprises: exactly what was configured
        user = user if user is not None else url_user
        password = password if password is not None else url_password
        if token:
            self._session.headers["Authorization"] = f"Bearer {token}"
        elif user is not None:
            self._session.auth = (user, password or "")

    def query(self, promql: str, time: float | None = None) -> QueryResult:
        """An instant query, evaluated at `time` (Unix seconds) when given, else at Prometheus' now."""
        url = f"{self.base_url}/api/v1/query"
        params = {"query": promql}
        if time is not None:
            params["time"] = f"{time:.3f}"
        try:
            response = self._session.get(url, params=params, timeout=self.timeout)
        except requests.Timeout:
            raise PromError(
                f"Prometheus at {self.base_url} did not answer within {self.timeout:g}s"
            ) from None
        except requests.RequestException as exc:
            raise PromError(f"cannot reach Prometheus at {self.base_url}: {_short(exc)}") from None
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if response.status_code != 200 and not (
            isinstance(payload, dict) and payload.get("status") == "error"
        ):
            body = response.text[:200].strip().replace("\n", " ")
            raise PromError(
                f"query {promql!r}: Prometheus at {self.base_url} answered HTTP "
                f"{response.status_code}: {body or 'empty body'}"
            )
        if payload is None:
            raise PromError(f"query {promql!r}: Prometheus at {self.base_url} sent invalid JSON")
        return parse_response(promql, payload)

    def close(self) -> None:
        self._session.close()
