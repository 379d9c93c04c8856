"""The narrow adapter between copy-ops and Azure Blob Storage.

Every SDK call goes through :class:`BlobStorage`, and every SDK exception is
translated here, once, into the :mod:`copy_ops.errors` hierarchy (with secrets
redacted from its message).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.blob import BlobLeaseClient, BlobServiceClient, ExponentialRetry

from copy_ops.errors import (
    Conflict,
    CopyOpsError,
    Forbidden,
    InvalidRequest,
    NotFound,
    PreconditionFailed,
    StorageFault,
    StorageUnavailable,
)
from copy_ops.model import OWNER_METADATA_KEY, BlobRef, CopyObservation, Progress
from copy_ops.redaction import redact
from copy_ops.settings import StorageConnection

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


class BlobStorage:
    """What copy-ops needs from Blob Storage, and nothing more."""

    def __init__(self, service: BlobServiceClient) -> None:
        self._service = service

    @classmethod
    def connect(
        cls,
        connection: StorageConnection,
        pool_size: int = 10,
        retry: dict[str, float] | None = None,
        **options: Any,
    ) -> BlobStorage:
        """A client for the account. ``pool_size`` should cover the sweep's concurrency,
        or connections beyond the pool are opened and closed for every request."""
        import requests
        from azure.core.pipeline.transport import RequestsTransport

        session = requests.Session()
        # Storage is reached directly: not reading proxy settings from the environment
        # on every request saves about a tenth of the client's CPU per call (measured).
        session.trust_env = False
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=pool_size + 4)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        kwargs = {
            **CLIENT_OPTIONS,
            **options,
            "retry_policy": ExponentialRetry(**(retry or RETRY)),  # type: ignore[arg-type]
            "transport": RequestsTransport(session=session, session_owner=True),
        }
        if connection.connection_string:
            service = BlobServiceClient.from_connection_string(connection.connection_string, **kwargs)
        else:
            from azure.identity import DefaultAzureCredential  # costly import: only when used

            credential = DefaultAzureCredential(managed_identity_client_id=connection.client_id)
            service = BlobServiceClient(connection.blob_endpoint, credential=credential, **kwargs)
        return cls(service)

    def blob_url(self, ref: BlobRef, snapshot: str | None = None) -> str:
        return str(self._service.get_blob_client(ref.container, ref.blob, snapshot=snapshot).url)

    # -- documents (the ledger) -------------------------------------------------

    def ensure_container(self, container: str) -> None:
        with storage_errors():
            client = self._service.get_container_client(container)
            try:
                client.create_container()
            except HttpResponseError as exc:
                if exc.status_code != 409:
                    raise

    def create_document(self, container: str, name: str, data: bytes, tags: dict[str, str]) -> str:
        """Write a new document; :class:`Conflict` if one exists. Returns the ETag."""
        with storage_errors():
            blob = self._service.get_blob_client(container, name)
            result = blob.upload_blob(data, overwrite=False, tags=tags, match_condition=MatchConditions.IfMissing)
        return str(result["etag"])

    def replace_document(self, container: str, name: str, data: bytes, tags: dict[str, str], etag: str) -> str:
        """Replace a document if it still has ``etag``; :class:`PreconditionFailed` otherwise."""
        with storage_errors():
            blob = self._service.get_blob_client(container, name)
            result = blob.upload_blob(
                data, overwrite=True, tags=tags, etag=etag, match_condition=MatchConditions.IfNotModified
            )
        return str(result["etag"])

    def read_document(self, container: str, name: str) -> StoredDocument:
        with storage_errors():
            download = self._service.get_blob_client(container, name).download_blob()
            data = download.readall()
        return StoredDocument(data, str(download.properties.etag))

    def delete_document(self, container: str, name: str) -> None:
        with storage_errors():
            try:
                self._service.get_blob_client(container, name).delete_blob()
            except HttpResponseError as exc:
                if exc.status_code != 404:
                    raise

    def find_by_tags(self, container: str, query: str, page_size: int) -> Iterator[str]:
        """Names of the container's blobs whose tags match ``query``, page by page."""
        with storage_errors():
            client = self._service.get_container_client(container)
            for page in client.find_blobs_by_tags(query, results_per_page=page_size).by_page():
                for item in page:
                    yield str(item.name)

    def list_names(
        self, container: str, prefix: str, limit: int, continuation: str | None
    ) -> tuple[list[str], str | None]:
        with storage_errors():
            client = self._service.get_container_client(container)
            pages = client.list_blobs(name_starts_with=prefix, results_per_page=limit).by_page(continuation)
            names = [str(item.name) for item in next(pages, [])]
            return names, getattr(pages, "continuation_token", None)

    # -- copies ------------------------------------------------------------------

    def observe_copy(self, ref: BlobRef) -> CopyObservation | None:
        """The destination's copy state; None when the blob does not exist."""
        with storage_errors():
            try:
                props = self._service.get_blob_client(ref.container, ref.blob).get_blob_properties()
            except HttpResponseError as exc:
                if exc.status_code == 404:
                    return None
                raise
        copy = props.copy
        return CopyObservation(
            copy_id=copy.id,
            status=copy.status,
            progress=Progress.parse(copy.progress),
            status_description=redact(copy.status_description) if copy.status_description else None,
            owner=(props.metadata or {}).get(OWNER_METADATA_KEY),
        )

    def start_copy(
        self, ref: BlobRef, source_url: str, metadata: dict[str, str] | None, overwrite: bool
    ) -> tuple[str, str]:
        """Start Copy Blob; returns (copy id, status). No metadata: the source's is copied."""
        kwargs: dict[str, Any] = {"metadata": metadata}
        if not overwrite:
            kwargs["match_condition"] = MatchConditions.IfMissing
        with storage_errors():
            result = self._service.get_blob_client(ref.container, ref.blob).start_copy_from_url(source_url, **kwargs)
        return str(result["copy_id"]), str(result["copy_status"])

    def abort_copy(self, ref: BlobRef, copy_id: str) -> None:
        with storage_errors():
            self._service.get_blob_client(ref.container, ref.blob).abort_copy(copy_id)

    def snapshot(self, ref: BlobRef) -> str | None:
        """A snapshot of the blob (with its own metadata), or None when it does not exist."""
        with storage_errors():
            try:
                result = self._service.get_blob_client(ref.container, ref.blob).create_snapshot()
            except HttpResponseError as exc:
                if exc.status_code == 404:
                    return None
                raise
        return str(result["snapshot"])

    def delete_blob(self, ref: BlobRef, snapshot: str | None = None) -> None:
        """Delete a blob or one snapshot of it; a missing one is already deleted."""
        with storage_errors():
            try:
                self._service.get_blob_client(ref.container, ref.blob, snapshot=snapshot).delete_blob()
            except HttpResponseError as exc:
                if exc.status_code != 404:
                    raise

    def acquire_infinite_lease(self, ref: BlobRef, lease_id: str) -> None:
        with storage_errors():
            self._service.get_blob_client(ref.container, ref.blob).acquire_lease(-1, lease_id=lease_id)

    def release_lease(self, ref: BlobRef, lease_id: str) -> None:
        """Release our lease. A gone blob, a lease already released, or a lease that is
        not ours (409) all mean there is nothing of ours left to release."""
        with storage_errors():
            client = self._service.get_blob_client(ref.container, ref.blob)
            try:
                BlobLeaseClient(client, lease_id=lease_id).release()
            except HttpResponseError as exc:
                if exc.status_code not in (404, 409):
                    raise
