"""What the sweep has handed to the work queue and is still in flight.

One document in the ledger container, ``fanout/in-flight.json``: the batches handed out
and until when each counts as in flight. A sweep reads it only when it fans out, skips
the ids of batches still in flight, and writes it back with its own batches. A batch
that ends (settled, or failed and poisoned) simply expires: its records, if still due,
are found by the next sweep after that. Nothing is lost; at worst a batch is handed out
twice, and settling is idempotent.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from copy_ops.copies.ports import Documents
from copy_ops.copies.records import with_container
from copy_ops.core.errors import Conflict, NotFound, PreconditionFailed
from copy_ops.core.times import format_time, parse_time

NAME = "fanout/in-flight.json"
# How long a handed-out batch is not handed out again: far above the seconds a batch
# takes, below what would make a lost batch's deadlines late by much.
LEASE = timedelta(minutes=3)
SAVE_ATTEMPTS = 3


class InFlight:
    def __init__(self, documents: Documents, container: str) -> None:
        self._documents = documents
        self._container = container
        self._batches: list[dict[str, Any]] = []
        self._etag: str | None = None

    async def load(self, now: datetime) -> set[str]:
        """The ids of batches still in flight at ``now``."""
        try:
            document = await self._documents.read_document(self._container, NAME)
        except NotFound:
            self._batches, self._etag = [], None
            return set()
        batches = json.loads(document.data).get("batches", [])
        self._batches = [batch for batch in batches if parse_time(batch["until"]) > now]
        self._etag = document.etag
        return {operation_id for batch in self._batches for operation_id in batch["ids"]}

    def add(self, ids: list[str], until: datetime) -> None:
        self._batches.append({"until": format_time(until, exact=True), "ids": ids})

    async def save(self, now: datetime) -> None:
        """Write the batches; another sweep writing at the same moment is merged with, not lost."""
        mine = list(self._batches)
        for _ in range(SAVE_ATTEMPTS):
            data = json.dumps({"batches": self._batches}, separators=(",", ":")).encode()
            try:
                if self._etag is None:
                    self._etag = await self._create(data)
                else:
                    self._etag = await self._documents.replace_document(self._container, NAME, data, {}, self._etag)
                return
            except (PreconditionFailed, Conflict):
                await self.load(now)
                self._batches += [batch for batch in mine if batch not in self._batches]
        # Not written: these batches may be handed out again by the next sweep; harmless.

    async def _create(self, data: bytes) -> str:
        return await with_container(
            self._documents, self._container, lambda: self._documents.create_document(self._container, NAME, data, {})
        )
