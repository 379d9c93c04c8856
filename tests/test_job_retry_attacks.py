"""Attacks on a job's retry (``POST /api/jobs/{id}/retry``, issue 32), each found by review and
failing on the code before its fix: the request's ``sas`` taken only as a query string, so
that nothing a header or a URL would carry differently reaches an item's Copy Blob."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import pytest

from copy_ops.core.errors import InvalidRequest
from copy_ops.core.settings import Settings
from copy_ops.jobs.rerun_request import SAS_QUERY, parse_retry_request

JOB = "8203450000000-0a0a0a0a"
T0 = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
SETTINGS = Settings.from_env({"COPY_STORAGE": "UseDevelopmentStorage=true"})


@pytest.mark.parametrize(
    "sas",
    [
        None,  # the schema's string: a null is refused as a null retry is
        "sv=2024-11-04\nsig=abc",  # a newline: a header the item's Copy Blob would carry
        "sv=2024-11-04&sig=ab\tc",
        "sv=2024-11-04&sig=é",  # not URL-encoded
        "sv=2024-11-04?sig=abc",  # a second query inside the first
        "??sv=2024-11-04&sig=abc",
        "&",
        "sv=2024-11-04&&sig=abc",
        "sig",  # no value: not a query of name=value pairs
        "=abc",
    ],
)
def test_a_sas_that_is_not_one_query_string_is_400_naming_sas(sas: Any) -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse_retry_request({"sas": sas}, JOB, SETTINGS, T0)
    assert [error.field for error in raised.value.errors] == ["sas"]


@pytest.mark.parametrize("sas", ["sv=2024-11-04&sig=a%2Bb%3D", "?sv=2024-11-04&se=2026-11-24T03%3A00%3A00Z&sig=x"])
def test_a_sas_query_string_is_taken_without_its_question_mark(sas: str) -> None:
    assert parse_retry_request({"sas": sas}, JOB, SETTINGS, T0).sas == sas.removeprefix("?")


def test_the_api_document_takes_the_sas_the_parser_takes() -> None:
    document = json.loads(resources.files("copy_ops").joinpath("openapi.json").read_text())
    pattern = document["components"]["schemas"]["JobRetryRequest"]["properties"]["sas"]["pattern"]
    assert pattern == f"^{SAS_QUERY.pattern}$"
