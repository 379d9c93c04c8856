"""Copies retried through the stand-in (tests/test_retry_standin*.py): a source that the app
can read again for a later attempt (a public blob of the partner's account, named by URL
without a SAS: a copy from another account runs in the background, as on Azure), a copy's
start, and its record and destination as they are between sweeps."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from azure.storage.blob import BlobProperties, BlobServiceClient

from copy_ops.app_service import AppService
from copy_ops.copies.model import Operation
from devkit import PARTNER_ACCOUNT, PendingCopyProxy
from devkit.worker import run
from tests.support.partner import Partner
from tests.support.requests import start

NOW = datetime.now(UTC).replace(microsecond=0)
DATA = bytes(range(256)) * 64  # 16 KiB


class Public:
    """A container of the partner's account that anyone may read (no SAS in its URLs)."""

    def __init__(self, proxy: PendingCopyProxy) -> None:
        self.partner = Partner(proxy, f"public-{uuid.uuid4().hex[:10]}")
        self.partner.service.get_container_client(self.partner.container).set_container_access_policy(
            signed_identifiers={}, public_access="blob"
        )

    def put(self, name: str, data: bytes) -> str:
        self.partner.blob(name).upload_blob(data, overwrite=True)
        return f"{self.partner.proxy.url}/{PARTNER_ACCOUNT}/{self.partner.container}/{name}"


def begin(service: AppService, source: str, dst: str, **fields: object) -> Operation:
    body = {"source": source, "destination": {"container": dst, "blob": "a.bin"}, "timeout_seconds": 3600, **fields}
    return start(service, body, NOW).operation


def seen(proxy: PendingCopyProxy, dst: str) -> BlobProperties:
    """The destination's properties as a client of the stand-in reads them (its copy status
    is the stand-in's, not Azurite's)."""
    client = BlobServiceClient.from_connection_string(proxy.connection_string, retry_total=0)
    return client.get_blob_client(dst, "a.bin").get_blob_properties()


def stored(service: AppService, op: Operation) -> Operation:
    return run(service.ledger.get(op.id))


def due(service: AppService, op: Operation) -> datetime:
    current = stored(service, op)
    assert current.next_check_at is not None, current
    return current.next_check_at
