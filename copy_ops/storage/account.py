"""The account's SDK client, and addressing through it: every blob and container a
request names is checked against the naming rules again, and the URL the SDK builds
must name exactly that container and blob."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, unquote, urlsplit

from copy_ops.copies.model import BlobRef, ForeignBlob
from copy_ops.core import names, urls
from copy_ops.core.connection import StorageConnection
from copy_ops.core.errors import UnsafeName
from copy_ops.storage.client import fresh_options
from copy_ops.storage.delegation import Delegation
from copy_ops.storage.errors import bounded_wait

if TYPE_CHECKING:
    from azure.storage.blob.aio import BlobClient, BlobServiceClient, ContainerClient

T = TypeVar("T")

# Blob clients kept for reuse: building one costs about a tenth of a request's CPU, and
# an operation touches its record and its destination several times in a row. Bounded,
# oldest out first; a client is a thin object over the account's shared pipeline.
CACHED_CLIENTS = 4096


class Account:
    """The account's client; requests go through :meth:`_run`, blobs through :meth:`_blob`."""

    def __init__(
        self,
        service: BlobServiceClient,
        connection: StorageConnection,
        options: dict[str, Any] | None = None,
        slots: int = 10,
        block_slots: int = 32,
    ) -> None:
        self._service = service
        # Requests in flight at once, for the whole process: beyond it they wait here,
        # not in the HTTP client's connection pool, whose wait counts against the connect
        # timeout (many callers at once, such as several work messages, would time out
        # there and retry, doing the same work twice).
        self._slots = asyncio.Semaphore(slots)
        # The block engine's requests (each moves a block, seconds long) have a bound of
        # their own, for the whole process: they never hold the records' slots.
        self._block_slots = asyncio.Semaphore(block_slots)
        self._connection = connection
        self._options = options or {}
        # With an identity, the sources the app reads need a SAS it mints (see delegation).
        self._delegation = (
            Delegation(service, connection.blob_endpoint, options or {}) if connection.uses_identity else None
        )
        self._clients: dict[tuple[str, str, str | None], BlobClient] = {}
        self.closed = False

    async def _run(self, call: Awaitable[T], *, callers: bool = False) -> T:
        """One request, within the process's bound, its SDK errors translated (``callers``:
        a request the caller's input shaped, whose refusals are the caller's)."""
        return await bounded_wait(self._gated(call), callers=callers)

    async def _gated(self, call: Awaitable[T]) -> T:
        async with self._slots:
            return await call

    def _client_options(self) -> dict[str, Any]:
        """Options for a client of a URL the caller gave (its own retry policy, the timeouts)."""
        return {
            key: value
            for key, value in fresh_options(self._options).items()
            if key in ("retry_policy", "connection_timeout", "read_timeout")
        }

    def _blob(self, ref: BlobRef, snapshot: str | None = None) -> BlobClient:
        """The SDK client of exactly this blob: the names are checked again here, and the
        URL the SDK built must name that container and blob and nothing else."""
        key = (ref.container, ref.blob, snapshot)
        cached = self._clients.get(key)
        if cached is not None:
            return cached  # checked when it was built, below
        problem = names.container_problem(ref.container) or names.blob_problem(ref.blob)
        if problem is not None:
            raise UnsafeName(f"refused to address {ref.container!r}/{ref.blob!r}: {problem}", code="UnsafeName")
        client = self._service.get_blob_client(ref.container, ref.blob, snapshot=snapshot)
        path = urlsplit(client.url).path
        expected = f"{urlsplit(self._service.url).path.rstrip('/')}/{ref.container}/{ref.blob}"
        if unquote(path) != expected or not names.path_is_stable(path):
            raise UnsafeName(f"refused to address {ref.container!r}/{ref.blob!r}", code="UnsafeName")
        if len(self._clients) >= CACHED_CLIENTS:
            # Dicts keep insertion order: the oldest goes. No await between the look and
            # the store: coroutines never interleave here.
            self._clients.pop(next(iter(self._clients)), None)
        self._clients[key] = client
        return client

    def _container(self, name: str) -> ContainerClient:
        problem = names.container_problem(name)
        if problem is not None:
            raise UnsafeName(f"refused to address container {name!r}: {problem}", code="UnsafeName")
        return self._service.get_container_client(name)

    def _foreign_url(self, ref: ForeignBlob) -> str:
        problem = names.account_problem(ref.account) or names.container_problem(ref.container)
        problem = problem or names.blob_problem(ref.blob)
        url = urls.account_endpoint(self._connection.blob_endpoint, ref.account)
        url = f"{url}/{quote(ref.container)}/{quote(ref.blob, safe='/~')}"
        if problem is not None or not names.path_is_stable(urlsplit(url).path):
            raise UnsafeName(f"refused to address {ref.account!r}/{ref.container!r}/{ref.blob!r}", code="UnsafeName")
        return url
