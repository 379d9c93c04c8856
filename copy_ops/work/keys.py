"""The work key, the queue that seals every message the app sends with it, and the check
every message passes before it is read.

The key is made once per ledger, by the first instance that sends or takes a message
(first writer wins), beside the continuation tokens' key, and read once per process:
every instance must know it, since a message may go to any of them. Whoever may read the
ledger's container may read the key; whoever may only put messages on the queue may not.

Rolling deployments: a version's sealed messages are read by the next (the seal is a last
field that decoders ignore, the key stays). The version before seals sent none: its
messages are taken only where the operator says so, for an upgrade
(``COPY_WORK_UNSEALED_UNTIL``: those the queue took in before that time); by default a
message without a seal is never taken.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from copy_ops.copies.ports import Documents, WorkQueue
from copy_ops.copies.records import with_container
from copy_ops.core.errors import ConfigurationError, Conflict, NotFound, NotOurs
from copy_ops.core.times import format_time, parse_time
from copy_ops.work.seal import Seal, seal_of, sealed

WORK_KEY_NAME = "keys/work.key"
# A process reads the key again after this long (one read), and after a message under
# another key if its read is older than REREAD_AFTER_WRONG: instances that disagree (the key
# deleted and made anew while they ran) agree again within minutes, not never.
REREAD = timedelta(minutes=5)
REREAD_AFTER_WRONG = timedelta(minutes=1)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkKey:
    key: bytes
    made_at: datetime

    def to_json(self) -> bytes:
        return json.dumps({"key": base64.b64encode(self.key).decode(), "made_at": format_time(self.made_at)}).encode()

    @classmethod
    def from_json(cls, data: bytes) -> WorkKey:
        """The key as stored; :class:`ConfigurationError` if it is not one (the blob edited)."""
        try:
            fields = json.loads(data)
            key = base64.b64decode(fields["key"], validate=True)
            made_at = parse_time(fields["made_at"])
        except (ValueError, TypeError, KeyError, binascii.Error) as exc:
            raise ConfigurationError(
                f"{WORK_KEY_NAME} in the ledger is not a work key ({type(exc).__name__}): delete it to make a new one",
                code="WorkKey",
            ) from None
        if len(key) < 16:
            raise ConfigurationError(f"{WORK_KEY_NAME} in the ledger holds too short a key", code="WorkKey")
        return cls(key, made_at)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class WorkKeys:
    def __init__(
        self,
        documents: Documents,
        container: str,
        unsealed_until: datetime | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._documents = documents
        self._container = container
        # Messages without a seal the queue took in before this are taken (an upgrade).
        self._unsealed_until = unsealed_until
        self._clock = clock
        self._key: WorkKey | None = None
        self._read_at = datetime.min.replace(tzinfo=UTC)
        self._lock = asyncio.Lock()

    async def key(self, fresher_than: timedelta = REREAD) -> WorkKey:
        """The work key, as read within ``fresher_than`` (else read again)."""
        async with self._lock:
            now = self._clock()
            if self._key is None or now - self._read_at >= fresher_than:
                key = await self._made()
                if self._key is not None and key.key != self._key.key:
                    logger.warning("work_key_changed made_at=%s", format_time(key.made_at))
                self._key, self._read_at = key, now
            return self._key

    async def check(self, text: str, sent_at: datetime | None, now: datetime) -> None:
        """Return if the app sent ``text`` (``sent_at``: when the queue took it in, if
        known); else :class:`NotOurs`, before anything of it is read."""
        seal = seal_of((await self.key()).key, text)
        if seal is Seal.WRONG:  # another key: ours may have changed since it was read
            seal = seal_of((await self.key(REREAD_AFTER_WRONG)).key, text)
        if seal is Seal.OURS:
            return
        if seal is Seal.NONE:
            if self._unsealed_until is not None and (sent_at or now) < self._unsealed_until:
                return
            raise NotOurs("the message carries no seal of the app's", code="Unsealed")
        raise NotOurs("the message's seal is not the app's, or the message changed since", code="SealWrong")

    async def _made(self) -> WorkKey:
        try:
            return await self._read()
        except NotFound:
            pass
        fresh = WorkKey(secrets.token_bytes(32), self._clock())
        try:
            await with_container(
                self._documents,
                self._container,
                lambda: self._documents.create_document(self._container, WORK_KEY_NAME, fresh.to_json(), {}),
            )
            return fresh
        except Conflict:
            return await self._read()  # another instance made it first

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
