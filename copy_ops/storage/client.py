"""Building the async SDK's client for the account: transport, retries, credential."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from copy_ops.core import names
from copy_ops.core.connection import StorageConnection
from copy_ops.core.errors import UnsafeName

if TYPE_CHECKING:
    from azure.storage.blob.aio import BlobServiceClient
    from azure.storage.queue.aio import QueueClient

# Storage's own retry policy (azure-core's retry_backoff_* options do not reach it).
# Its default waits start at 15 s; its exponential policy adds base**count to each wait,
# so even small settings grow fast. Three retries about 1.5 s apart keep a failing step
# within about 5 s, so neither an HTTP request nor the sweep's budget is eaten by one bad
# call. What still fails is left to the caller or the next sweep.
RETRY = {"retry_total": 3, "backoff": 1.5, "random_jitter_range": 0.5}
CLIENT_OPTIONS: dict[str, Any] = {"connection_timeout": 5, "read_timeout": 30}


def fresh_options(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` for another SDK client, with a retry policy of its own. A pipeline links
    its policies together (each one's ``next``): a policy object shared with a second
    client would send the first client's requests down the second's chain, to its
    transport, even after that client was closed."""
    fresh = dict(options)
    if "retry_policy" in fresh:
        fresh["retry_policy"] = copy.copy(fresh["retry_policy"])
    return fresh


async def build_client(
    connection: StorageConnection, connections: int, retry: dict[str, float], options: dict[str, Any]
) -> BlobServiceClient:
    """The account's client. Built on the worker's event loop: aiohttp binds its session to
    the running loop. The SDK is imported here, on first use, not at cold start."""
    import aiohttp
    from azure.core.pipeline.transport import AioHttpTransport
    from azure.storage.blob.aio import BlobServiceClient, LinearRetry

    options = {**options, "retry_policy": LinearRetry(**retry)}  # type: ignore[arg-type]
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connections),
        # Storage is reached directly; the SDK neither needs cookies nor decompression.
        trust_env=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
    )
    transport = _guarded(AioHttpTransport)(session=session, session_owner=True)
    if connection.connection_string:
        return BlobServiceClient.from_connection_string(connection.connection_string, transport=transport, **options)
    from azure.identity.aio import DefaultAzureCredential  # costly import: only when used

    credential = DefaultAzureCredential(managed_identity_client_id=connection.client_id)
    return BlobServiceClient(connection.blob_endpoint, credential=credential, transport=transport, **options)


async def build_queue_client(
    connection: StorageConnection, name: str, credential: Any, retry: dict[str, float], options: dict[str, Any]
) -> QueueClient:
    """A client of one queue of the account; with an identity, on the blob client's credential."""
    # The queue package exports only its sync retry policies; the blob package's async
    # LinearRetry is the same shared code (azure.storage._shared), and an async client needs one.
    from azure.storage.blob.aio import LinearRetry
    from azure.storage.queue.aio import QueueClient

    options = {**options, "retry_policy": LinearRetry(**retry)}  # type: ignore[arg-type]
    sas = connection.shared_access_signature
    if sas is not None:
        # A SAS connection string may name only its blob endpoint: the queue is its sibling.
        return QueueClient(connection.queue_endpoint, name, credential=sas, **options)
    if connection.connection_string:
        return QueueClient.from_connection_string(connection.connection_string, name, **options)
    return QueueClient(connection.queue_endpoint, name, credential=credential, **options)


def _guarded(base: type[Any]) -> type[Any]:
    """The SDK's transport, with one last check before the wire: no request leaves whose
    path a URL client would rewrite (dot segments, backslashes, empty segments), whatever
    part of the SDK built it. (The storage SDK takes no extra pipeline policies.)"""

    class GuardedTransport(base):  # type: ignore[misc]
        async def send(self, request: Any, **kwargs: Any) -> Any:
            if not names.path_is_stable(urlsplit(request.url).path):
                raise UnsafeName("refused to send a request whose path a URL client would rewrite", code="UnsafePath")
            return await super().send(request, **kwargs)

    return GuardedTransport
