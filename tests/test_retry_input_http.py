"""A request's ``retry`` over HTTP, through the app's own functions on Azurite (issue 32,
item 7): every bad value is a 400 problem naming its exact field, with nothing recorded
or started (the stand-in counts every storage request, the queue's included); a source
given with a SAS is tried once; and no value of ``retry`` at all, under Hypothesis, gets
a 5xx or a 400 that names anything but a retry field; and the OpenAPI document's schema
of ``retry`` takes what the parser takes."""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jsonschema_rs  # schemathesis's own validator, so a dev requirement already
import pytest
from azure.storage.blob import generate_blob_sas
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from copy_ops.copies.request import parse_copy_request
from copy_ops.core.errors import InvalidRequest
from copy_ops.core.settings import Settings
from devkit import DEV_ACCOUNT, DEV_KEY, PendingCopyProxy
from devkit.app import ROOT, payload, request
from tests.conftest import Blobs, Handlers
from tests.support.partner import Partner
from tests.support.requests import copy_body, is_problem

# Each value, as JSON text (a number JSON cannot write, NaN or 1e999, the parser still meets).
BAD_RETRIES: list[tuple[str, str]] = [
    ("3", "retry"),
    ('"3"', "retry"),
    ("[3]", "retry"),
    ("true", "retry"),
    ("null", "retry"),
    ('{"attempts": 2, "jitter": 1}', "retry.jitter"),
    ('{"Attempts": 2}', "retry.Attempts"),
    ('{"attempts": 0}', "retry.attempts"),
    ('{"attempts": -1}', "retry.attempts"),
    ('{"attempts": 11}', "retry.attempts"),
    ('{"attempts": true}', "retry.attempts"),
    ('{"attempts": false}', "retry.attempts"),
    ('{"attempts": 2.5}', "retry.attempts"),
    ('{"attempts": 2.0}', "retry.attempts"),
    ('{"attempts": "3"}', "retry.attempts"),
    ('{"attempts": null}', "retry.attempts"),
    ('{"attempts": {}}', "retry.attempts"),
    ('{"attempts": ' + str(10**400) + "}", "retry.attempts"),
    ('{"attempts": -' + str(10**400) + "}", "retry.attempts"),
    ('{"attempts": 1e999}', "retry.attempts"),
    ('{"attempts": NaN}', "retry.attempts"),
    ('{"backoff_seconds": -1}', "retry.backoff_seconds"),
    ('{"backoff_seconds": -0.001}', "retry.backoff_seconds"),
    ('{"backoff_seconds": 600.001}', "retry.backoff_seconds"),
    ('{"backoff_seconds": 601}', "retry.backoff_seconds"),
    ('{"backoff_seconds": NaN}', "retry.backoff_seconds"),
    ('{"backoff_seconds": Infinity}', "retry.backoff_seconds"),
    ('{"backoff_seconds": -Infinity}', "retry.backoff_seconds"),
    ('{"backoff_seconds": 1e999}', "retry.backoff_seconds"),
    ('{"backoff_seconds": ' + str(10**400) + "}", "retry.backoff_seconds"),
    ('{"backoff_seconds": true}', "retry.backoff_seconds"),
    ('{"backoff_seconds": "30"}', "retry.backoff_seconds"),
    ('{"backoff_seconds": null}', "retry.backoff_seconds"),
    ('{"backoff_seconds": [30]}', "retry.backoff_seconds"),
]


def _with_retry(body: dict[str, Any], retry: str) -> bytes:
    """``body`` as JSON with ``retry`` spliced in as written (json.dumps cannot write all of them)."""
    return json.dumps(body)[:-1].encode() + b', "retry": ' + retry.encode() + b"}"


def job_body(blobs: Blobs) -> dict[str, Any]:
    return {
        "source": {"container": blobs.src, "prefix": "in/"},
        "destination": {"container": blobs.dst, "prefix": f"out-{uuid.uuid4().hex[:8]}/"},
    }


def nothing_sent(proxy: PendingCopyProxy) -> None:
    """No request reached storage: no record, no copy, no message."""
    assert proxy.queue_proxy is not None
    assert proxy.log.total == 0, proxy.log.counts
    assert proxy.queue_proxy.log.total == 0, proxy.queue_proxy.log.counts


def fields_of(response: Any) -> list[str]:
    return [item["field"] for item in is_problem(response, 400)["errors"]]


@pytest.mark.parametrize(("retry", "field"), BAD_RETRIES)
def test_a_bad_retry_is_a_400_naming_its_field_and_nothing_starts(
    handlers: Handlers, blobs: Blobs, proxy: PendingCopyProxy, retry: str, field: str
) -> None:
    copy = handlers["start_copy"](request("POST", "copies", raw=_with_retry(copy_body(blobs.src, blobs.dst), retry)))
    assert fields_of(copy) == [field]
    job = handlers["start_job"](request("POST", "jobs", raw=_with_retry(job_body(blobs), retry)))
    assert fields_of(job) == [field]
    nothing_sent(proxy)


def test_every_bad_part_of_a_retry_is_named_at_once(handlers: Handlers, blobs: Blobs, proxy: PendingCopyProxy) -> None:
    retry = '{"attempts": 0, "backoff_seconds": -1, "b": 1, "a": 2}'
    copy = handlers["start_copy"](request("POST", "copies", raw=_with_retry(copy_body(blobs.src, blobs.dst), retry)))
    assert sorted(fields_of(copy)) == ["retry.a", "retry.attempts", "retry.b", "retry.backoff_seconds"]
    nothing_sent(proxy)


def _sas_source(proxy: PendingCopyProxy, blobs: Blobs, name: str) -> str:
    blobs.put(blobs.src, name, b"x")
    sas = generate_blob_sas(
        DEV_ACCOUNT, blobs.src, name, account_key=DEV_KEY, permission="r", expiry=datetime.now(UTC) + timedelta(hours=1)
    )
    return f"{proxy.url}/{DEV_ACCOUNT}/{blobs.src}/{name}?{sas}"


def test_a_source_given_with_a_sas_is_tried_once(
    handlers: Handlers, blobs: Blobs, partner: Partner, proxy: PendingCopyProxy
) -> None:
    url = _sas_source(proxy, blobs, "a.bin")
    counted = proxy.log.total
    for retry in ({"attempts": 2}, {"attempts": 10, "backoff_seconds": 5}):
        body = {**copy_body(blobs.src, blobs.dst), "source": url, "retry": retry}
        refused = is_problem(handlers["start_copy"](request("POST", "copies", body)), 400)
        [error] = refused["errors"]
        assert error["field"] == "retry.attempts" and "SAS" in error["message"]
        assert "sig=" not in json.dumps(refused)
    # A job's source in another account, listed with its SAS (one in the app's own account
    # is read with the app's authority, its SAS dropped: retried as any other).
    job = {**job_body(blobs), "source": partner.listing("in/")}
    assert fields_of(handlers["start_job"](request("POST", "jobs", {**job, "retry": {"attempts": 3}}))) == [
        "retry.attempts"
    ]
    assert proxy.log.total == counted and proxy.queue_proxy is not None and proxy.queue_proxy.log.total == 0
    # Without retry, or asking one attempt: one attempt, as the view says.
    for name, extra in (("a.bin", {}), ("b.bin", {"retry": {"attempts": 1, "backoff_seconds": 0}})):
        body = {**copy_body(blobs.src, blobs.dst, dest_name=name), "source": url, **extra}
        started = handlers["start_copy"](request("POST", "copies", body))
        assert started.status_code == 201, started.get_body()
        assert payload(started)["attempt"] == {"number": 1, "of": 1, "last_error": None, "failed": []}


def test_a_source_by_container_and_blob_gets_the_default_attempts(handlers: Handlers, blobs: Blobs) -> None:
    blobs.put(blobs.src, "a.bin", b"x")
    started = handlers["start_copy"](request("POST", "copies", copy_body(blobs.src, blobs.dst)))
    assert started.status_code == 201, started.get_body()
    assert payload(started)["attempt"] == {"number": 1, "of": 3, "last_error": None, "failed": []}
    asked = handlers["start_copy"](
        request("POST", "copies", copy_body(blobs.src, blobs.dst, dest_name="b.bin", retry={"attempts": 7}))
    )
    assert payload(asked)["attempt"]["of"] == 7


FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=bool(os.environ.get("CI")),
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from([10**400, -(10**400), 2**63, 0.5, 600, 600.0, 1, 10, 11]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=8,
)
retries = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {},
        optional={
            "attempts": json_values | st.integers(min_value=-2, max_value=12),
            "backoff_seconds": json_values | st.floats(min_value=-1, max_value=700),
        },
    ),
)


def _retry_only(response: Any) -> None:
    """Started, or refused naming retry fields alone: never a 5xx, never another field."""
    assert response.status_code in (200, 201, 202, 400), response.get_body()
    if response.status_code == 400:
        fields = fields_of(response)
        assert fields and all(field == "retry" or field.startswith("retry.") for field in fields), fields


@FUZZ
@given(retry=retries)
def test_any_retry_starts_or_is_refused_naming_a_retry_field(handlers: Handlers, blobs: Blobs, retry: Any) -> None:
    blobs.put(blobs.src, "a.bin", b"x")
    # json.dumps writes NaN and the infinities as the parser reads them back.
    text = json.dumps(retry)
    body = copy_body(blobs.src, blobs.dst, dest_name=f"{uuid.uuid4().hex}.bin")
    _retry_only(handlers["start_copy"](request("POST", "copies", raw=_with_retry(body, text))))
    _retry_only(handlers["start_job"](request("POST", "jobs", raw=_with_retry(job_body(blobs), text))))


SCHEMAS = json.loads((ROOT / "copy_ops" / "openapi.json").read_text(encoding="utf-8"))["components"]["schemas"]
PARSER_SETTINGS = Settings.from_env({"COPY_STORAGE": "UseDevelopmentStorage=true"})


def _integral_float(value: Any) -> bool:
    """A float with no fraction (2.0): an integer to JSON Schema, refused by the parser as
    every whole-number field is (timeout_seconds the same)."""
    return isinstance(value, float) and value.is_integer()


@pytest.mark.parametrize("schema", ["StartRequest", "JobStartRequest"])
@settings(max_examples=150, deadline=None, derandomize=bool(os.environ.get("CI")))
@given(retry=retries)
def test_the_documents_retry_schema_takes_what_the_parser_takes(schema: str, retry: Any) -> None:
    if isinstance(retry, dict) and _integral_float(retry.get("attempts")):
        return
    documented = jsonschema_rs.Draft202012Validator(SCHEMAS[schema]["properties"]["retry"]).is_valid(retry)
    body = {"source": {"container": "src", "blob": "a"}, "destination": {"container": "dst", "blob": "a"}}
    try:
        parse_copy_request({**body, "retry": retry}, PARSER_SETTINGS, datetime.now(UTC))
    except InvalidRequest:
        parsed = False
    else:
        parsed = True
    assert documented == parsed, retry
