"""User delegation SAS that the app mints with its identity, for the sources it reads.

An identity's token cannot authorize the source of an asynchronous Copy Blob
(``CannotVerifyCopySource``): the source needs a SAS. With the app's identity holding
*Storage Blob Delegator* (or a data role) and read rights on the source account, the
app asks that account for a user delegation key and signs a read-only SAS for one blob
(or one snapshot) with it: valid from a few minutes before now until a little after
the copy's deadline. Keys are cached per account and renewed when one no longer covers
the SAS asked for. A SAS built here goes into Copy Blob's source header and nowhere else.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from azure.core.exceptions import HttpResponseError

from copy_ops.copies.model import DELEGATION_KEY_LIFETIME, SAS_AFTER_DEADLINE, SAS_START_SKEW, ForeignBlob
from copy_ops.core import urls
from copy_ops.core.errors import FieldError, Forbidden
from copy_ops.core.times import parse_time
from copy_ops.storage.client import fresh_options

if TYPE_CHECKING:
    from azure.storage.blob import UserDelegationKey
    from azure.storage.blob.aio import BlobServiceClient

UNAUTHORIZED, FORBIDDEN = 401, 403
DELEGATOR_ROLE = "Storage Blob Delegator"
READER_ROLE = "Storage Blob Data Reader"


def missing_role(account: str, role: str, doing: str) -> Forbidden:
    return Forbidden.of(
        FieldError("source", f"the app's identity may not {doing} on account {account!r}: give it {role} there")
    )


class Delegation:
    def __init__(self, own: BlobServiceClient, own_endpoint: str, client_options: dict[str, Any]) -> None:
        self._own = own
        self._own_endpoint = own_endpoint
        self._own_account = urls.endpoint_account(own_endpoint).name
        self._options = client_options
        self._clients: dict[str, BlobServiceClient] = {}
        self._keys: dict[str, UserDelegationKey] = {}
        self._lock: asyncio.Lock | None = None

    def endpoint(self, account: str) -> str:
        return (
            self._own_endpoint if account == self._own_account else urls.account_endpoint(self._own_endpoint, account)
        )

    async def sas_url(self, url: str, ref: ForeignBlob, snapshot: str | None, until: datetime) -> str:
        """``url`` (the blob's, checked by the caller) with a read-only SAS for that blob,
        or that snapshot of it, valid until a little after ``until``."""
        from azure.storage.blob import BlobSasPermissions, generate_blob_sas

        start = datetime.now(UTC) - SAS_START_SKEW
        expiry = until + SAS_AFTER_DEADLINE
        key = await self._key(ref.account, start, expiry)
        sas = generate_blob_sas(
            ref.account,
            ref.container,
            ref.blob,
            snapshot=snapshot,
            user_delegation_key=key,
            permission=BlobSasPermissions(read=True),
            start=start,
            expiry=expiry,
        )
        return f"{url}?snapshot={quote(snapshot)}&{sas}" if snapshot else f"{url}?{sas}"

    async def _key(self, account: str, start: datetime, expiry: datetime) -> UserDelegationKey:
        if self._lock is None:
            self._lock = asyncio.Lock()  # made on the worker's loop, where it is used
        async with self._lock:
            cached = self._keys.get(account)
            if cached is not None and _covers(cached, start, expiry):
                return cached
            key_start = datetime.now(UTC) - SAS_START_SKEW
            try:
                key = await self._client(account).get_user_delegation_key(
                    key_start, key_start + DELEGATION_KEY_LIFETIME
                )
            except HttpResponseError as exc:
                if exc.status_code == FORBIDDEN:
                    raise missing_role(account, DELEGATOR_ROLE, "mint a user delegation SAS") from None
                raise
            self._keys[account] = key
            return key

    def client(self, account: str) -> BlobServiceClient:
        """A client of ``account`` on the app's own credential (to list a job's source)."""
        return self._client(account)

    def _client(self, account: str) -> BlobServiceClient:
        if account == self._own_account:
            return self._own
        if account not in self._clients:
            from azure.storage.blob.aio import BlobServiceClient

            endpoint = urls.account_endpoint(self._own_endpoint, account)
            self._clients[account] = BlobServiceClient(
                endpoint, credential=self._own.credential, **fresh_options(self._options)
            )
        return self._clients[account]

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()


def _covers(key: UserDelegationKey, start: datetime, expiry: datetime) -> bool:
    return parse_time(str(key.signed_start)) <= start and parse_time(str(key.signed_expiry)) >= expiry
