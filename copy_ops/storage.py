"""The narrow adapter between copy-ops and Azure Blob Storage.

Every SDK call goes through :class:`BlobStorage`, and every SDK exception is
translated here, once, into the :mod:`copy_ops.errors` hierarchy (with secrets
redacted from its message).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote, urlsplit

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)

from copy_ops import names
from copy_ops.errors import (
    Conflict,
    CopyOpsError,
    Forbidden,
    InvalidRequest,
    NotFound,
    PreconditionFailed,
    StorageFault,
    StorageUnavailable,
    UnsafeName,
)
from copy_ops.model import OWNER_METADATA_KEY, BlobRef, CopyObservation, Progress
from copy_ops.redaction import redact, strip_query
from copy_ops.settings import StorageConnection

if TYPE_CHECKING:
    from azure.storage.blob import BlobProperties
    from azure.storage.blob.aio import BlobClient, BlobServiceClient, ContainerClient

T = TypeVar("T")

logger = logging.getLogger(__name__)

# Storage's own retry policy (azure-core's retry_backoff_* options do not reach it).
# Its default first backoff is 15 s; these waits (about 0.5, 2.5 and 4.5 s) keep a
# failing step within seconds, so neither an HTTP request nor the sweep's budget is
# eaten by one bad call. What still fails is left to the caller or the next sweep.
RETRY = {"retry_total": 3, "initial_backoff": 0.5, "increment_base": 2, "random_jitter_range": 0.5}
CLIENT_OPTIONS: dict[str, Any] = {"connection_timeout": 5, "read_timeout": 30}

_TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


def translate(exc: AzureError) -> CopyOpsError:
    """The copy-ops error for an SDK exception. The message is redacted."""
    message = redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    if isinstance(exc, HttpResponseError) and exc.status_code is not None:
        status = exc.status_code
        # The storage SDK sets error_code (an enum or Azure's own string) on its errors.
        raw_code = getattr(exc, "error_code", None)
        code = str(getattr(raw_code, "value", raw_code)) if raw_code else None
        if status == 404:
            return NotFound(message, code=code)
        if status == 409:
            return Conflict(message, code=code)
        if status == 412:
            return PreconditionFailed(message, code=code)
        if status == 403:
            return Forbidden(message, code=code)
        if status == 400:
            return InvalidRequest(message, code=code)
        if status in _TRANSIENT_STATUSES:
            return StorageUnavailable(message, code=code)
        return StorageFault(message, code=code)
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return StorageUnavailable(message, code="StorageUnreachable")
    return StorageUnavailable(message, code=type(exc).__name__)


@contextmanager
def storage_errors() -> Iterator[None]:
    try:
        yield
    except AzureError as exc:
        # "from None": the SDK's exception text can hold URLs with a SAS.
        raise translate(exc) from None


def lease_id_for(operation_id: str) -> str:
    """The source lease id of an operation: derived, so a repeated acquire is harmless."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"copy-ops:{operation_id}"))


@dataclass(frozen=True)
class StoredDocument:
    data: bytes
    etag: str


class _StorageLoop:
    """The process's one event loop for storage calls, in a daemon thread, started on first use."""

    _lock = threading.Lock()
    _loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def get(cls) -> asyncio.AbstractEventLoop:
        with cls._lock:
            if cls._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="copy-ops-storage", daemon=True).start()
                cls._loop = loop
            return cls._loop


class BlobStorage:
    """What copy-ops needs from Blob Storage, and nothing more.

    Its methods are synchronous; underneath, every call runs on the async SDK in one
    event loop thread shared by the process. The sweep's threads only wait there. The
    async SDK over aiohttp spends about a third less CPU per request than the sync SDK
    over requests (bench/, docs/performance.md), and the sweep is CPU-bound on the SDK.
    """

    def __init__(self, service: BlobServiceClient, loop: asyncio.AbstractEventLoop) -> None:
        self._service = service
        self._loop = loop
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
        loop = _StorageLoop.get()
        build = _client(connection, pool_size + 4, retry or RETRY, {**CLIENT_OPTIONS, **options})
        return cls(asyncio.run_coroutine_threadsafe(build, loop).result(), loop)

    def close(self) -> None:
        """Close the connections (and the identity's, if any)."""

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
            return asyncio.run_coroutine_threadsafe(_awaited(call), self._loop).result()

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

    def public_url(self, ref: BlobRef) -> str:
        """The blob's URL as it may be shown or stored: never a query string (a client
        built from a SAS connection string carries the account's SAS in every URL)."""
        return strip_query(str(self._blob(ref).url))

    def _source_url(self, source: str | BlobRef, snapshot: str | None) -> str:
        """The URL Copy Blob reads from, with whatever authorises it; it goes nowhere else."""
        if isinstance(source, str):
            return source
        return str(self._blob(source, snapshot).url)

    # -- documents (the ledger) -------------------------------------------------

    def ensure_container(self, container: str) -> None:
        async def call() -> None:
            try:
                await self._container(container).create_container()
            except HttpResponseError as exc:
                if exc.status_code != 409:
                    raise

        self._run(call())

    def create_document(self, container: str, name: str, data: bytes, tags: dict[str, str]) -> str:
        """Write a new document; :class:`Conflict` if one exists. Returns the ETag."""
        blob = self._blob(BlobRef(container, name))
        upload = blob.upload_blob(data, overwrite=False, tags=tags, match_condition=MatchConditions.IfMissing)
        return str(self._run(upload)["etag"])

    def replace_document(self, container: str, name: str, data: bytes, tags: dict[str, str], etag: str) -> str:
        """Replace a document if it still has ``etag``; :class:`PreconditionFailed` otherwise."""
        blob = self._blob(BlobRef(container, name))
        upload = blob.upload_blob(
            data, overwrite=True, tags=tags, etag=etag, match_condition=MatchConditions.IfNotModified
        )
        return str(self._run(upload)["etag"])

    def read_document(self, container: str, name: str) -> StoredDocument:
        async def call() -> StoredDocument:
            download = await self._blob(BlobRef(container, name)).download_blob()
            return StoredDocument(await download.readall(), str(download.properties.etag))

        return self._run(call())

    def delete_document(self, container: str, name: str) -> None:
        self._run(_deleted(self._blob(BlobRef(container, name))))

    def find_by_tags(self, container: str, query: str, page_size: int) -> Iterator[str]:
        """Names of the container's blobs whose tags match ``query``, fetched a page at a time."""
        client = self._container(container)
        pages = client.find_blobs_by_tags(query, results_per_page=page_size).by_page()
        while (names := self._run(_next_page(pages))) is not None:
            yield from names

    def list_names(
        self, container: str, prefix: str, limit: int, continuation: str | None
    ) -> tuple[list[str], str | None]:
        client = self._container(container)
        pages = client.list_blobs(name_starts_with=prefix, results_per_page=limit).by_page(continuation)
        names = self._run(_next_page(pages))
        return names or [], getattr(pages, "continuation_token", None)

    # -- copies ------------------------------------------------------------------

    def observe_copy(self, ref: BlobRef) -> CopyObservation | None:
        """The destination's copy state; None when the blob does not exist."""

        async def call() -> BlobProperties | None:
            try:
                return await self._blob(ref).get_blob_properties()
            except HttpResponseError as exc:
                if exc.status_code == 404:
                    return None
                raise

        props = self._run(call())
        if props is None:
            return None
        copy = props.copy
        return CopyObservation(
            copy_id=copy.id,
            status=copy.status,
            progress=Progress.parse(copy.progress),
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
    ) -> tuple[str, str]:
        """Start Copy Blob; returns (copy id, status). ``source`` is a URL as the caller gave
        it (with its SAS, if any) or a blob of this account (authorised here). No metadata:
        the source's is copied."""
        kwargs: dict[str, Any] = {"metadata": metadata}
        if not overwrite:
            kwargs["match_condition"] = MatchConditions.IfMissing
        source_url = self._source_url(source, source_snapshot)
        result = self._run(self._blob(ref).start_copy_from_url(source_url, **kwargs))
        return str(result["copy_id"]), str(result["copy_status"])

    def abort_copy(self, ref: BlobRef, copy_id: str) -> None:
        self._run(self._blob(ref).abort_copy(copy_id))

    def snapshot(self, ref: BlobRef) -> str | None:
        """A snapshot of the blob (with its own metadata), or None when it does not exist."""

        async def call() -> str | None:
            try:
                result = await self._blob(ref).create_snapshot()
            except HttpResponseError as exc:
                if exc.status_code == 404:
                    return None
                raise
            return str(result["snapshot"])

        return self._run(call())

    def delete_blob(self, ref: BlobRef, snapshot: str | None = None) -> None:
        """Delete a blob or one snapshot of it; a missing one is already deleted."""
        self._run(_deleted(self._blob(ref, snapshot)))

    def acquire_infinite_lease(self, ref: BlobRef, lease_id: str) -> None:
        self._run(self._blob(ref).acquire_lease(-1, lease_id=lease_id))

    def release_lease(self, ref: BlobRef, lease_id: str) -> None:
        """Release our lease. A gone blob, a lease already released, or a lease that is
        not ours (409) all mean there is nothing of ours left to release."""
        from azure.storage.blob.aio import BlobLeaseClient

        async def call() -> None:
            try:
                await BlobLeaseClient(self._blob(ref), lease_id=lease_id).release()
            except HttpResponseError as exc:
                if exc.status_code not in (404, 409):
                    raise

        self._run(call())


async def _client(
    connection: StorageConnection, connections: int, retry: dict[str, float], options: dict[str, Any]
) -> BlobServiceClient:
    # Built inside the loop: aiohttp binds its session to the running loop.
    import aiohttp
    from azure.core.pipeline.transport import AioHttpTransport
    from azure.storage.blob.aio import BlobServiceClient, ExponentialRetry

    options = {**options, "retry_policy": ExponentialRetry(**retry)}  # type: ignore[arg-type]

    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connections),
        # Storage is reached directly; the SDK neither needs cookies nor decompression.
        trust_env=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
    )
    transport = _guarded_transport(AioHttpTransport)(session=session, session_owner=True)
    if connection.connection_string:
        return BlobServiceClient.from_connection_string(connection.connection_string, transport=transport, **options)
    from azure.identity.aio import DefaultAzureCredential  # costly import: only when used

    credential = DefaultAzureCredential(managed_identity_client_id=connection.client_id)
    return BlobServiceClient(connection.blob_endpoint, credential=credential, transport=transport, **options)


def _guarded_transport(base: type[T]) -> type[T]:
    """The SDK's transport, with one last check before the wire: no request leaves whose
    path a URL client would rewrite (dot segments, backslashes, empty segments), whatever
    part of the SDK built it. (The storage SDK takes no extra pipeline policies.)"""

    class GuardedTransport(base):  # type: ignore[valid-type,misc]
        async def send(self, request: Any, **kwargs: Any) -> Any:
            if not names.path_is_stable(urlsplit(request.url).path):
                raise UnsafeName("refused to send a request whose path a URL client would rewrite", code="UnsafePath")
            return await super().send(request, **kwargs)

    return GuardedTransport


async def _awaited(call: Awaitable[T]) -> T:
    # The SDK's methods are typed as awaitables; the loop takes coroutines.
    return await call


async def _deleted(blob: BlobClient) -> None:
    try:
        await blob.delete_blob()
    except HttpResponseError as exc:
        if exc.status_code != 404:
            raise


async def _next_page(pages: AsyncIterator[AsyncIterator[Any]]) -> list[str] | None:
    """The names on the next page, or None after the last."""
    try:
        page = await pages.__anext__()
    except StopAsyncIteration:
        return None
    return [str(item.name) async for item in page]
