"""The app reads Azure's answers right (issue 30): each refusal Azure gave in the Azure SDK
teams' recordings of real accounts (tests/data/azure-answers/recorded.json, each fact with
the repository, path and commit it came from) is sent, byte for byte, by the proxy in
answer to the request the app makes; the real SDK raises whatever it raises for it, and
copy-ops' translation and the API's table make of it what the row says. A source the
caller gave that cannot be read is the caller's 4xx naming ``source``, never a 502 or a
``conflict``, whatever exception class the SDK chose."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from copy_ops.copies.blocks import Block
from copy_ops.copies.model import BlobRef, DestinationCondition
from copy_ops.copies.ports import Commit
from copy_ops.core.errors import CopyOpsError, Forbidden, NoPendingCopy, NotFound, SourceChanged
from copy_ops.core.settings import Settings
from copy_ops.edges.http import status_of
from copy_ops.storage import BlobStorage
from devkit import PendingCopyProxy
from devkit.worker import run
from tests.conftest import Blobs, open_storage

RECORDED = Path(__file__).parent / "data" / "azure-answers" / "recorded.json"
FACTS = {fact["id"]: fact for fact in json.loads(RECORDED.read_text(encoding="utf-8"))["facts"]}
COPY_ID = "1c072780-3ed4-446d-83fc-d8f9c875068a"
ETAG = '"0x8DC0000000000AA"'

Call = Callable[[BlobStorage, str, BlobRef], Coroutine[Any, Any, Any]]


def commit() -> Commit:
    return Commit({}, {}, DestinationCondition.ANY, None, time.monotonic() + 60)


CALLS: dict[str, tuple[str, Call]] = {
    "copy_blob": (
        "copy_blob",
        lambda storage, source, ref: storage.start_copy(
            ref, source, None, True, readable_until=datetime.now(UTC) + timedelta(hours=1)
        ),
    ),
    "put_blob_from_url": (
        "put_blob_from_url",
        lambda storage, source, ref: storage.copy_whole(ref, source, ETAG, commit()),
    ),
    "put_block_from_url": (
        "put_block_from_url",
        lambda storage, source, ref: storage.stage_block(ref, source, ETAG, Block(0, 0, 10, "MDAwMDA="), lambda: True),
    ),
    "abort_copy": ("abort_copy", lambda storage, source, ref: storage.abort_copy(ref, COPY_ID)),
}

# (recorded answer, the app's request that meets it, copy-ops' error, the API's status and
# problem type, the field it names). Where a fact was recorded for another request of the
# same family (a source's refusal is the same for Put Blob and Put Block From URL), the row
# says so by naming both.
ROWS = [
    ("copy_private_no_sas", "copy_blob", Forbidden, (403, "forbidden"), "source"),
    ("block_from_url_no_auth", "put_block_from_url", Forbidden, (403, "forbidden"), "source"),
    ("block_from_url_no_auth", "put_blob_from_url", Forbidden, (403, "forbidden"), "source"),
    ("blob_from_url_missing_private", "put_blob_from_url", Forbidden, (403, "forbidden"), "source"),
    ("blob_from_url_missing_private", "put_block_from_url", Forbidden, (403, "forbidden"), "source"),
    ("block_from_url_source_if_match", "put_block_from_url", SourceChanged, (409, "conflict"), None),
    ("abort_completed", "abort_copy", NoPendingCopy, (409, "conflict"), None),
    ("abort_missing_blob", "abort_copy", NotFound, (404, "not-found"), None),
    ("token_refused", "put_blob_from_url", Forbidden, (403, "forbidden"), "source"),
]
# Not recorded (no SDK recording holds it): a bearer token the source refuses, as Azure's
# REST reference for Put Blob From URL describes the source's refusal (the source's status
# and code in x-ms-copy-source-*, the answer's own status the source's).
UNRECORDED: dict[str, dict[str, Any]] = {
    "token_refused": {
        "status": 400,
        "headers": {
            "Content-Type": "application/xml",
            "x-ms-copy-source-error-code": "InvalidAuthenticationInfo",
            "x-ms-copy-source-status-code": "400",
            "x-ms-error-code": "CannotVerifyCopySource",
        },
        "body": '<?xml version="1.0" encoding="utf-8"?><Error><Code>CannotVerifyCopySource</Code>'
        "<Message>Authentication information is not given in the correct format.</Message></Error>",
    }
}


def answer(fact_id: str) -> tuple[int, list[tuple[str, str]], bytes]:
    response: dict[str, Any] = FACTS[fact_id]["response"] if fact_id in FACTS else UNRECORDED[fact_id]
    body = (response.get("body") or "").encode("utf-8")
    headers = [(name, value) for name, value in response["headers"].items() if name.lower() != "content-length"]
    return response["status"], headers, body


@pytest.mark.parametrize(("fact", "request_kind", "error", "api", "field"), ROWS, ids=[f"{r[0]}-{r[1]}" for r in ROWS])
def test_each_recorded_refusal_is_read_as_it_means(
    settings: Settings,
    proxy: PendingCopyProxy,
    blobs: Blobs,
    fact: str,
    request_kind: str,
    error: type[CopyOpsError],
    api: tuple[int, str],
    field: str | None,
) -> None:
    storage = open_storage(settings)
    kind, call = CALLS[request_kind]
    proxy.inject(kind, mode="answer", answer=answer(fact), times=10)
    source = f"{proxy.url}/devstoreaccount1/{blobs.src}/private.bin"
    with pytest.raises(CopyOpsError) as raised:
        run(call(storage, source, BlobRef(blobs.dst, "b.bin")))
    seen = raised.value
    assert isinstance(seen, error), (type(seen).__name__, seen.code, seen.detail)
    assert status_of(seen) == api
    assert [item.field for item in seen.errors] == ([field] if field else [])
    assert "could not be read" not in seen.detail.split("could not be read", 1)[-1]  # said once


def test_every_recorded_refusal_has_a_row() -> None:
    refusals = {fact_id for fact_id, fact in FACTS.items() if fact["response"]["status"] >= 400}
    # Get Blob of an aborted, empty blob (416): the app never reads a destination's bytes.
    assert refusals - {"download_after_abort"} == {row[0] for row in ROWS} - set(UNRECORDED)
