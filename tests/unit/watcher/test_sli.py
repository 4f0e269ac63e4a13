"""Query results -> SLI values: the API envelope, result shapes, NaN and empty as no data."""

from __future__ import annotations

import math
from typing import Any

import pytest

from watcher.prom import PromError, QueryResult, parse_response, split_userinfo
from watcher.promql import Queries, format_range, render, template_problem
from watcher.sli import ShapeError, newest_sample_age, requests_by_code, side_sli, single_value

Q = 'sum by (code) (increase(edge_http_requests_total{node="edge-2"}[10s]))'


def vector(*series: tuple[dict[str, str], str], ts: float = 1000.0) -> dict[str, Any]:
    return {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [{"metric": m, "value": [ts, v]} for m, v in series],
        },
    }


def result(*series: tuple[dict[str, str], str], ts: float = 1000.0) -> QueryResult:
    return parse_response(Q, vector(*series, ts=ts))


def test_requests_by_code() -> None:
    res = result(({"code": "200"}, "95.5"), ({"code": "500"}, "4.5"), ({"code": "503"}, "0"))
    assert requests_by_code(res) == {"200": 95.5, "500": 4.5, "503": 0.0}


def test_requests_by_code_empty_is_no_traffic() -> None:
    assert requests_by_code(result()) == {}


def test_requests_by_code_nan_series_is_skipped() -> None:
    assert requests_by_code(result(({"code": "200"}, "NaN"), ({"code": "500"}, "2"))) == {
        "500": 2.0
    }


def test_requests_without_code_label_names_the_query_and_what_came_back() -> None:
    res = result(({"code": "200", "node": "edge-2"}, "5"), ({"code": "200", "node": "edge-3"}, "6"))
    with pytest.raises(ShapeError) as err:
        requests_by_code(res)
    message = str(err.value)
    assert Q in message and "2 series" in message and 'node="edge-3"' in message
    assert "sum by (code)" in message


def test_requests_duplicate_code_is_a_shape_error() -> None:
    res = parse_response(Q, vector(({"code": "200"}, "1"), ({"code": "200"}, "2")))
    with pytest.raises(ShapeError, match="code 200 twice"):
        requests_by_code(res)


def test_negative_count_is_a_shape_error() -> None:
    with pytest.raises(ShapeError, match="finite count"):
        requests_by_code(result(({"code": "200"}, "-1")))


def test_matrix_result_is_a_shape_error() -> None:
    payload = {"status": "success", "data": {"resultType": "matrix", "result": []}}
    with pytest.raises(ShapeError, match="a matrix result"):
        single_value(parse_response("x[5m]", payload))


def test_single_value_nan_and_empty_are_no_data() -> None:
    assert single_value(result(({}, "NaN"))) is None
    assert single_value(result()) is None
    assert single_value(result(({}, "0.25"))) == 0.25
    assert single_value(result(({}, "+Inf"))) == math.inf


def test_several_series_where_one_is_expected_is_an_error_not_the_last_one() -> None:
    res = result(({"le": "0.1"}, "1"), ({"le": "0.5"}, "2"), ({"le": "+Inf"}, "3"))
    with pytest.raises(ShapeError, match="3 series.*expected at most one series"):
        single_value(res)


def test_scalar_result_is_accepted_for_single_values() -> None:
    payload = {"status": "success", "data": {"resultType": "scalar", "result": [1000, "0.3"]}}
    assert single_value(parse_response("scalar(x)", payload)) == 0.3


def test_newest_sample_age_uses_prometheus_clock() -> None:
    assert newest_sample_age(result(({}, "990.5"), ts=1000.0)) == pytest.approx(9.5)
    assert newest_sample_age(result()) is None
    assert newest_sample_age(result(({}, "1003"), ts=1000.0)) == 0.0  # clock jitter: not negative


def test_side_sli_values() -> None:
    sli = side_sli(
        result(({"code": "200"}, "90"), ({"code": "500"}, "6"), ({"code": "503"}, "4")),
        result(({}, "0.2")),
        result(({}, "998"), ts=1000),
        10.0,
    )
    assert sli.requests == 100 and sli.errors == 10 and sli.error_ratio == 0.1
    assert sli.error_codes == {"500": 6.0, "503": 4.0}
    assert sli.request_rate == 10.0 and sli.p95 == 0.2 and sli.newest_sample_age == 2.0
    empty = side_sli(result(), result(({}, "NaN")), result(), 10.0)
    assert empty.error_ratio is None and empty.p95 is None and empty.newest_sample_age is None


# --- the API envelope ---------------------------------------------------------------------


def test_api_error_envelope() -> None:
    payload = {"status": "error", "errorType": "bad_data", "error": "parse error at char 5"}
    with pytest.raises(PromError, match="bad_data: parse error at char 5"):
        parse_response("sum(", payload)


@pytest.mark.parametrize(
    "payload",
    [
        [],
        {"status": "success"},
        {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}}]}},
        {"status": "success", "data": {"resultType": "vector", "result": [{"value": [1, "x"]}]}},
    ],
)
def test_malformed_envelopes(payload: Any) -> None:
    with pytest.raises(PromError):
        parse_response("up", payload)


def test_split_userinfo() -> None:
    assert split_userinfo("http://u:p%40ss@prom:9090/x") == ("http://prom:9090/x", "u", "p@ss")
    assert split_userinfo("https://prom/") == ("https://prom/", None, None)


# --- templates ----------------------------------------------------------------------------


def test_default_templates_render_per_side() -> None:
    q = render(Queries(), 'node="edge-2"', 10)
    assert q.requests == Q
    assert 'edge_http_request_duration_seconds_bucket{node="edge-2"}[10s]' in q.p95
    assert q.freshness == 'max(timestamp(edge_http_requests_total{node="edge-2"}))'


def test_format_range() -> None:
    assert format_range(30) == "30s" and format_range(2.5) == "2500ms"


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("up{${selector}}[${range}]", None),
        ("up{job='x'}", "does not use ${selector}"),
        ("up{${selector}}[${window}]", "unknown placeholder(s) window"),
        ("up{${selector}} $", "not a valid template"),
    ],
)
def test_template_problems(template: str, problem: str | None) -> None:
    found = template_problem(template)
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_raw_counters_keep_every_series_and_need_the_label() -> None:
    from watcher.prom import QueryResult, Sample
    from watcher.sli import ShapeError, raw_counters

    result = QueryResult("q", "vector", (
        Sample({"node": "a", "code": "200"}, 10, 0), Sample({"node": "b", "code": "200"}, 5, 0),
        Sample({"node": "b", "code": "503"}, float("nan"), 0),
    ))  # fmt: skip
    values = raw_counters(result, "code")
    assert sorted(values.values()) == [("200", 5), ("200", 10)]
    with pytest.raises(ShapeError, match="each with a `le` label"):
        raw_counters(result, "le")
