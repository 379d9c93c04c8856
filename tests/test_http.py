"""Handler tests: the decorated functions of function_app, called with func.HttpRequest
as the host calls them, against Azurite through the pending-copy proxy."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, quote

import pytest
from azure.storage.blob import generate_blob_sas

from copy_ops.copies.start import SendWindowPassed
from copy_ops.core.errors import (
    ConditionNotMet,
    ConfigurationError,
    Conflict,
    ContainerMissing,
    CopyOpsError,
    Forbidden,
    InvalidRequest,
    NoPendingCopy,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    StorageFault,
    StorageUnavailable,
    UnsafeName,
)
from copy_ops.edges import http, runtime
from copy_ops.edges.http import MAX_BODY_BYTES
from devkit import DEV_ACCOUNT, DEV_KEY, PendingCopyProxy
from devkit.app import payload, request
from devkit.worker import run
from tests.conftest import Blobs, Handlers
from tests.support.partner import Partner
from tests.support.requests import copy_body, is_problem


def test_start_finishing_at_once_is_201_with_location(handlers: Handlers, blobs: Blobs) -> None:
    blobs.put(blobs.src, "a.bin", b"data")
    response = handlers["start_copy"](request("POST", "copies", copy_body(blobs.src, blobs.dst)))
    assert response.status_code == 201
    body = payload(response)
    assert response.headers["Location"] == f"/api/copies/{body['id']}"
    assert "Retry-After" not in response.headers
    assert body["state"] == "succeeded" and body["destination"]["url"].endswith(f"/{blobs.dst}/a.bin")


def test_start_pending_is_202_with_retry_after_then_read_and_abort(
    handlers: Handlers, blobs: Blobs, partner: Partner, proxy: PendingCopyProxy
) -> None:
    partner.put("a.bin", b"x" * 10)
    proxy.pending_copies = True
    # Another account's blob on Copy Blob, pending as on Azure (auto would take the block engine).
    body = partner.body(blobs.dst, timeout_seconds=600, engine="async")
    started = handlers["start_copy"](request("POST", "copies", body))
    assert started.status_code == 202
    assert 1 <= int(started.headers["Retry-After"]) <= 15
    op_id = payload(started)["id"]

    read = handlers["get_copy"](request("GET", f"copies/{op_id}", route_params={"id": op_id}))
    assert read.status_code == 200 and payload(read)["state"] == "pending"
    assert payload(read)["progress"] == {"bytes_copied": 0, "bytes_total": 10}

    aborted = handlers["abort_copy"](request("POST", f"copies/{op_id}/abort", route_params={"id": op_id}))
    assert aborted.status_code == 200
    assert (payload(aborted)["state"], payload(aborted)["abort_reason"]) == ("aborted", "requested")
    again = handlers["abort_copy"](request("POST", f"copies/{op_id}/abort", route_params={"id": op_id}))
    assert again.status_code == 200


def test_abort_of_a_finished_copy_is_409_with_the_operation(handlers: Handlers, blobs: Blobs) -> None:
    blobs.put(blobs.src, "a.bin", b"x")
    op_id = payload(handlers["start_copy"](request("POST", "copies", copy_body(blobs.src, blobs.dst))))["id"]
    response = handlers["abort_copy"](request("POST", f"copies/{op_id}/abort", route_params={"id": op_id}))
    assert is_problem(response, 409)["operation"]["state"] == "succeeded"


def test_unknown_operations_are_404(handlers: Handlers) -> None:
    for name, route in (("get_copy", "copies/x"), ("abort_copy", "copies/x/abort")):
        is_problem(handlers[name](request("GET", route, route_params={"id": "9999999999999-00000000"})), 404)
        is_problem(handlers[name](request("GET", route, route_params={"id": "../../etc"})), 404)


def test_idempotent_replay_is_200_and_another_body_409(
    handlers: Handlers, blobs: Blobs, partner: Partner, proxy: PendingCopyProxy
) -> None:
    partner.put("a.bin", b"x")
    proxy.pending_copies = True
    body = partner.body(blobs.dst, timeout_seconds=600, engine="async")
    key = {"Idempotency-Key": "order-42"}
    first = handlers["start_copy"](request("POST", "copies", body, headers=key))
    replay = handlers["start_copy"](request("POST", "copies", body, headers=key))
    assert (first.status_code, replay.status_code) == (202, 200)
    assert payload(first)["id"] == payload(replay)["id"]
    assert replay.headers["Location"] == first.headers["Location"]
    other = handlers["start_copy"](request("POST", "copies", {**body, "timeout_seconds": 60}, headers=key))
    assert is_problem(other, 409)["code"] == "IdempotencyKeyReused"
    assert proxy.log.counts["copy_blob"] == 1


@pytest.mark.parametrize(
    ("raw", "status", "fields"),
    [
        (b"{not json", 400, {"body"}),
        (b"\xff\xfe", 400, {"body"}),
        (b"", 400, {"body"}),
        (b"[]", 400, {"body"}),
        (b'"text"', 400, {"body"}),
        (
            b'{"source": 1, "destination": {"container": "dst-x", "blob": ""}, "on_abort": "x", "z": 1}',
            400,
            {"source", "destination.blob", "on_abort", "z"},
        ),
        (
            b'{"source": "https://evil.example.com/c/b", "destination": {"container": "dst-x", "blob": "b"}}',
            403,
            {"source"},
        ),
        (
            b'{"source": {"container": "src-x", "blob": "b"}, "destination": {"container": "other", "blob": "b"}}',
            403,
            {"destination.container"},
        ),
        (b"{" + b'"k": "' + b"x" * MAX_BODY_BYTES + b'"}', 413, {"body"}),
    ],
)
def test_bad_input_is_a_problem_naming_the_fields(
    handlers: Handlers, proxy: PendingCopyProxy, raw: bytes, status: int, fields: set[str]
) -> None:
    body = is_problem(handlers["start_copy"](request("POST", "copies", raw=raw)), status)
    assert {item["field"] for item in body["errors"]} == fields
    assert proxy.log.counts["copy_blob"] == 0


def test_storage_refusals_are_mapped(handlers: Handlers, blobs: Blobs, proxy: PendingCopyProxy) -> None:
    missing = handlers["start_copy"](request("POST", "copies", copy_body(blobs.src, blobs.dst, "nope.bin")))
    assert is_problem(missing, 404)["code"] == "CannotVerifyCopySource" or missing.status_code == 404
    blobs.put(blobs.src, "a.bin", b"x")
    blobs.put(blobs.dst, "a.bin", b"old")
    exists = handlers["start_copy"](request("POST", "copies", copy_body(blobs.src, blobs.dst)))
    assert is_problem(exists, 409)["code"] == "BlobAlreadyExists"
    proxy.inject("put_blob", times=20)
    unavailable = handlers["start_copy"](request("POST", "copies", copy_body(blobs.src, blobs.dst, overwrite=True)))
    is_problem(unavailable, 503)
    assert unavailable.headers["Retry-After"]


@pytest.mark.parametrize(
    ("kind", "status", "code", "caller_status"),
    [
        # The app's own requests (its record): storage's refusal is never the caller's 4xx.
        ("put_blob", 403, "AuthorizationPermissionMismatch", 502),
        ("put_blob", 400, "InvalidHeaderValue", 502),
        # The caller's source, through their Copy Blob: storage's refusal is theirs.
        ("copy_blob", 403, "CannotVerifyCopySource", 403),
        ("copy_blob", 400, "InvalidSourceBlobUrl", 400),
        # A condition of the caller's destination (its lease): 412, theirs.
        ("copy_blob", 412, "LeaseIdMissing", 412),
    ],
)
def test_a_storage_refusal_is_the_callers_only_when_their_input_caused_it(
    handlers: Handlers, blobs: Blobs, proxy: PendingCopyProxy, kind: str, status: int, code: str, caller_status: int
) -> None:
    blobs.put(blobs.src, "a.bin", b"x")
    ledger = f"ledger-{blobs.src[-10:]}"
    proxy.inject(kind, status=status, code=code, times=20, path_contains=ledger if kind == "put_blob" else "")
    answer = is_problem(
        handlers["start_copy"](request("POST", "copies", copy_body(blobs.src, blobs.dst))), caller_status
    )
    assert answer["code"] == code


@pytest.mark.parametrize(
    ("error", "status", "slug"),
    [
        (InvalidRequest("x"), 400, "invalid-request"),
        (UnsafeName("x"), 400, "invalid-request"),
        (Forbidden("x"), 403, "forbidden"),
        (NotFound("x"), 404, "not-found"),
        (ContainerMissing("x"), 404, "not-found"),
        (Conflict("x"), 409, "conflict"),
        (NoPendingCopy("x"), 409, "conflict"),
        (ConditionNotMet("x"), 412, "precondition-failed"),
        (PayloadTooLarge("x"), 413, "payload-too-large"),
        (PreconditionFailed("x"), 503, "busy"),
        (StorageFault("x"), 502, "storage-error"),
        (StorageUnavailable("x"), 503, "storage-unavailable"),
        (ConfigurationError("x"), 503, "configuration-error"),
        (SendWindowPassed("x"), 500, "internal-error"),
        (CopyOpsError("x"), 500, "internal-error"),
    ],
)
def test_every_error_has_one_status_in_the_edge_table(error: CopyOpsError, status: int, slug: str) -> None:
    assert http.status_of(error) == (status, slug)


def test_list_pages_and_filters(handlers: Handlers, blobs: Blobs, proxy: PendingCopyProxy) -> None:
    for index in range(3):
        blobs.put(blobs.src, f"{index}.bin", b"x")
        handlers["start_copy"](request("POST", "copies", copy_body(blobs.src, blobs.dst, f"{index}.bin")))
    first = payload(handlers["list_copies"](request("GET", "copies", params={"limit": "2"})))
    assert len(first["items"]) == 2 and first["continuation"]
    rest = payload(
        handlers["list_copies"](request("GET", "copies", params={"limit": "2", "continuation": first["continuation"]}))
    )
    assert len(rest["items"]) == 1 and rest["continuation"] is None
    succeeded = payload(handlers["list_copies"](request("GET", "copies", params={"state": "succeeded"})))
    assert len(succeeded["items"]) == 3
    pending = payload(handlers["list_copies"](request("GET", "copies", params={"state": "pending"})))
    assert pending["items"] == []


@pytest.mark.parametrize(
    ("params", "fields"),
    [
        ({"state": "done"}, {"state"}),
        ({"limit": "0"}, {"limit"}),
        ({"limit": "101"}, {"limit"}),
        ({"limit": "ten"}, {"limit"}),
        ({"limit": ""}, {"limit"}),
        ({"limit": "²"}, {"limit"}),
        ({"limit": "\u0661\u0660"}, {"limit"}),  # Arabic-Indic "10": int() reads it
        ({"state": ""}, {"state"}),
        ({"sort": "asc"}, {"sort"}),
        ({"continuation": "garbage!!"}, {"continuation"}),
    ],
)
def test_bad_list_queries_are_400(handlers: Handlers, blobs: Blobs, params: dict[str, str], fields: set[str]) -> None:
    blobs.put(blobs.src, "a.bin", b"x")
    handlers["start_copy"](request("POST", "copies", copy_body(blobs.src, blobs.dst)))
    body = is_problem(handlers["list_copies"](request("GET", "copies", params=params)), 400)
    assert {item["field"] for item in body["errors"]} == fields


def test_no_secret_reaches_a_response_record_or_log(
    handlers: Handlers, blobs: Blobs, proxy: PendingCopyProxy, caplog: pytest.LogCaptureFixture
) -> None:
    blobs.put(blobs.src, "a.bin", b"x")
    sas = generate_blob_sas(
        DEV_ACCOUNT,
        blobs.src,
        "a.bin",
        account_key=DEV_KEY,
        permission="r",
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    signature = parse_qs(sas)["sig"][0]
    url = f"http://127.0.0.1:{proxy.port}/{DEV_ACCOUNT}/{blobs.src}/a.bin?{sas}"
    with caplog.at_level(logging.DEBUG):
        ok = handlers["start_copy"](request("POST", "copies", {**copy_body(blobs.src, blobs.dst), "source": url}))
        # A tampered SAS: storage refuses it, and the refusal must not echo it either.
        bad = handlers["start_copy"](
            request("POST", "copies", {**copy_body(blobs.src, blobs.dst, "b.bin"), "source": url + "A"})
        )
        listed = handlers["list_copies"](request("GET", "copies"))
    assert ok.status_code == 201 and bad.status_code in (403, 404)
    assert payload(ok)["source"] == url.split("?", maxsplit=1)[0]
    records = blobs.direct.get_container_client(f"ledger-{blobs.src[-10:]}")
    stored = b"".join(records.download_blob(item.name).readall() for item in records.list_blobs())
    everything = b"".join([ok.get_body(), bad.get_body(), listed.get_body(), stored, caplog.text.encode()])
    for secret in (signature, quote(signature, safe=""), DEV_KEY):
        assert secret.encode() not in everything


def test_openapi_document_is_served(handlers: Handlers) -> None:
    response = handlers["openapi"](request("GET", "openapi.json"))
    assert response.status_code == 200 and payload(response)["openapi"].startswith("3.1")


def test_an_unexpected_error_is_a_500_problem_without_detail(
    handlers: Handlers, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internals https://x/c/b?sig=LEAK")

    monkeypatch.setattr(run(runtime.service()), "get", broken)
    body = is_problem(handlers["get_copy"](request("GET", "copies/x", route_params={"id": "x"})), 500)
    assert "LEAK" not in body["detail"] and "internals" not in body["detail"]
