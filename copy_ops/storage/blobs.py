"""Both sides of :mod:`copy_ops.ports` against Azure Blob Storage, on the async SDK.

Its methods are synchronous; underneath, every call runs on the async SDK in one
event loop thread shared by the process (:mod:`copy_ops.storage.loop`). The async SDK
over aiohttp spends about a third less CPU per request than the sync SDK over
requests (bench/, docs/performance.md), and the sweep is CPU-bound on the SDK.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote, urlsplit

from azure.core import MatchConditions

from copy_ops import names
from copy_ops.connection import StorageConnection
from copy_ops.errors import UnsafeName
from copy_ops.model import OWNER_METADATA_KEY, BlobRef, CopyObservation, CopyStatus, Progress
from copy_ops.ports import StoredDocument
from copy_ops.redaction import redact, strip_query
from copy_ops.storage import loop
from copy_ops.storage.client import CLIENT_OPTIONS, RETRY, build_client
from copy_ops.storage.errors import ignoring, storage_errors

if TYPE_CHECKING:
    from azure.storage.blob.aio import BlobClient, BlobServiceClient, ContainerClient

T = TypeVar("T")

NOT_FOUND = 404
# Releasing a lease that is not held (released already, broken, or never taken) is 409.
LEASE_NOT_HELD = 409


class BlobStorage:
    """What copy-ops needs from Blob Storage, and nothing more."""

    def __init__(self, service: BlobServiceClient) -> None:
        self._service = service
        self.closed = False

    @classmethod
    def connect(
        cls,
        connection: StorageConnection,
        pool_size: int = 10,
        retry: dict[str, float] | None = None,
        **options: Any,
    ) -> BlobStorage:
        """A client for the account. ``pool_size`` should cover the sweep's concurrency:
        requests beyond it wait for a connection."""
        build = build_client(connection, pool_size + 4, retry or RETRY, {**CLIENT_OPTIONS, **options})
        return cls(loop.run(build))

    def close(self) -> None:
        """Close the connections (and the identity's, if any). Safe to call twice."""

        async def call() -> None:
            await self._service.close()
            credential_close = getattr(self._service.credential, "close", None)
            if credential_close is not None:
                await credential_close()

        if not self.closed:
            self.closed = True
            self._run(call())

    def _run(self, call: Awaitable[T]) -> T:
        with storage_errors():
            return loop.run(call)

    def _blob(self, ref: BlobRef, snapshot: str | None = None) -> BlobClient:
        """The SDK client of exactly this blob: the names are checked again here, and the
        URL the SDK built must name that container and blob and nothing else."""
        problem = names.container_problem(ref.container) or names.blob_problem(ref.blob)
        if problem is not None:
            raise UnsafeName(f"refused to address {ref.container!r}/{ref.blob!r}: {problem}", code="UnsafeName")
        client = self._service.get_blob_client(ref.container, ref.blob, snapshot=snapshot)
        path = urlsplit(client.url).path
        expected = f"{urlsplit(self._service.url).path.rstrip('/')}/{ref.container}/{ref.blob}"
        if unquote(path) != expected or not names.path_is_stable(path):
            raise UnsafeName(f"refused to address {ref.container!r}/{ref.blob!r}", code="UnsafeName")
        return client

    def _container(self, name: str) -> ContainerClient:
        problem = names.container_problem(name)
        if problem is not None:
            raise UnsafeName(f"refused to address container {name!r}: {problem}", code="UnsafeName")
        return self._service.get_container_client(name)

    # -- documents (the ledger) -------------------------------------------------

    def ensure_container(self, container: str) -> None:
        self._run(ignoring(self._container(container).create_container(), 409))

    def create_document(self, container: str, name: str, data: bytes, tags: dict[str, str]) -> str:
        upload = self._blob(BlobRef(container, name)).upload_blob(
            data, overwrite=False, tags=tags, match_condition=MatchConditions.IfMissing
        )
        return str(self._run(upload)["etag"])

    def replace_document(self, container: str, name: str, data: bytes, tags: dict[str, str], etag: str) -> str:
        upload = self._blob(BlobRef(container, name)).upload_blob(
            data, overwrite=True, tags=tags, etag=etag, match_condition=MatchConditions.IfNotModified
        )
        return str(self._run(upload)["etag"])

    def read_document(self, container: str, name: str) -> StoredDocument:
        blob = self._blob(BlobRef(container, name))

        async def call() -> StoredDocument:
            download = await blob.download_blob()
            return StoredDocument(await download.readall(), str(download.properties.etag))

        return self._run(call())

    def delete_document(self, container: str, name: str) -> None:
        self._run(ignoring(self._blob(BlobRef(container, name)).delete_blob(), NOT_FOUND))

    def find_by_tags(self, container: str, query: str, page_size: int) -> Iterator[str]:
        pages = self._container(container).find_blobs_by_tags(query, results_per_page=page_size).by_page()
        while (found := self._run(_next_page(pages))) is not None:
            yield from found

    def list_names(
        self, container: str, prefix: str, limit: int, continuation: str | None
    ) -> tuple[list[str], str | None]:
        pages = self._container(container).list_blobs(name_starts_with=prefix, results_per_page=limit)
        by_page = pages.by_page(continuation)
        found = self._run(_next_page(by_page))
        return found or [], getattr(by_page, "continuation_token", None)

    # -- copies ------------------------------------------------------------------

    def public_url(self, ref: BlobRef) -> str:
        """The blob's URL as it may be shown or stored: never a query string (a client
        built from a SAS connection string carries the account's SAS in every URL)."""
        return strip_query(str(self._blob(ref).url))

    def _source_url(self, source: str | BlobRef, snapshot: str | None) -> str:
        """The URL Copy Blob reads from, with whatever authorises it; it goes nowhere else."""
        if isinstance(source, str):
            return source
        return str(self._blob(source, snapshot).url)

    def observe_copy(self, ref: BlobRef) -> CopyObservation | None:
        props = self._run(ignoring(self._blob(ref).get_blob_properties(), NOT_FOUND))
        if props is None:
            return None
        copy = props.copy
        return CopyObservation(
            copy_id=copy.id,
            status=CopyStatus(copy.status) if copy.status else None,
            progress=_progress(copy.progress),
            status_description=redact(copy.status_description) if copy.status_description else None,
            owner=(props.metadata or {}).get(OWNER_METADATA_KEY),
        )

    def start_copy(
        self,
        ref: BlobRef,
        source: str | BlobRef,
        metadata: dict[str, str] | None,
        overwrite: bool,
        source_snapshot: str | None = None,
    ) -> tuple[str, CopyStatus]:
        kwargs: dict[str, Any] = {"metadata": metadata}
        if not overwrite:
            kwargs["match_condition"] = MatchConditions.IfMissing
        source_url = self._source_url(source, source_snapshot)
        result = self._run(self._blob(ref).start_copy_from_url(source_url, **kwargs))
        return str(result["copy_id"]), CopyStatus(str(result["copy_status"]))

    def abort_copy(self, ref: BlobRef, copy_id: str) -> None:
        self._run(self._blob(ref).abort_copy(copy_id))

    def snapshot(self, ref: BlobRef) -> str | None:
        result = self._run(ignoring(self._blob(ref).create_snapshot(), NOT_FOUND))
        return str(result["snapshot"]) if result is not None else None

    def delete_blob(self, ref: BlobRef, snapshot: str | None = None) -> None:
        self._run(ignoring(self._blob(ref, snapshot).delete_blob(), NOT_FOUND))

    def acquire_infinite_lease(self, ref: BlobRef, lease_id: str) -> None:
        self._run(self._blob(ref).acquire_lease(-1, lease_id=lease_id))

    def release_lease(self, ref: BlobRef, lease_id: str) -> None:
        from azure.storage.blob.aio import BlobLeaseClient

        self._run(ignoring(BlobLeaseClient(self._blob(ref), lease_id=lease_id).release(), NOT_FOUND, LEASE_NOT_HELD))


def _progress(text: str | None) -> Progress | None:
    """Azure's ``x-ms-copy-progress``: ``"copied/total"``."""
    copied, _, total = (text or "").partition("/")
    if not (copied.isascii() and copied.isdigit() and total.isascii() and total.isdigit()):
        return None
    return Progress(int(copied), int(total))


async def _next_page(pages: AsyncIterator[AsyncIterator[Any]]) -> list[str] | None:
    """The names on the next page, or None after the last."""
    try:
        page = await pages.__anext__()
    except StopAsyncIteration:
        return None
    return [str(item.name) async for item in page]
