"""The operation ledger: one JSON blob per operation, in a container of the app's account.

Records are written before anything starts (write-ahead) and replaced only with the ETag
they were read with (optimistic concurrency), so two writers can never both record a final
state. Blob index tags (``state``, ``due``, ``caller``) let the sweep find due operations, and
a listing a caller's own, with one Find Blobs by Tags query, without reading the others.
A record read for writing comes as :class:`Stored`: the operation and, beside it,
the ETag it was read with. ``updated_at`` is set here, on every write, and nowhere else.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from copy_ops.copies.model import Operation
from copy_ops.copies.owners import Owner, owner_tags, sees
from copy_ops.copies.ports import Documents
from copy_ops.core.callers import Caller
from copy_ops.core.continuation import decode_continuation, encode_continuation
from copy_ops.core.errors import Conflict, ContainerMissing, NotFound
from copy_ops.core.times import format_time

# The ledger container's layout: operation records, job records (copy_ops.jobs.records),
# idempotency claims, job reports, and the sweep's in-flight batches (copy_ops.work.fanout).
RECORD_PREFIX = "ops/"
JOB_PREFIX = "jobs/"
CLAIM_PREFIX = "idempotency/"
# An operation's id; a job's item adds a digest of its name to its job's id.
_OPERATION_ID = re.compile(r"[0-9]{13}-[0-9a-f]{8}(-[0-9a-f]{16})?")
# Sizes in the index are zero-padded, so they sort as numbers (a blob is below 10**15 bytes).
BYTES_DIGITS = 15
UNKNOWN = "none"
# Operation ids sort newest first: the listing is then simply in name order.
_TIME_CEILING_MS = 10**13
# The service's maximum. Azurite (3.37) filters only the first page-size blobs of the
# container by name and gives no continuation after a short page, so locally a ledger
# of more records than this can hide due ones; Azure pages properly. See docs/ledger.md.
FIND_PAGE_SIZE = 5000
# The key of continuation tokens, beside the records.
KEY_NAME = "keys/continuation.key"

T = TypeVar("T")


async def with_container(documents: Documents, container: str, write: Callable[[], Awaitable[T]]) -> T:
    """``write``, and again after making the container if it was missing: the ledger's
    container is made on first use rather than at every cold start."""
    try:
        return await write()
    except ContainerMissing:
        await documents.ensure_container(container)
        return await write()


def new_operation_id(now: datetime) -> str:
    inverted = _TIME_CEILING_MS - int(now.timestamp() * 1000)
    return f"{inverted:013d}-{secrets.token_hex(4)}"


def created_at_of(record_id: str) -> datetime:
    """When the operation or job ``record_id`` was created, as its id says (to the millisecond)."""
    inverted = int(record_id.split("-", 1)[0])
    return datetime.fromtimestamp((_TIME_CEILING_MS - inverted) / 1000, tz=UTC)


def is_operation_id(text: str) -> bool:
    return bool(_OPERATION_ID.fullmatch(text))


def record_tags(op: Operation) -> dict[str, str]:
    # Its owner's object id: a caller's own are listed by the index (copy_ops.copies.owners).
    tags = {"state": op.state.value, **owner_tags(op.caller)}
    if op.needs_sweep and op.next_check_at is not None:
        tags["due"] = format_time(op.next_check_at)
    if op.job is not None:
        # What a job's status counts, read from the index alone (copy_ops.jobs.records).
        tags["job"] = op.job
        size = op.progress.bytes_total if op.progress is not None else op.source_size
        tags["bytes"] = str(size).zfill(BYTES_DIGITS) if size is not None else UNKNOWN
        tags["error"] = op.error.code.value if op.error is not None else UNKNOWN
    return tags


@dataclass(frozen=True)
class Stored:
    """A record as it stands in the ledger, and the ETag that a write of it must match."""

    op: Operation
    etag: str


class Ledger:
    def __init__(self, documents: Documents, container: str) -> None:
        self._documents = documents
        self._container = container
        self._key: bytes | None = None
        self._key_lock = asyncio.Lock()

    @staticmethod
    def record_name(operation_id: str) -> str:
        return f"{RECORD_PREFIX}{operation_id}.json"

    async def _with_container(self, write: Callable[[], Awaitable[T]]) -> T:
        return await with_container(self._documents, self._container, write)

    async def create(self, op: Operation, now: datetime) -> Stored:
        """Write a new record; :class:`Conflict` if the id is taken."""
        op = dataclasses.replace(op, updated_at=now)
        name = self.record_name(op.id)
        etag = await self._with_container(
            lambda: self._documents.create_document(self._container, name, op.to_json(), record_tags(op))
        )
        return Stored(op, etag)

    async def save(self, op: Operation, etag: str, now: datetime) -> Stored:
        """Replace the record if it still has ``etag``; else :class:`PreconditionFailed`."""
        op = dataclasses.replace(op, updated_at=now)
        name = self.record_name(op.id)
        return Stored(
            op, await self._documents.replace_document(self._container, name, op.to_json(), record_tags(op), etag)
        )

    async def read(self, operation_id: str, caller: Caller | None = None) -> Stored:
        """The record and its ETag, to change it; to ``caller`` (None: the app itself), another
        caller's record is :class:`NotFound`, as an unknown id."""
        unknown = NotFound(f"no operation {operation_id!r}")
        if not is_operation_id(operation_id):
            raise unknown
        try:
            document = await self._documents.read_document(self._container, self.record_name(operation_id))
        except NotFound:
            raise unknown from None
        op = Operation.from_json(document.data)
        if caller is not None and not sees(caller, op.caller):
            raise unknown
        return Stored(op, document.etag)

    async def get(self, operation_id: str) -> Operation:
        return (await self.read(operation_id)).op

    async def delete(self, operation_id: str) -> None:
        await self._documents.delete_document(self._container, self.record_name(operation_id))

    async def due(self, now: datetime) -> AsyncIterator[str]:
        """Ids of the operations whose next check is at or before ``now``."""
        async for kind, record_id in self.due_records(now):
            if kind == "op":
                yield record_id

    async def due_records(self, now: datetime) -> AsyncIterator[tuple[str, str]]:
        """``("op", id)`` or ``("job", id)`` for each record whose next check is at or
        before ``now``: one query finds both.

        The tag index can lag behind writes: callers re-check the record itself.
        """
        query = f"\"due\" <= '{format_time(now)}'"
        try:
            async for name in self._documents.find_by_tags(self._container, query, FIND_PAGE_SIZE):
                if not name.endswith(".json"):
                    continue
                if name.startswith(RECORD_PREFIX):
                    yield "op", name[len(RECORD_PREFIX) : -len(".json")]
                elif name.startswith(JOB_PREFIX):
                    yield "job", name[len(JOB_PREFIX) : -len(".json")]
        except NotFound:
            return  # no ledger yet: nothing is due

    async def page(
        self, limit: int, continuation: str | None, prefix: str = RECORD_PREFIX
    ) -> tuple[list[str], str | None]:
        """One page of record ids under ``prefix`` (operations, by default), newest first.
        The continuation is our own token (:mod:`copy_ops.core.continuation`); one this listing
        did not make is InvalidRequest."""
        scope = f"names:{prefix}"
        marker = await self._marker(scope, continuation)
        try:
            names, token = await self._documents.list_names(self._container, prefix, limit, marker)
        except NotFound:
            return [], None
        root = prefix.split("/", 1)[0] + "/"
        ids = [name[len(root) : -len(".json")] for name in names]
        return ids, await self._token(scope, token)

    async def find_page(
        self, query: str, limit: int, continuation: str | None, prefix: str = RECORD_PREFIX
    ) -> tuple[list[str], str | None]:
        """One page of the ids of records under ``prefix`` (operations, by default) whose
        tags match ``query``, with our own continuation."""
        scope = f"tags:{query}"
        marker = await self._marker(scope, continuation)
        try:
            found, token = await self._documents.find_tagged(self._container, query, limit, marker)
        except NotFound:
            return [], None
        ids = [item.name[len(prefix) : -len(".json")] for item in found if item.name.startswith(prefix)]
        return ids, await self._token(scope, token)

    async def _marker(self, scope: str, continuation: str | None) -> str | None:
        return decode_continuation(await self._continuation_key(), scope, continuation) if continuation else None

    async def _token(self, scope: str, marker: str | None) -> str | None:
        return encode_continuation(await self._continuation_key(), scope, marker) if marker else None

    async def _continuation_key(self) -> bytes:
        """The key of continuation tokens: made once per ledger (first writer wins), read
        once per process. Every instance must know it: a page's next may go to any of them."""
        async with self._key_lock:
            if self._key is None:
                fresh = secrets.token_bytes(32)
                try:
                    await self._with_container(
                        lambda: self._documents.create_document(self._container, KEY_NAME, fresh, {})
                    )
                    self._key = fresh
                except Conflict:
                    self._key = (await self._documents.read_document(self._container, KEY_NAME)).data
            return self._key

    async def claim(
        self, key: str, operation_id: str, fingerprint: str, scope: str = "", *, owner: Owner | None = None
    ) -> str:
        """Bind an idempotency key to an operation (or, with ``scope="jobs/"``, a job) id,
        first writer wins; the id the key is bound to (``operation_id`` if this call claimed
        it), or :class:`Conflict` for a key bound to a different request body. A caller's keys
        are its own (``owner``): two callers' same key starts two copies."""
        # A key is printable text: no key of a key's holder (no owner) digests as a caller's.
        claimed = key if owner is None else f"{owner.id}\n{key}"
        name = f"{CLAIM_PREFIX}{scope}{hashlib.sha256(claimed.encode()).hexdigest()}.json"
        document = json.dumps({"operation_id": operation_id, "fingerprint": fingerprint}).encode()
        try:
            await self._with_container(lambda: self._documents.create_document(self._container, name, document, {}))
            return operation_id
        except Conflict:
            pass
        existing = json.loads((await self._documents.read_document(self._container, name)).data)
        if existing["fingerprint"] != fingerprint:
            raise Conflict(
                "this Idempotency-Key was already used with a different request body",
                code="IdempotencyKeyReused",
            )
        return str(existing["operation_id"])
