"""The adapter to Azure Blob Storage: :class:`BlobStorage`, both sides of :mod:`copy_ops.copies.ports`.

Its methods are coroutines over the async SDK, awaited on the caller's event loop (the
Functions worker's own). The async SDK over aiohttp spends about a third less CPU per
request than the sync SDK over requests (bench/, docs/performance.md), and the sweep is
CPU-bound on the SDK.
This module is the copy side; the documents side is :mod:`copy_ops.storage.documents`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError

from copy_ops.copies.model import OWNER_METADATA_KEY, BlobRef, CopyObservation, CopyStatus, ForeignBlob, Progress
from copy_ops.core.connection import StorageConnection
from copy_ops.core.errors import UnsafeName
from copy_ops.core.redaction import redact, strip_query
from copy_ops.storage.block_copies import BlockSide
from copy_ops.storage.client import CLIENT_OPTIONS, RETRY, build_client
from copy_ops.storage.delegation import FORBIDDEN, READER_ROLE, missing_role
from copy_ops.storage.documents import NOT_FOUND, DocumentSide
from copy_ops.storage.errors import CANNOT_VERIFY_SOURCE, error_code, ignoring, storage_errors
from copy_ops.storage.listing import SourceSide

# Releasing a lease that is not held (released already, broken, or never taken) is 409.
LEASE_NOT_HELD = 409


class BlobStorage(DocumentSide, SourceSide, BlockSide):
    """What copy-ops needs from Blob Storage, and nothing more."""

    @classmethod
    async def connect(
        cls,
        connection: StorageConnection,
        pool_size: int = 10,
        retry: dict[str, float] | None = None,
        blocks_in_flight: int = 32,
        **options: Any,
    ) -> BlobStorage:
        """A client for the account. ``pool_size`` should cover the sweep's concurrency:
        requests beyond it wait for a connection; ``blocks_in_flight`` bounds the block
        engine's requests in the whole process, on connections of their own."""
        settings = {**CLIENT_OPTIONS, **options}
        service = await build_client(connection, pool_size + blocks_in_flight + 4, retry or RETRY, settings)
        return cls(
            service,
            connection,
            {**settings, "retry_policy": service._config.retry_policy},
            slots=pool_size,
            block_slots=blocks_in_flight,
        )

    @property
    def credential(self) -> Any:
        """The identity's credential (None with a connection string), for the queue client."""
        return None if self._connection.connection_string else self._service.credential

    async def close(self) -> None:
        """Close the connections (and the identity's, if any). Safe to call twice."""
        if self.closed:
            return
        self.closed = True
        with storage_errors():
            if self._delegation is not None:
                await self._delegation.close()
            await self._service.close()
            credential_close = getattr(self._service.credential, "close", None)
            if credential_close is not None:
                await credential_close()

    def public_url(self, ref: BlobRef | ForeignBlob) -> str:
        """The blob's URL as it may be shown or stored: never a query string (a client
        built from a SAS connection string carries the account's SAS in every URL)."""
        if isinstance(ref, ForeignBlob):
            return self._foreign_url(ref)
        return strip_query(str(self._blob(ref).url))

    async def _source_url(self, source: str | BlobRef | ForeignBlob, snapshot: str | None, until: datetime) -> str:
        """The URL Copy Blob reads from, with whatever authorises it; it goes nowhere else.
        With an identity: a SAS minted for this one blob, valid until a little after ``until``."""
        if isinstance(source, str):
            return source
        if self._delegation is None:
            if isinstance(source, ForeignBlob):
                raise UnsafeName("a blob of another account needs an identity-based connection", code="NoIdentity")
            return str(self._blob(source, snapshot).url)
        if isinstance(source, ForeignBlob):
            return await self._delegation.sas_url(self._foreign_url(source), source, snapshot, until)
        own = ForeignBlob(self._connection.account.name, source.container, source.blob)
        return await self._delegation.sas_url(strip_query(str(self._blob(source).url)), own, snapshot, until)

    async def observe_copy(self, ref: BlobRef) -> CopyObservation | None:
        props = await self._run(ignoring(self._blob(ref).get_blob_properties(), NOT_FOUND))
        if props is None:
            return None
        copy = props.copy
        return CopyObservation(
            copy_id=copy.id,
            status=CopyStatus(copy.status) if copy.status else None,
            # A copy that ended at once may carry no progress of its own: it copied the whole blob.
            progress=_progress(copy.progress)
            or (Progress(props.size, props.size) if copy.status == CopyStatus.SUCCESS.value else None),
            status_description=redact(copy.status_description) if copy.status_description else None,
            owner=(props.metadata or {}).get(OWNER_METADATA_KEY),
            etag=str(props.etag) if props.etag else None,
        )

    async def start_copy(
        self,
        ref: BlobRef,
        source: str | BlobRef | ForeignBlob,
        metadata: dict[str, str] | None,
        overwrite: bool,
        *,
        readable_until: datetime,
        source_snapshot: str | None = None,
        replace_etag: str | None = None,
    ) -> tuple[str, CopyStatus]:
        kwargs: dict[str, Any] = {"metadata": metadata}
        if replace_etag is not None:
            kwargs.update(etag=replace_etag, match_condition=MatchConditions.IfNotModified)
        elif not overwrite:
            kwargs["match_condition"] = MatchConditions.IfMissing
        destination = self._blob(ref)
        minted_for = source.account if isinstance(source, ForeignBlob) else None

        async def call() -> dict[str, Any]:
            source_url = await self._source_url(source, source_snapshot, readable_until)
            try:
                return dict(await destination.start_copy_from_url(source_url, **kwargs))
            except HttpResponseError as exc:
                refused = exc.status_code == FORBIDDEN and error_code(exc) == CANNOT_VERIFY_SOURCE
                if minted_for is not None and refused:
                    raise missing_role(minted_for, READER_ROLE, "read the source") from None
                raise

        result = await self._run(call(), callers=True)
        return str(result["copy_id"]), CopyStatus(str(result["copy_status"]))

    async def abort_copy(self, ref: BlobRef, copy_id: str) -> None:
        await self._run(self._blob(ref).abort_copy(copy_id))

    async def snapshot(self, ref: BlobRef) -> str | None:
        result = await self._run(ignoring(self._blob(ref).create_snapshot(), NOT_FOUND), callers=True)
        return str(result["snapshot"]) if result is not None else None

    async def delete_blob(self, ref: BlobRef, snapshot: str | None = None) -> None:
        await self._run(ignoring(self._blob(ref, snapshot).delete_blob(), NOT_FOUND))

    async def acquire_infinite_lease(self, ref: BlobRef, lease_id: str) -> None:
        await self._run(self._blob(ref).acquire_lease(-1, lease_id=lease_id), callers=True)

    async def release_lease(self, ref: BlobRef, lease_id: str) -> None:
        from azure.storage.blob.aio import BlobLeaseClient

        await self._run(
            ignoring(BlobLeaseClient(self._blob(ref), lease_id=lease_id).release(), NOT_FOUND, LEASE_NOT_HELD)
        )


def _progress(text: str | None) -> Progress | None:
    """Azure's ``x-ms-copy-progress``: ``"copied/total"``."""
    copied, _, total = (text or "").partition("/")
    if not (copied.isascii() and copied.isdigit() and total.isascii() and total.isdigit()):
        return None
    return Progress(int(copied), int(total))
