"""Start-request validation: a table of valid bodies and a table of invalid ones, each
invalid one naming the fields it must report (all at once) and the status it maps to."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from copy_ops.copies.model import BlobRef, Engine, ForeignBlob, OnAbort
from copy_ops.copies.request import KNOWN_FIELDS, fingerprint, parse_copy_request
from copy_ops.core.errors import CopyOpsError, Forbidden, InvalidRequest
from copy_ops.core.settings import Settings

NOW = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
SETTINGS = Settings.from_env(
    {
        "COPY_STORAGE": "UseDevelopmentStorage=true",
        "COPY_ALLOWED_SOURCE_HOSTS": "*.blob.core.windows.net,127.0.0.1:10000",
        "COPY_ALLOWED_DESTINATION_CONTAINERS": "backups,data-*",
        "COPY_MAX_TIMEOUT_SECONDS": "86400",
        "COPY_DEFAULT_TIMEOUT_SECONDS": "600",
    }
)
SRC = "https://acct.blob.core.windows.net/c/path/a.bin?sv=1&sig=SECRET"
DEST = {"container": "backups", "blob": "2026/11/a.bin"}
THREE = datetime(2026, 11, 24, 3, tzinfo=UTC)
META = {"origin": "partner", "_x1": "v"}


def body(**fields: Any) -> dict[str, Any]:
    return {"source": SRC, "destination": DEST, **fields}


@pytest.mark.parametrize(
    ("given", "check"),
    [
        (body(), lambda r: r.terms.deadline == NOW + timedelta(seconds=600) and r.terms.on_abort is OnAbort.KEEP),
        (body(timeout_seconds=60), lambda r: r.terms.deadline == NOW + timedelta(seconds=60)),
        (body(deadline="2026-11-24T03:00:00Z"), lambda r: r.terms.deadline == THREE),
        (body(deadline="2026-11-24T04:00:00+01:00"), lambda r: r.terms.deadline == THREE),
        (body(metadata=META), lambda r: r.terms.metadata == META),
        (body(overwrite=True, on_abort="restore"), lambda r: r.terms.overwrite and r.terms.on_abort is OnAbort.RESTORE),
        (
            {"source": {"container": "data-in", "blob": "a.bin"}, "destination": DEST, "lease_source": True},
            lambda r: r.source_blob == BlobRef("data-in", "a.bin") and r.source_url is None and r.terms.lease_source,
        ),
        (
            body(source="http://127.0.0.1:10000/devstoreaccount1/data-in/a.bin", lease_source=True),
            lambda r: r.source_blob == BlobRef("data-in", "a.bin"),
        ),
        (body(destination={"container": "data-2026", "blob": "x"}), lambda r: r.destination.container == "data-2026"),
    ],
)
def test_valid_requests(given: dict[str, Any], check: Any) -> None:
    assert check(parse_copy_request(given, SETTINGS, NOW))


@pytest.mark.parametrize(
    ("given", "error", "fields"),
    [
        ([1, 2], InvalidRequest, {"body"}),
        ({}, InvalidRequest, {"source", "destination"}),
        (body(extra=1, timout_seconds=5), InvalidRequest, {"extra", "timout_seconds"}),
        (body(source=42), InvalidRequest, {"source"}),
        (body(source="ftp://x/c/b"), InvalidRequest, {"source"}),
        (body(source="http://acct.blob.core.windows.net/c/b"), InvalidRequest, {"source"}),
        (body(source="https://acct.blob.core.windows.net/onlycontainer"), InvalidRequest, {"source"}),
        (body(source="https://evil.example.com/c/b"), Forbidden, {"source"}),
        # Sent as a header: aiohttp refuses controls, Azure wants it URL-encoded.
        (body(source="https://acct.blob.core.windows.net/c/b\x10"), InvalidRequest, {"source"}),
        (body(source="https://acct.blob.core.windows.net/c/a b"), InvalidRequest, {"source"}),
        (body(source="https://acct.blob.core.windows.net/c/na\u00efve.bin"), InvalidRequest, {"source"}),
        (body(source="https://\u00fb\u00f7.example/c/b"), InvalidRequest, {"source"}),
        (body(source={"container": "A", "blob": ""}), InvalidRequest, {"source.container", "source.blob"}),
        (body(destination="backups/a.bin"), InvalidRequest, {"destination"}),
        (body(destination={"container": "backups", "blob": "x", "tier": "Hot"}), InvalidRequest, {"destination.tier"}),
        (
            body(destination={"container": "a--b", "blob": "x/"}),
            InvalidRequest,
            {"destination.container", "destination.blob"},
        ),
        (body(destination={"container": "other", "blob": "x"}), Forbidden, {"destination.container"}),
        (body(destination={"container": "copy-operations", "blob": "x"}), Forbidden, {"destination.container"}),
        (body(timeout_seconds=0), InvalidRequest, {"timeout_seconds"}),
        (body(timeout_seconds=86401), InvalidRequest, {"timeout_seconds"}),
        (body(timeout_seconds="60"), InvalidRequest, {"timeout_seconds"}),
        (body(timeout_seconds=True), InvalidRequest, {"timeout_seconds"}),
        (body(timeout_seconds=1.5), InvalidRequest, {"timeout_seconds"}),
        (body(timeout_seconds=60, deadline="2026-11-24T03:00:00Z"), InvalidRequest, {"deadline"}),
        (body(deadline="2026-11-24T01:00:00Z"), InvalidRequest, {"deadline"}),
        (body(deadline="2026-11-26T01:00:00Z"), InvalidRequest, {"deadline"}),
        (body(deadline="tomorrow"), InvalidRequest, {"deadline"}),
        (body(deadline="2026-11-24T03:00:00"), InvalidRequest, {"deadline"}),
        (body(deadline="2026-13-40T03:00:00Z"), InvalidRequest, {"deadline"}),
        (body(metadata="x"), InvalidRequest, {"metadata"}),
        (body(metadata={"1abc": "v"}), InvalidRequest, {"metadata.1abc"}),
        (body(metadata={"a-b": "v"}), InvalidRequest, {"metadata.a-b"}),
        (body(metadata={"copyops_operation": "v"}), InvalidRequest, {"metadata.copyops_operation"}),
        (body(metadata={"k": 1}), InvalidRequest, {"metadata.k"}),
        (body(metadata={"k": "caf\u00e9"}), InvalidRequest, {"metadata.k"}),
        (body(metadata={"k": "line\nbreak"}), InvalidRequest, {"metadata.k"}),
        (body(metadata={"Key": "a", "key": "b"}), InvalidRequest, {"metadata.key"}),
        (body(metadata={f"k{i}": "v" * 100 for i in range(90)}), InvalidRequest, {"metadata"}),
        (body(overwrite="yes"), InvalidRequest, {"overwrite"}),
        (body(lease_source=1), InvalidRequest, {"lease_source"}),
        (body(lease_source=True), InvalidRequest, {"lease_source"}),
        (body(on_abort="rollback"), InvalidRequest, {"on_abort"}),
        (body(on_abort=["keep"]), InvalidRequest, {"on_abort"}),
        (
            {"source": {"container": "backups", "blob": "x"}, "destination": {"container": "backups", "blob": "x"}},
            InvalidRequest,
            {"destination"},
        ),
        # Whole strings only: a trailing newline is not the name it follows.
        (body(destination={"container": "backups\n", "blob": "x"}), InvalidRequest, {"destination.container"}),
        (body(metadata={"abc\n": "v"}), InvalidRequest, {"metadata.abc\n"}),
        (body(source=SRC + "\n"), InvalidRequest, {"source"}),
        (body(deadline="2026-11-24T03:00:00Z\n"), InvalidRequest, {"deadline"}),
        # Past the last (or before the first) datetime once in UTC: an overflow, not a 500.
        (body(deadline="9999-12-31T23:59:59-23:59"), InvalidRequest, {"deadline"}),
        (body(deadline="0001-01-01T00:00:00+23:59"), InvalidRequest, {"deadline"}),
        (body(timeout_seconds=10**400), InvalidRequest, {"timeout_seconds"}),
        # User info is refused, never echoed.
        (body(source="https://user:PASSWORD@acct.blob.core.windows.net/c/b"), InvalidRequest, {"source"}),
        # Names a URL client could rewrite, in every field that holds one.
        (body(destination={"container": "backups", "blob": "../data-x/b"}), InvalidRequest, {"destination.blob"}),
        (body(source={"container": "data-in", "blob": "a/../b"}), InvalidRequest, {"source.blob"}),
        (body(source="https://acct.blob.core.windows.net/c/../other/b"), InvalidRequest, {"source"}),
        # A pattern without a port admits the default port only.
        (body(source="https://acct.blob.core.windows.net:8443/c/b"), Forbidden, {"source"}),
        (body(source="http://127.0.0.1:10001/devstoreaccount1/data-in/a.bin"), Forbidden, {"source"}),
        # The ledger, named by URL, however spelt: refused as in the {container, blob} form.
        (body(source="http://127.0.0.1:10000/devstoreaccount1/copy-operations/ops/x.json"), Forbidden, {"source"}),
        (body(source="http://127.0.0.1:10000/devstoreaccount1/copy-operation%73/ops/x.json"), Forbidden, {"source"}),
        (body(source={"container": "copy-operations", "blob": "ops/x.json"}), Forbidden, {"source.container"}),
    ],
)
def test_invalid_requests_name_every_field(given: Any, error: type[CopyOpsError], fields: set[str]) -> None:
    with pytest.raises(error) as caught:
        parse_copy_request(given, SETTINGS, NOW)
    assert {item.field for item in caught.value.errors} == fields
    assert "SECRET" not in caught.value.detail


def test_bad_input_beats_forbidden_input() -> None:
    # A request both malformed and not allowed is told what to fix first (400).
    with pytest.raises(InvalidRequest) as caught:
        parse_copy_request(body(source="https://evil.example.com/c/b", timeout_seconds=-1), SETTINGS, NOW)
    assert {item.field for item in caught.value.errors} == {"timeout_seconds"}


def test_fingerprint_tells_bodies_apart_but_not_key_order() -> None:
    assert fingerprint({"a": 1, "b": 2}) == fingerprint({"b": 2, "a": 1})
    assert fingerprint(body(timeout_seconds=60)) != fingerprint(body(timeout_seconds=61))


def test_the_detail_names_the_same_fields_and_messages_as_errors() -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_copy_request(body(timeout_seconds=0, on_abort="x"), SETTINGS, NOW)
    assert caught.value.detail == "; ".join(f"{e.field}: {e.message}" for e in caught.value.errors)


IDENTITY = Settings.from_env(
    {
        "COPY_STORAGE__blobServiceUri": "https://mine.blob.core.windows.net",
        "COPY_ALLOWED_SOURCE_HOSTS": "*.blob.core.windows.net",
    }
)
PARTNER_BLOB = {"account": "partner", "container": "exports", "blob": "a.bin"}
LONGEST = 7 * 24 * 3600 - 20 * 60


@pytest.mark.parametrize(
    ("settings", "given", "expected"),
    [
        (IDENTITY, {"source": PARTNER_BLOB}, ForeignBlob("partner", "exports", "a.bin")),
        (
            IDENTITY,
            {"source": "https://partner.blob.core.windows.net/exports/a.bin"},
            ForeignBlob("partner", "exports", "a.bin"),
        ),
        # With a SAS, the caller's URL is used as given; the app's own account is its own.
        (IDENTITY, {"source": "https://partner.blob.core.windows.net/exports/a.bin?sv=1&sig=x"}, None),
        (IDENTITY, {"source": {"account": "mine", "container": "data", "blob": "a.bin"}}, None),
        (IDENTITY, {"source": PARTNER_BLOB, "timeout_seconds": LONGEST}, ForeignBlob("partner", "exports", "a.bin")),
        # The block engine (auto's, from another account) reads with a token: no key limits it.
        (
            IDENTITY,
            {"source": PARTNER_BLOB, "timeout_seconds": LONGEST + 1},
            ForeignBlob("partner", "exports", "a.bin"),
        ),
    ],
)
def test_sources_in_other_accounts(settings: Settings, given: dict[str, Any], expected: ForeignBlob | None) -> None:
    request = parse_copy_request({**given, "destination": {"container": "data", "blob": "x"}}, settings, NOW)
    assert request.source_foreign == expected


@pytest.mark.parametrize(
    ("settings", "given", "fields"),
    [
        # A minted SAS (the async engine's) cannot outlive its key: 7 days less 20 minutes at the most.
        (IDENTITY, {"source": PARTNER_BLOB, "timeout_seconds": LONGEST + 1, "engine": "async"}, {"timeout_seconds"}),
        (IDENTITY, {"source": {"container": "data", "blob": "a"}, "deadline": "2026-12-01T02:00:00Z"}, {"deadline"}),
        (IDENTITY, {"source": {"account": "No!", "container": "exports", "blob": "b"}}, {"source.account"}),
        (IDENTITY, {"source": {"account": "partner", "container": "exports", "blob": "../b"}}, {"source.blob"}),
        # Without an identity, another account is read only through a caller's SAS.
        (SETTINGS, {"source": PARTNER_BLOB}, {"source.account"}),
    ],
)
def test_bad_sources_in_other_accounts(settings: Settings, given: dict[str, Any], fields: set[str]) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_copy_request({**given, "destination": {"container": "data", "blob": "x"}}, settings, NOW)
    assert {error.field for error in caught.value.errors} == fields


def test_a_source_account_outside_the_allowed_hosts_is_forbidden() -> None:
    narrow = Settings.from_env(
        {
            "COPY_STORAGE__blobServiceUri": "https://mine.blob.core.windows.net",
            "COPY_ALLOWED_SOURCE_HOSTS": "mine.blob.core.windows.net",
        }
    )
    with pytest.raises(Forbidden) as caught:
        parse_copy_request({"source": PARTNER_BLOB, "destination": {"container": "data", "blob": "x"}}, narrow, NOW)
    assert [error.field for error in caught.value.errors] == ["source.account"]


ESCALATE = NOW + timedelta(seconds=50)


@pytest.mark.parametrize(
    ("settings", "given", "engine", "escalate_at"),
    [
        # auto: Copy Blob within the account (escalated to the blocks at half its time)...
        (SETTINGS, {"source": {"container": "data", "blob": "a"}}, Engine.ASYNC, ESCALATE),
        (IDENTITY, {"source": {"account": "mine", "container": "data", "blob": "a"}}, Engine.ASYNC, ESCALATE),
        # ...the block engine from another account, by the app's identity or the caller's SAS.
        (IDENTITY, {"source": PARTNER_BLOB}, Engine.BLOCKS, None),
        (IDENTITY, {"source": "https://partner.blob.core.windows.net/exports/a.bin?sv=1&sig=x"}, Engine.BLOCKS, None),
        # Named, an engine is kept as named, and never escalates.
        (SETTINGS, {"source": {"container": "data", "blob": "a"}, "engine": "async"}, Engine.ASYNC, None),
        (SETTINGS, {"source": {"container": "data", "blob": "a"}, "engine": "blocks"}, Engine.BLOCKS, None),
        (IDENTITY, {"source": PARTNER_BLOB, "engine": "async"}, Engine.ASYNC, None),
        (IDENTITY, {"source": PARTNER_BLOB, "engine": "auto"}, Engine.BLOCKS, None),
    ],
)
def test_the_engine_a_copy_starts_on(
    settings: Settings, given: dict[str, Any], engine: Engine, escalate_at: datetime | None
) -> None:
    body = {**given, "destination": DEST, "timeout_seconds": 100}
    request = parse_copy_request(body, settings, NOW)
    assert (request.terms.engine, request.terms.escalate_at) == (engine, escalate_at)


def test_the_default_engine_and_escalation_share_come_from_the_settings() -> None:
    settings = dataclasses.replace(SETTINGS, engine="async", escalate_at=0.25)
    body = {"source": {"container": "data", "blob": "a"}, "destination": DEST}
    assert parse_copy_request({**body, "timeout_seconds": 100}, settings, NOW).terms.engine is Engine.ASYNC
    auto = parse_copy_request({**body, "timeout_seconds": 100, "engine": "auto"}, settings, NOW)
    assert auto.terms.escalate_at == NOW + timedelta(seconds=25)


@pytest.mark.parametrize("value", ["fast", "", "AUTO", 1, None, True, ["blocks"], {"engine": "blocks"}])
def test_an_engine_that_is_none_of_the_three_is_refused_by_name(value: Any) -> None:
    body = {"source": {"container": "data", "blob": "a"}, "destination": DEST}
    with pytest.raises(InvalidRequest) as caught:
        parse_copy_request({**body, "engine": value}, SETTINGS, NOW)
    assert {error.field for error in caught.value.errors} == {"engine"}


ROOT = Path(__file__).resolve().parents[1]


def test_every_request_field_is_in_the_api_document_and_its_page() -> None:
    """A field the parser takes (a copy's, and a job's: the same) is in the OpenAPI document's
    start requests and in docs/api.md's table: the operator's and the fuzzing suite's contract."""
    schemas = json.loads((ROOT / "copy_ops" / "openapi.json").read_text(encoding="utf-8"))["components"]["schemas"]
    for schema in ("StartRequest", "JobStartRequest"):
        assert set(schemas[schema]["properties"]) == KNOWN_FIELDS, schema
    rows = [
        line for line in (ROOT / "docs" / "api.md").read_text(encoding="utf-8").splitlines() if line.startswith("| `")
    ]
    assert not [name for name in sorted(KNOWN_FIELDS) if not any(f"`{name}`" in row.split("|")[1] for row in rows)]
