"""Fuzzing the HTTP layer: generated bodies, headers, ids and query strings against the
handlers (and Azurite behind them). No 5xx, and every 4xx is problem+json."""

from __future__ import annotations

import json
import os
from typing import Any

import azure.functions as func
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devkit.app import request
from tests.conftest import Handlers

FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    # CI runs the same examples every time; locally each run explores new ones.
    derandomize=bool(os.environ.get("CI")),
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
field_values = {
    "source": st.one_of(
        json_values,
        st.sampled_from(["https://acct.blob.core.windows.net/c/b?sig=x", "http://127.0.0.1:1/a/c/b", "ftp://x"]),
        st.fixed_dictionaries({"container": st.text(max_size=70), "blob": st.text(max_size=40)}),
    ),
    "destination": st.one_of(
        json_values,
        st.fixed_dictionaries(
            {"container": st.from_regex(r"dst-[a-z0-9]{1,8}", fullmatch=True), "blob": st.text(max_size=40)}
        ),
    ),
    "timeout_seconds": st.one_of(json_values, st.integers(min_value=-10, max_value=10**7)),
    "deadline": st.one_of(json_values, st.text(max_size=30), st.datetimes().map(lambda d: d.isoformat() + "Z")),
    "metadata": st.one_of(json_values, st.dictionaries(st.text(max_size=12), st.text(max_size=12), max_size=4)),
    "overwrite": json_values,
    "lease_source": json_values,
    "on_abort": st.one_of(json_values, st.sampled_from(["keep", "delete", "restore"])),
}
start_bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda value: json.dumps(value).encode()),
    st.fixed_dictionaries({}, optional=field_values).map(lambda body: json.dumps(body).encode()),
)
header_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=250)


def assert_well_formed(response: func.HttpResponse) -> None:
    assert response.status_code < 500, response.get_body()
    if response.status_code >= 400:
        assert response.mimetype == "application/problem+json"
        body: dict[str, Any] = json.loads(response.get_body())
        assert body["status"] == response.status_code
        assert isinstance(body["detail"], str) and body["title"]
        for item in body.get("errors", []):
            assert set(item) == {"field", "message"}


@FUZZ
@given(raw=start_bodies, key=st.none() | header_text)
def test_start_never_fails_with_5xx(handlers: Handlers, raw: bytes, key: str | None) -> None:
    headers = {"Idempotency-Key": key} if key is not None else {}
    assert_well_formed(handlers["start_copy"](request("POST", "copies", raw=raw, headers=headers)))


@FUZZ
@given(operation_id=st.text(max_size=40) | st.from_regex(r"[0-9]{13}-[0-9a-f]{8}", fullmatch=True))
def test_read_and_abort_never_fail_with_5xx(handlers: Handlers, operation_id: str) -> None:
    for name in ("get_copy", "abort_copy"):
        response = handlers[name](request("GET", "copies/x", route_params={"id": operation_id}))
        assert_well_formed(response)
        assert response.status_code == 404


@FUZZ
@given(
    params=st.dictionaries(
        st.sampled_from(["state", "limit", "continuation", "other"]) | st.text(max_size=8),
        st.text(max_size=30),
        max_size=4,
    )
)
def test_list_never_fails_with_5xx(handlers: Handlers, params: dict[str, str]) -> None:
    assert_well_formed(handlers["list_copies"](request("GET", "copies", params=params)))


def nested(depth: int, opening: str, closing: str, inner: str = "1") -> bytes:
    return (opening * depth + inner + closing * depth).encode()


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 10_000,  # RecursionError inside json.loads
        nested(10_000, "[", "]"),
        nested(10_000, '{"a":', "}"),
        b'{"source":' + nested(5_000, "[", "]") + b"}",
        b'{"metadata":{"k":' + nested(800, '{"a":', "}") + b"}}",
        b'{"deadline": "9999-12-31T23:59:59-23:59", "source": "x", "destination": {}}',
        b'{"deadline": "0001-01-01T00:00:00+23:59"}',
        b'{"timeout_seconds": ' + b"9" * 4_500 + b"}",  # past int()'s digit limit
        b'{"timeout_seconds": 1e400}',
        b'{"a": "\\ud800"}',  # a lone surrogate
        b"\xff\xfe{}",
        b'{"source": "' + b"a" * 60_000 + b'"}',
        b" " * 70_000,
    ],
)
def test_bodies_nested_huge_or_at_the_edge_of_their_type_are_4xx(handlers: Handlers, raw: bytes) -> None:
    response = handlers["start_copy"](request("POST", "copies", raw=raw))
    assert_well_formed(response)
    assert 400 <= response.status_code < 500


deep_values = st.recursive(
    st.none() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.sampled_from(list(field_values)), inner, max_size=2),
    max_leaves=60,
)


@FUZZ
@given(body=st.dictionaries(st.sampled_from(list(field_values)), deep_values, max_size=5))
def test_generated_nested_bodies_never_fail_with_5xx(handlers: Handlers, body: dict[str, Any]) -> None:
    assert_well_formed(handlers["start_copy"](request("POST", "copies", raw=json.dumps(body).encode())))
