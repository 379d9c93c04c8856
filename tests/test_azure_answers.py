"""The app reads Azure's answers right (issue 30): each refusal Azure gave in the Azure SDK
teams' recordings of real accounts (tests/data/azure-answers: recorded.json and
recorded-more.json, each fact with the repository, path and commit it came from; and what the
REST reference documents, documented.json) is sent, byte for byte, by the proxy in answer to
the request the app makes; the real SDK raises whatever it raises for it, and copy-ops'
translation and the API's table make of it what the row says. A source the caller gave that
cannot be read is the caller's 4xx naming ``source``, never a 502 or a ``conflict``, whatever
exception class the SDK chose."""

from __future__ import annotations

import pytest

from copy_ops.copies.model import BlobRef
from copy_ops.core.errors import (
    ConditionNotMet,
    Conflict,
    CopyIdMismatch,
    CopyOpsError,
    DestinationChanged,
    Forbidden,
    NoPendingCopy,
    NotFound,
    SourceChanged,
)
from copy_ops.core.settings import Settings
from copy_ops.edges.http import status_of
from devkit import PendingCopyProxy
from devkit.worker import run
from tests.conftest import Blobs, open_storage
from tests.support.azure_answers import CALLS, DOCUMENTED, FACTS, NOT_MET, answer

# (recorded answer, the app's request that meets it, copy-ops' error, the API's status and
# problem type, the field it names). Where a fact was recorded for another request of the
# same family (a source's refusal is the same for Put Blob and Put Block From URL; a write's
# refusal for a lease or an If-None-Match: * the same for every write), the row says so by
# naming both. A fact of documented.json is Azure's REST reference, recorded nowhere.
ROWS = [
    ("copy_private_no_sas", "copy_blob", Forbidden, (403, "forbidden"), "source"),
    ("copy_missing_source_same_account", "copy_blob", NotFound, (404, "not-found"), "source"),
    ("copy_destination_exists", "copy_blob", Conflict, (409, "conflict"), None),
    ("blob_from_url_leased_destination", "copy_blob", ConditionNotMet, (412, "precondition-failed"), None),
    ("block_from_url_no_auth", "put_block_from_url", Forbidden, (403, "forbidden"), "source"),
    ("block_from_url_no_auth", "put_blob_from_url", Forbidden, (403, "forbidden"), "source"),
    ("blob_from_url_missing_private", "put_blob_from_url", Forbidden, (403, "forbidden"), "source"),
    ("blob_from_url_missing_private", "put_block_from_url", Forbidden, (403, "forbidden"), "source"),
    ("blob_from_url_token_refused", "put_blob_from_url", Forbidden, (403, "forbidden"), "source"),
    ("blob_from_url_token_refused", "put_block_from_url", Forbidden, (403, "forbidden"), "source"),
    ("block_from_url_source_if_match", "put_block_from_url", SourceChanged, (409, "conflict"), None),
    ("block_from_url_source_if_unmodified_since", "put_block_from_url", SourceChanged, (409, "conflict"), None),
    ("blob_from_url_source_if_unmodified_since", "put_blob_from_url", SourceChanged, (409, "conflict"), None),
    ("blob_from_url_destination_exists", "put_blob_from_url", DestinationChanged, (409, "conflict"), None),
    ("blob_from_url_destination_condition", "put_blob_from_url", DestinationChanged, (409, "conflict"), None),
    ("blob_from_url_leased_destination", "put_blob_from_url", ConditionNotMet, (412, "precondition-failed"), None),
    ("block_list_destination_exists", "put_blocklist", DestinationChanged, (409, "conflict"), None),
    ("block_list_if_match_mismatch", "put_blocklist", DestinationChanged, (409, "conflict"), None),
    ("blob_from_url_leased_destination", "put_blocklist", ConditionNotMet, (412, "precondition-failed"), None),
    ("abort_completed", "abort_copy", NoPendingCopy, (409, "conflict"), None),
    ("abort_copy_id_mismatch", "abort_copy", CopyIdMismatch, (409, "conflict"), None),
    ("abort_missing_blob", "abort_copy", NotFound, (404, "not-found"), None),
    ("lease_already_present", "acquire_lease", Conflict, (409, "conflict"), None),
    # Released already (a cleanup run again after a crash): what the release wanted.
    ("lease_release_not_held", "release_lease", None, None, None),
]


@pytest.mark.parametrize(("fact", "request_kind", "error", "api", "field"), ROWS, ids=[f"{r[0]}-{r[1]}" for r in ROWS])
def test_each_recorded_refusal_is_read_as_it_means(
    settings: Settings,
    proxy: PendingCopyProxy,
    blobs: Blobs,
    fact: str,
    request_kind: str,
    error: type[CopyOpsError] | None,
    api: tuple[int, str] | None,
    field: str | None,
) -> None:
    storage = open_storage(settings)
    kind, call = CALLS[request_kind]
    proxy.inject(kind, mode="answer", answer=answer(fact), times=10)
    source = f"{proxy.url}/devstoreaccount1/{blobs.src}/private.bin"
    if error is None:  # the outcome the app wanted: no error at all
        run(call(storage, source, BlobRef(blobs.dst, "b.bin")))
        assert proxy.log.counts[kind] == 1
        return
    with pytest.raises(CopyOpsError) as raised:
        run(call(storage, source, BlobRef(blobs.dst, "b.bin")))
    seen = raised.value
    assert isinstance(seen, error), (type(seen).__name__, seen.code, seen.detail)
    assert status_of(seen) == api
    assert [item.field for item in seen.errors] == ([field] if field else [])
    assert "could not be read" not in seen.detail.split("could not be read", 1)[-1]  # said once


def test_every_recorded_refusal_has_a_row() -> None:
    refusals = {fact_id for fact_id, fact in FACTS.items() if fact["response"]["status"] >= 400}
    assert set(NOT_MET) <= refusals
    assert refusals - set(NOT_MET) == {row[0] for row in ROWS} - set(DOCUMENTED)
