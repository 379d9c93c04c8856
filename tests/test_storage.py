"""The storage adapter against Azurite: SDK errors become copy-ops errors, once, redacted."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from copy_ops.copies.lifecycle import lease_id_for
from copy_ops.copies.model import BlobRef
from copy_ops.core.errors import Conflict, CopyOpsError, NotFound, PreconditionFailed, StorageUnavailable
from copy_ops.core.settings import Settings
from copy_ops.storage import BlobStorage
from devkit import DEV_ACCOUNT, PendingCopyProxy
from devkit.proxy import SAS_LIFETIME
from devkit.worker import run
from tests.conftest import Blobs, open_storage
from tests.support.partner import Partner

LATER = datetime.now(UTC) + timedelta(hours=1)


@pytest.fixture
def storage(settings: Settings) -> BlobStorage:
    return open_storage(settings)


def test_documents_are_created_once_and_replaced_only_with_their_etag(storage: BlobStorage, blobs: Blobs) -> None:
    etag = run(storage.create_document(blobs.dst, "doc.json", b"1", {"state": "pending"}))
    with pytest.raises(Conflict) as exists:
        run(storage.create_document(blobs.dst, "doc.json", b"2", {}))
    assert exists.value.code == "BlobAlreadyExists"
    new_etag = run(storage.replace_document(blobs.dst, "doc.json", b"3", {"state": "done"}, etag))
    with pytest.raises(PreconditionFailed):
        run(storage.replace_document(blobs.dst, "doc.json", b"4", {}, etag))
    document = run(storage.read_document(blobs.dst, "doc.json"))
    assert (document.data, document.etag) == (b"3", new_etag)


def test_missing_things_are_not_found(storage: BlobStorage, blobs: Blobs) -> None:
    with pytest.raises(NotFound) as caught:
        run(storage.read_document(blobs.dst, "nothing.json"))
    assert caught.value.code == "BlobNotFound"
    assert run(storage.observe_copy(BlobRef(blobs.dst, "nothing"))) is None
    assert run(storage.snapshot(BlobRef(blobs.dst, "nothing"))) is None
    run(storage.delete_blob(BlobRef(blobs.dst, "nothing")))  # already gone is fine
    run(storage.release_lease(BlobRef(blobs.dst, "nothing"), lease_id_for("x")))


def test_copy_guard_and_abort_codes(
    storage: BlobStorage, blobs: Blobs, partner: Partner, proxy: PendingCopyProxy
) -> None:
    blobs.put(blobs.dst, "exists.bin", b"old")
    source = partner.put("a.bin", b"data")  # another account's: pending, as on Azure
    with pytest.raises(Conflict) as exists:
        run(storage.start_copy(BlobRef(blobs.dst, "exists.bin"), source, {}, overwrite=False, readable_until=LATER))
    assert exists.value.code == "BlobAlreadyExists"
    assert blobs.read(blobs.dst, "exists.bin") == b"old"

    proxy.pending_copies = True
    dest = BlobRef(blobs.dst, "p.bin")
    copy_id, status = run(storage.start_copy(dest, source, {"k": "v"}, overwrite=True, readable_until=LATER))
    assert status == "pending"
    with pytest.raises(Conflict) as busy:
        run(storage.start_copy(dest, source, {}, overwrite=True, readable_until=LATER))
    assert busy.value.code == "PendingCopyOperation"
    with pytest.raises(Conflict) as mismatch:
        run(storage.abort_copy(dest, str(uuid.uuid4())))  # a copy id, not this copy's
    assert mismatch.value.code == "CopyIdMismatch"
    run(storage.abort_copy(dest, copy_id))
    with pytest.raises(Conflict) as over:
        run(storage.abort_copy(dest, copy_id))
    assert over.value.code == "NoPendingCopyOperation"
    seen = run(storage.observe_copy(dest))
    assert seen is not None and (seen.copy_id, seen.status) == (copy_id, "aborted")
    assert blobs.read(blobs.dst, "p.bin") == b"" and blobs.metadata(blobs.dst, "p.bin") == {"k": "v"}


@pytest.mark.parametrize("mode", ["status", "drop"])
def test_transient_faults_are_retried_then_reported_as_unavailable(
    storage: BlobStorage, blobs: Blobs, proxy: PendingCopyProxy, mode: str
) -> None:
    proxy.inject("get_properties", mode=mode, times=1)
    assert run(storage.observe_copy(BlobRef(blobs.dst, "nothing"))) is None  # one fault: the retry gets through
    proxy.inject("get_properties", mode=mode, times=10)
    with pytest.raises(StorageUnavailable):
        run(storage.observe_copy(BlobRef(blobs.dst, "nothing")))


def test_error_messages_never_carry_a_sas(storage: BlobStorage, blobs: Blobs) -> None:
    sas_source = f"{storage.public_url(BlobRef(blobs.src, 'missing.bin'))}?sv=2024&sig=TOPSECRET"
    # Azurite checks the bogus signature (403); Azure would say CannotVerifyCopySource.
    with pytest.raises(CopyOpsError) as caught:
        run(storage.start_copy(BlobRef(blobs.dst, "x.bin"), sas_source, {}, overwrite=True, readable_until=LATER))
    assert "TOPSECRET" not in caught.value.detail
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_a_source_listed_by_its_url_leaves_the_apps_own_client_working(
    storage: BlobStorage, blobs: Blobs, proxy: PendingCopyProxy
) -> None:
    """A job's source listed by its URL gets an SDK client of its own, closed after the
    page; the app's own client (its blob clients kept for reuse) must not end up sending
    through it: two pipelines that shared a retry policy object did (its ``next`` link)."""
    from copy_ops.jobs.model import Listing, PrefixSource

    blobs.put(blobs.src, "in/a.bin", b"x")
    etag = run(storage.create_document(blobs.dst, "doc.json", b"{}", {}))
    url = f"{proxy.url}/{DEV_ACCOUNT}/{blobs.src}"
    listed, _ = run(
        storage.list_source(PrefixSource(Listing.URL, blobs.src, "in/", url), blobs.container_sas(blobs.src), None, 10)
    )
    assert [item.name for item in listed] == ["in/a.bin"]
    # The same document again: a kept client, whose pipeline must still end at our transport.
    assert run(storage.replace_document(blobs.dst, "doc.json", b"{}", {}, etag))
    assert run(storage.read_document(blobs.dst, "doc.json")).data == b"{}"


def test_the_proxy_mints_its_own_sas_again_before_it_expires(
    storage: BlobStorage, blobs: Blobs, proxy: PendingCopyProxy
) -> None:
    """The development kit's proxy may run for days: a copy it passes on after its SAS's
    half-life goes out under a new one, and succeeds."""
    blobs.put(blobs.src, "a.bin", b"data")
    proxy._own_sas()
    proxy._sas_renewed -= SAS_LIFETIME.total_seconds()  # as if it had run for a day
    stale = proxy._sas_renewed
    _, status = run(
        storage.start_copy(
            BlobRef(blobs.dst, "renewed.bin"), BlobRef(blobs.src, "a.bin"), {}, overwrite=True, readable_until=LATER
        )
    )
    assert status == "success" and blobs.read(blobs.dst, "renewed.bin") == b"data"
    assert proxy._sas_renewed > stale  # minted again, not reused
