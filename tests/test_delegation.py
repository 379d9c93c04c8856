"""User delegation keys: fetched once per account, reused while they cover the SAS asked
for, renewed when they do not; a minted SAS reads one blob and lives until a little
after the deadline. (On the wire, against Azurite: tests/test_identity.py.)"""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import UserDelegationKey

from copy_ops.copies.model import SAS_AFTER_DEADLINE, ForeignBlob
from copy_ops.core.errors import Forbidden
from copy_ops.core.times import format_time
from copy_ops.storage.delegation import Delegation


class KeySource:
    """What Delegation needs of an SDK client: get_user_delegation_key, counted."""

    def __init__(self, refuse: bool = False) -> None:
        self.calls: list[tuple[datetime, datetime]] = []
        self.refuse = refuse
        self.credential = None

    async def get_user_delegation_key(self, start: datetime, expiry: datetime) -> UserDelegationKey:
        if self.refuse:
            error = HttpResponseError(message="AuthorizationPermissionMismatch")
            error.status_code = 403
            raise error
        self.calls.append((start, expiry))
        key = UserDelegationKey()  # type: ignore[no-untyped-call]
        key.signed_oid, key.signed_tid = "oid", "tid"
        key.signed_start, key.signed_expiry = format_time(start), format_time(expiry)
        key.signed_service, key.signed_version = "b", "2025-01-05"
        key.value = base64.b64encode(b"k" * 32).decode()
        return key


def mint(source: KeySource, until: datetime, account: str = "mine", **kwargs: Any) -> str:
    delegation = Delegation(source, "https://mine.blob.core.windows.net", {})  # type: ignore[arg-type]
    ref = ForeignBlob(account, "c", "a.bin")
    return asyncio.run(delegation.sas_url("https://mine.blob.core.windows.net/c/a.bin", ref, None, until))


def test_a_minted_sas_reads_one_blob_until_a_little_after_the_deadline() -> None:
    deadline = datetime.now(UTC) + timedelta(hours=2)
    url = mint(KeySource(), deadline)
    query = parse_qs(url.split("?", 1)[1])
    assert query["sp"] == ["r"] and query["sr"] == ["b"]
    expiry = datetime.fromisoformat(query["se"][0].replace("Z", "+00:00"))
    assert abs(expiry - (deadline + SAS_AFTER_DEADLINE)) < timedelta(seconds=1)


def test_a_key_is_reused_while_it_covers_and_renewed_when_not() -> None:
    source = KeySource()
    delegation = Delegation(source, "https://mine.blob.core.windows.net", {})  # type: ignore[arg-type]
    ref = ForeignBlob("mine", "c", "a.bin")
    now = datetime.now(UTC)

    async def run() -> None:
        await delegation.sas_url("u", ref, None, now + timedelta(hours=1))
        await delegation.sas_url("u", ref, None, now + timedelta(days=3))
        assert len(source.calls) == 1  # the first key (7 days) covers both
        # Shorten the cached key: the next SAS it cannot cover makes a new one.
        cached = delegation._keys["mine"]
        cached.signed_expiry = format_time(now + timedelta(hours=2))
        await delegation.sas_url("u", ref, None, now + timedelta(hours=1))
        assert len(source.calls) == 1
        await delegation.sas_url("u", ref, None, now + timedelta(hours=3))
        assert len(source.calls) == 2

    asyncio.run(run())


def test_no_delegator_role_is_403_naming_source_and_the_role() -> None:
    with pytest.raises(Forbidden) as caught:
        mint(KeySource(refuse=True), datetime.now(UTC) + timedelta(hours=1))
    [error] = caught.value.errors
    assert error.field == "source" and "Storage Blob Delegator" in error.message
