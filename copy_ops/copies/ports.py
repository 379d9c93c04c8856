"""The narrow interfaces copy-ops needs from storage, in its own words.

:class:`Documents` is the ledger's side (JSON documents with index tags, written
with ETags); :class:`BlobCopies` is the copy side (Copy Blob, Abort Copy, leases,
snapshots); :class:`Sources` lists a job's source. :class:`copy_ops.storage.BlobStorage`
implements them against Azure Blob Storage (as coroutines: every port is awaited on the
caller's event loop); ``tests/support/memory.py`` in memory, for
fast tests of service logic (the Azurite tests stay the proof against real storage).
Errors are those of :mod:`copy_ops.core.errors`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from copy_ops.copies.blocks import Block
from copy_ops.copies.model import (
    BlobRef,
    CopyObservation,
    CopyStatus,
    DestinationCondition,
    ForeignBlob,
    Operation,
    SourceFacts,
)
from copy_ops.core.errors import StorageUnavailable, UnsafeName

if TYPE_CHECKING:
    from copy_ops.observability.events import Event


@dataclass(frozen=True)
class StoredDocument:
    data: bytes
    etag: str


@dataclass(frozen=True)
class Tagged:
    """A document found by its tags: its name, and the tags the query named."""

    name: str
    tags: dict[str, str]


class Documents(Protocol):
    async def ensure_container(self, container: str) -> None:
        """Create the container if it does not exist."""

    async def create_document(self, container: str, name: str, data: bytes, tags: dict[str, str]) -> str:
        """Write a new document; :class:`~copy_ops.core.errors.Conflict` if one exists. Returns the ETag.
        :class:`~copy_ops.core.errors.ContainerMissing` if the container does not exist."""

    async def replace_document(self, container: str, name: str, data: bytes, tags: dict[str, str], etag: str) -> str:
        """Replace a document if it still has ``etag``; :class:`~copy_ops.core.errors.PreconditionFailed` otherwise."""

    async def read_document(self, container: str, name: str) -> StoredDocument:
        """The document and its ETag; :class:`~copy_ops.core.errors.NotFound` if there is none."""

    async def delete_document(self, container: str, name: str) -> None:
        """Delete a document; one that is not there is deleted already."""

    def find_by_tags(self, container: str, query: str, page_size: int) -> AsyncIterator[str]:
        """Names of the documents whose tags match ``query``, a page at a time. The index
        may lag behind writes: a name is a candidate, the document is the truth."""
        ...

    async def find_tagged(
        self, container: str, query: str, limit: int, continuation: str | None
    ) -> tuple[list[Tagged], str | None]:
        """One page of the documents whose tags match ``query``, each with the tags the
        query names (the index returns those alone), and the next page's marker."""

    async def list_names(
        self, container: str, prefix: str, limit: int, continuation: str | None
    ) -> tuple[list[str], str | None]:
        """One page of names under ``prefix``, in name order, and the next page's marker."""

    async def put_document(self, container: str, name: str, data: bytes, content_type: str) -> None:
        """Write a document whatever is there (a report: written whole, by one writer)."""


class BlobCopies(Protocol):
    def public_url(self, ref: BlobRef | ForeignBlob) -> str:
        """The blob's URL as it may be shown or stored: never a query string."""

    async def observe_copy(self, ref: BlobRef) -> CopyObservation | None:
        """The destination's copy state; None when the blob does not exist."""

    async def start_copy(
        self,
        ref: BlobRef,
        source: str | BlobRef | ForeignBlob,
        metadata: dict[str, str] | None,
        overwrite: bool,
        *,
        readable_until: datetime,
        source_snapshot: str | None = None,
        replace_etag: str | None = None,
    ) -> tuple[str, CopyStatus]:
        """Start a server-side copy onto ``ref``; its copy id and status. ``source`` is a URL
        as the caller gave it, a blob of this account, or a blob of another account (read
        through a SAS the adapter mints, valid until a little after ``readable_until``).
        No metadata copies the source's. ``replace_etag``: the destination must be exactly
        the blob with this ETag (a failed attempt's leftover, which the next attempt replaces),
        whatever ``overwrite`` says."""

    async def abort_copy(self, ref: BlobRef, copy_id: str) -> None:
        """Abort the pending copy ``copy_id``: :class:`~copy_ops.core.errors.CopyIdMismatch` if the
        destination's copy is another, :class:`~copy_ops.core.errors.NoPendingCopy` if none is pending."""

    async def snapshot(self, ref: BlobRef) -> str | None:
        """Snapshot the blob; None when it does not exist."""

    async def delete_blob(self, ref: BlobRef, snapshot: str | None = None) -> None:
        """Delete a blob or one snapshot; a missing one is deleted already."""

    async def acquire_infinite_lease(self, ref: BlobRef, lease_id: str) -> None:
        """Take an infinite lease with this id (taking it again is harmless)."""

    async def release_lease(self, ref: BlobRef, lease_id: str) -> None:
        """Release our lease; none held, or the blob gone, means nothing is left to release."""


# What the block engine reads: a blob of the app's account or of another one (read with
# the app's own authorization), or a URL as the caller gave it (its SAS, if any, in it).
BlockSource = str | BlobRef | ForeignBlob


@dataclass(frozen=True)
class Commit:
    """What a commit writes besides the bytes, and what it requires of the destination."""

    content: dict[str, str]
    metadata: dict[str, str]
    condition: DestinationCondition
    etag: str | None
    # The monotonic clock's moment by which it must have landed: it is sent only while a
    # second or more is left, with a server and a client timeout of what is left, never
    # retried by the SDK (a retry could land later). Otherwise :class:`NotSent`.
    last_moment: float


class BlockCopies(Protocol):
    """The block engine's side: synchronous server-side copies, by block or whole.

    Errors: :class:`~copy_ops.core.errors.SourceChanged` when the source is no longer the
    version pinned (or gone once pinned); :class:`~copy_ops.core.errors.NotFound` or
    :class:`~copy_ops.core.errors.Forbidden` when the source cannot be read (gone, or its
    authorization refused); :class:`~copy_ops.core.errors.ConditionNotMet`
    when a lease or a state of the destination refuses the write;
    :class:`~copy_ops.core.errors.DestinationChanged` when the destination is not as the
    commit requires (there, or not the blob to replace); :class:`~copy_ops.core.errors.BlocksMissing`
    when a block the commit names is not staged; others as usual."""

    async def source_facts(self, source: BlockSource) -> SourceFacts:
        """The source's size, ETag, content headers and metadata (one request)."""

    async def copy_whole(self, ref: BlobRef, source: BlockSource, source_etag: str, commit: Commit) -> None:
        """Put Blob From URL: the whole source onto ``ref`` in one request."""

    async def stage_block(
        self, ref: BlobRef, source: BlockSource, source_etag: str, block: Block, go: Callable[[], bool]
    ) -> None:
        """Put Block From URL: one block of ``ref`` read from its range of the source, if
        ``go()`` still says so once the process has a slot for it (else :class:`NotSent`)."""

    async def commit_blocks(self, ref: BlobRef, block_ids: Sequence[str], commit: Commit) -> None:
        """Put Block List: the staged blocks, in order, become the blob."""

    async def uncommitted_blocks(self, ref: BlobRef) -> frozenset[str]:
        """The ids of the blocks staged on ``ref`` and not committed."""


def shown_url(copies: BlobCopies, ref: BlobRef) -> str | None:
    """The URL of ``ref`` to show in a view or an event, or None for a name that copy-ops
    refuses to address (a job's item refused for its name): such a record is still shown,
    listed and announced, never a 400 for whoever reads it."""
    try:
        return copies.public_url(ref)
    except UnsafeName:
        return None


class Storage(Documents, BlobCopies, BlockCopies, Protocol):
    """The sides a copy needs, as one client of one account provides them (a job's
    storage lists sources too: :class:`copy_ops.jobs.ports.JobStorage`)."""

    async def close(self) -> None:
        """Close the connections."""


class JobWatch(Protocol):
    """Told when an item of a job has reached its final state (its record says so), by
    whoever wrote that state after the item had been pending: the job may end with it."""

    async def item_ended(self, operation: Operation, now: datetime) -> None:
        """Check the item's job if this may have been its last item; never raises."""


class BlockQueue(Protocol):
    """Where the block engine hands its blocks out, for any instance to stage."""

    async def hand_out(
        self, operation_id: str, batches: Sequence[str], sas: str | None, delay_seconds: int = 0
    ) -> None:
        """One message per batch (ranges of block indexes, ``0-63``), each carrying ``sas``."""


class WorkQueue(Protocol):
    """The work queue: messages out; the Functions host's queue trigger takes them in."""

    async def send(self, messages: Sequence[str], delay_seconds: int = 0) -> None:
        """Put every message on the queue (visible after ``delay_seconds``)."""


def needed(work: WorkQueue | None) -> WorkQueue:
    """The work queue, which jobs cannot do without (a copy's sweep can)."""
    if work is None:
        raise StorageUnavailable("jobs need the work queue (COPY_WORK_QUEUE)", code="NoWorkQueue")
    return work


class Announcer(Protocol):
    """Where the events of final states go (a queue, an Event Grid topic, or both)."""

    async def announce(self, events: Sequence[Event]) -> None:
        """Deliver every event, or raise (:class:`~copy_ops.core.errors.StorageUnavailable`,
        or another :class:`~copy_ops.core.errors.CopyOpsError`): the event stays owed."""
        ...
