"""The work key, the queue that seals every message the app sends with it, and the check
every message passes before it is read.

The key is made once per ledger, by the first instance that sends or takes a message
(first writer wins), beside the continuation tokens' key, and read once per process:
every instance must know it, since a message may go to any of them. Whoever may read the
ledger's container may read the key; whoever may only put messages on the queue may not.

Rolling deployments: a version's sealed messages are read by the next (the seal is a last
field that decoders ignore); the version before seals sent none, so a message without a
seal is still taken when the queue took it in before the key was made or within
:data:`UNSEALED_GRACE` after (its instances are replaced meanwhile), and only on a ledger
begun by a version before seals: a ledger this version began (it marks it,
:data:`~copy_ops.copies.records.LEDGER_MARK`) takes no unsealed message at all.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from copy_ops.copies.ports import Documents, WorkQueue
from copy_ops.copies.records import LEDGER_MARK, with_container
from copy_ops.core.errors import Conflict, ContainerMissing, NotFound, NotOurs
from copy_ops.core.times import format_time, parse_time
from copy_ops.work.seal import Seal, seal_of, sealed

WORK_KEY_NAME = "keys/work.key"
# How long after the key is made a message without a seal is still taken: a rolling
# deployment over a version before seals keeps sending them until its last instance is
# replaced (Flex Consumption replaces them within a minute or two).
UNSEALED_GRACE = timedelta(minutes=10)


@dataclass(frozen=True)
class WorkKey:
    key: bytes
    made_at: datetime
    # A message without a seal is taken only if the queue took it in before this (None:
    # never; the ledger was new, so no version before seals sent anything).
    unsealed_until: datetime | None

    def to_json(self) -> bytes:
        data = {
            "key": base64.b64encode(self.key).decode(),
            "made_at": format_time(self.made_at),
            "unsealed_until": format_time(self.unsealed_until) if self.unsealed_until else None,
        }
        return json.dumps(data).encode()

    @classmethod
    def from_json(cls, data: bytes) -> WorkKey:
        fields = json.loads(data)
        until = fields["unsealed_until"]
        return cls(base64.b64decode(fields["key"]), parse_time(fields["made_at"]), parse_time(until) if until else None)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class WorkKeys:
    def __init__(self, documents: Documents, container: str, clock: Callable[[], datetime] = _utc_now) -> None:
        self._documents = documents
        self._container = container
        self._clock = clock
        self._key: WorkKey | None = None
        self._lock = asyncio.Lock()

    async def key(self) -> WorkKey:
        async with self._lock:
            if self._key is None:
                self._key = await self._made()
            return self._key

    async def check(self, text: str, sent_at: datetime | None, now: datetime) -> None:
        """Return if the app sent ``text`` (``sent_at``: when the queue took it in, if
        known); else :class:`NotOurs`, before anything of it is read."""
        key = await self.key()
        seal = seal_of(key.key, text)
        if seal is Seal.OURS:
            return
        if seal is Seal.NONE:
            if key.unsealed_until is not None and (sent_at or now) < key.unsealed_until:
                return
            raise NotOurs("the message carries no seal of the app's", code="Unsealed")
        raise NotOurs("the message's seal is not the app's, or the message changed since", code="SealWrong")

    async def _made(self) -> WorkKey:
        try:
            return await self._read()
        except NotFound:
            pass
        made_at = self._clock()
        grace = made_at + UNSEALED_GRACE if await self._begun_before_seals() else None
        fresh = WorkKey(secrets.token_bytes(32), made_at, grace)
        try:
            await with_container(
                self._documents,
                self._container,
                lambda: self._documents.create_document(self._container, WORK_KEY_NAME, fresh.to_json(), {}),
            )
            return fresh
        except Conflict:
            return await self._read()  # another instance made it first

    async def _begun_before_seals(self) -> bool:
        """Whether a version before seals began this ledger (it bears no mark of a later one)."""
        try:
            await self._documents.read_document(self._container, LEDGER_MARK)
        except ContainerMissing:
            return False  # nothing here yet: this version begins it
        except NotFound:
            return True
        return False

    async def _read(self) -> WorkKey:
        return WorkKey.from_json((await self._documents.read_document(self._container, WORK_KEY_NAME)).data)


class SealedQueue:
    """:class:`~copy_ops.copies.ports.WorkQueue` whose every message leaves sealed."""

    def __init__(self, work: WorkQueue, keys: WorkKeys) -> None:
        self.unsealed = work
        self._keys = keys

    async def send(self, messages: Sequence[str], delay_seconds: int = 0) -> None:
        key = (await self._keys.key()).key
        await self.unsealed.send([sealed(key, text) for text in messages], delay_seconds)

    async def close(self) -> None:
        close = getattr(self.unsealed, "close", None)
        if close is not None:
            await close()
