"""A manifest job's chunks, bound to its start: a digest of each chunk's entries kept beside
the job record before the chunks go out, and each chunk taken (on the work queue or its
poison queue) only if its entries are the ones its start sent.

As if the work key had leaked: a chunk forged with it could otherwise name any source the
app may read and land it under the job's destination, or, poisoned, record the job's own
items ``not_started`` before their chunk runs (issue 28). A job started by the version
before keeps no digests: its chunks are taken as they come (its start predates the check).

Cost: one write a manifest job (at its start) and one read a chunk delivery; a document of
64 hex digits a chunk (a job of 1,000 sources: 5 chunks, about 400 bytes).
"""

from __future__ import annotations

import hashlib
import json
import logging

from copy_ops.copies.ports import Documents
from copy_ops.copies.records import with_container
from copy_ops.core.errors import NotFound
from copy_ops.work.messages import Chunk, encode

logger = logging.getLogger(__name__)

# Beside the job records (not under jobs/: those are the records the jobs' list reads).
CHUNKS_PREFIX = "chunks/"


def digest(chunk: Chunk) -> str:
    """The chunk's entries, hashed as its message encodes them (its index and job too)."""
    return hashlib.sha256(encode(chunk).encode()).hexdigest()


class ChunkDigests:
    def __init__(self, documents: Documents, container: str) -> None:
        self._documents = documents
        self._container = container

    @staticmethod
    def name(job_id: str) -> str:
        return f"{CHUNKS_PREFIX}{job_id}.json"

    async def keep(self, job_id: str, chunks: list[Chunk]) -> None:
        """Written before the chunks are sent (a start replayed writes the same again)."""
        document = json.dumps([digest(chunk) for chunk in chunks]).encode()
        name = self.name(job_id)
        await with_container(
            self._documents,
            self._container,
            lambda: self._documents.put_document(self._container, name, document, "application/json"),
        )

    async def sent(self, chunk: Chunk) -> bool:
        """Whether the job's start sent this very chunk (a job of the version before: yes)."""
        try:
            kept = json.loads((await self._documents.read_document(self._container, self.name(chunk.job))).data)
        except NotFound:
            return True
        ours = isinstance(kept, list) and chunk.index < len(kept) and kept[chunk.index] == digest(chunk)
        if not ours:
            logger.warning("job_chunk_refused job=%s chunk=%s reason=not_sent", chunk.job, chunk.index)
        return ours
