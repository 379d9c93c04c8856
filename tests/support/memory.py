"""Both ports of copy_ops.copies.ports in memory: fast tests of service logic, no emulator.

They keep the storage semantics the service relies on (ETags, If-None-Match, tag
queries, one pending copy per destination, Abort Copy by copy id, leases, snapshots)
and raise the same copy_ops errors as the real adapter. The Azurite tests remain the
proof against real storage; these add speed and reach (many interleavings per second).
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from copy_ops.copies.blocks import Block
from copy_ops.copies.model import (
    OWNER_METADATA_KEY,
    BlobRef,
    CopyObservation,
    CopyStatus,
    DestinationCondition,
    ForeignBlob,
    Progress,
    SourceFacts,
)
from copy_ops.copies.ports import Commit, StoredDocument, Tagged
from copy_ops.core.errors import (
    BlocksMissing,
    ConditionNotMet,
    Conflict,
    ContainerMissing,
    CopyIdMismatch,
    DestinationChanged,
    Forbidden,
    NoPendingCopy,
    NotFound,
    NotSent,
    PreconditionFailed,
    SourceChanged,
    StorageUnavailable,
)
from copy_ops.jobs.model import Listing, PrefixSource
from copy_ops.jobs.ports import Listed
from copy_ops.work.seal import sealed
from devkit.index_lag import matches, parse_query
from devkit.worker import run


@dataclass
class _Document:
    data: bytes
    etag: str
    tags: dict[str, str]


class MemoryDocuments:
    def __init__(self) -> None:
        self.containers: dict[str, dict[str, _Document]] = {}
        self._etags = itertools.count(1)
        self._lock = threading.RLock()
        # Called with (container, name) just before a replace takes effect: a test's way
        # to let another writer in at exactly that moment.
        self.before_replace: Callable[[str, str], Awaitable[None]] | None = None

    def _etag(self) -> str:
        return f'"{next(self._etags)}"'

    def _container(self, container: str) -> dict[str, _Document]:
        if container not in self.containers:
            raise ContainerMissing(f"no container {container}", code="ContainerNotFound")
        return self.containers[container]

    async def ensure_container(self, container: str) -> None:
        with self._lock:
            self.containers.setdefault(container, {})

    async def create_document(self, container: str, name: str, data: bytes, tags: dict[str, str]) -> str:
        with self._lock:
            documents = self._container(container)
            if name in documents:
                raise Conflict(f"{name} exists", code="BlobAlreadyExists")
            documents[name] = _Document(data, self._etag(), dict(tags))
            return documents[name].etag

    async def replace_document(self, container: str, name: str, data: bytes, tags: dict[str, str], etag: str) -> str:
        hook, self.before_replace = self.before_replace, None
        if hook is not None:
            await hook(container, name)
        with self._lock:
            current = self._container(container).get(name)
            if current is None or current.etag != etag:
                raise PreconditionFailed(f"{name} changed", code="ConditionNotMet")
            current.data, current.etag, current.tags = data, self._etag(), dict(tags)
            return current.etag

    async def read_document(self, container: str, name: str) -> StoredDocument:
        with self._lock:
            document = self._container(container).get(name)
            if document is None:
                raise NotFound(f"no {name}", code="BlobNotFound")
            return StoredDocument(document.data, document.etag)

    async def delete_document(self, container: str, name: str) -> None:
        with self._lock:
            self.containers.get(container, {}).pop(name, None)

    async def find_by_tags(self, container: str, query: str, page_size: int) -> AsyncIterator[str]:
        conditions = parse_query(query)
        with self._lock:
            found = sorted(
                n for n, d in self._container(container).items() if d.tags and matches(conditions, container, d.tags)
            )
        for name in found:
            yield name

    async def find_tagged(
        self, container: str, query: str, limit: int, continuation: str | None
    ) -> tuple[list[Tagged], str | None]:
        conditions = parse_query(query)
        named = {condition.key for condition in conditions}
        with self._lock:
            found = sorted(
                (n, d.tags) for n, d in self._container(container).items() if matches(conditions, container, d.tags)
            )
        if continuation is not None:
            found = [item for item in found if item[0] >= continuation]
        page, rest = found[:limit], found[limit:]
        items = [Tagged(name, {k: v for k, v in tags.items() if k in named}) for name, tags in page]
        return items, rest[0][0] if rest else None

    async def put_document(self, container: str, name: str, data: bytes, content_type: str) -> None:
        with self._lock:
            self._container(container)[name] = _Document(data, self._etag(), {})

    async def list_names(
        self, container: str, prefix: str, limit: int, continuation: str | None
    ) -> tuple[list[str], str | None]:
        with self._lock:
            names = sorted(n for n in self._container(container) if n.startswith(prefix))
        if continuation is not None:
            names = [n for n in names if n >= continuation]
        page, rest = names[:limit], names[limit:]
        return page, rest[0] if rest else None


@dataclass
class MemoryBlob:
    data: bytes
    metadata: dict[str, str]
    copy_id: str | None = None
    copy_status: CopyStatus | None = None
    copy_total: int = 0
    lease_id: str | None = None
    snapshots: dict[str, tuple[bytes, dict[str, str]]] = field(default_factory=dict)
    etag: str = field(default_factory=lambda: uuid.uuid4().hex)
    copy_description: str | None = None


class MemoryCopies:
    """Blobs with Azure's copy semantics. ``pending`` makes every copy (but a restore from
    a snapshot) stay pending until :meth:`finish`, as copies from other accounts do."""

    def __init__(self) -> None:
        self.blobs: dict[BlobRef, MemoryBlob] = {}
        self.pending = False
        self.aborts: list[tuple[BlobRef, str]] = []
        # What each pending copy will write when it finishes.
        self._sources: dict[BlobRef, bytes] = {}
        self._lock = threading.RLock()
        self._snapshots = itertools.count(1)
        # Called with the destination just before Copy Blob takes effect.
        self.before_copy: Callable[[BlobRef], Awaitable[None]] | None = None
        # The block engine's: blocks staged (uncommitted) per destination, commits made.
        self.staged: dict[BlobRef, dict[str, bytes]] = {}
        self.commits: list[BlobRef] = []
        self.stage_calls = 0

    def put(self, ref: BlobRef, data: bytes, metadata: dict[str, str] | None = None) -> None:
        """Put Blob, as someone else may: over an existing blob, its snapshots stay (Azure's)."""
        current = self.blobs.get(ref)
        self.blobs[ref] = MemoryBlob(data, dict(metadata or {}), snapshots=current.snapshots if current else {})

    def public_url(self, ref: BlobRef | ForeignBlob) -> str:
        account = ref.account if isinstance(ref, ForeignBlob) else "memory"
        return f"https://{account}.example/{ref.container}/{ref.blob}"

    async def observe_copy(self, ref: BlobRef) -> CopyObservation | None:
        with self._lock:
            blob = self.blobs.get(ref)
            if blob is None:
                return None
            copied = blob.copy_total if blob.copy_status is CopyStatus.SUCCESS else 0
            return CopyObservation(
                copy_id=blob.copy_id,
                status=blob.copy_status,
                progress=Progress(copied, blob.copy_total) if blob.copy_id else None,
                status_description=blob.copy_description,
                owner=blob.metadata.get(OWNER_METADATA_KEY),
                etag=blob.etag,
            )

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
        hook, self.before_copy = self.before_copy, None
        if hook is not None:
            await hook(ref)
        with self._lock:
            data, source_metadata = self._read_source(source, source_snapshot)
            current = self.blobs.get(ref)
            if current is not None and current.copy_status is CopyStatus.PENDING:
                raise Conflict("a copy is pending", code="PendingCopyOperation")
            if replace_etag is not None and (current is None or current.etag != replace_etag):
                raise ConditionNotMet("the destination changed", code="ConditionNotMet")
            if current is not None and not overwrite and replace_etag is None:
                raise Conflict("the destination exists", code="BlobAlreadyExists")
            if current is not None and current.lease_id is not None:
                raise ConditionNotMet("the destination is leased", code="LeaseIdMissing")
            new_metadata = dict(source_metadata if metadata is None else metadata)
            copy_id = str(uuid.uuid4())
            snapshots = current.snapshots if current is not None else {}
            if self.pending and source_snapshot is None:
                blob = MemoryBlob(b"", new_metadata, copy_id, CopyStatus.PENDING, len(data), snapshots=snapshots)
            else:
                blob = MemoryBlob(data, new_metadata, copy_id, CopyStatus.SUCCESS, len(data), snapshots=snapshots)
            self.blobs[ref] = blob
            self._sources[ref] = data
            return copy_id, blob.copy_status  # type: ignore[return-value]

    def _read_source(self, source: str | BlobRef | ForeignBlob, snapshot: str | None) -> tuple[bytes, dict[str, str]]:
        if isinstance(source, str):
            return b"from " + source.encode(), {}
        if isinstance(source, ForeignBlob):
            return f"from {source.account}".encode(), {}
        blob = self.blobs.get(source)
        if blob is None:
            raise NotFound("the source does not exist", code="CannotVerifyCopySource")
        if snapshot is not None:
            if snapshot not in blob.snapshots:
                raise NotFound("no such snapshot", code="BlobNotFound")
            return blob.snapshots[snapshot]
        return blob.data, blob.metadata

    async def abort_copy(self, ref: BlobRef, copy_id: str) -> None:
        with self._lock:
            blob = self.blobs.get(ref)
            if blob is None:
                raise NotFound("no destination", code="BlobNotFound")
            if blob.copy_status is not CopyStatus.PENDING:
                raise NoPendingCopy("no pending copy", code="NoPendingCopyOperation")
            if blob.copy_id != copy_id:
                raise CopyIdMismatch("another copy", code="CopyIdMismatch")
            blob.copy_status = CopyStatus.ABORTED
            self.aborts.append((ref, copy_id))

    async def snapshot(self, ref: BlobRef) -> str | None:
        with self._lock:
            blob = self.blobs.get(ref)
            if blob is None:
                return None
            if blob.copy_status is CopyStatus.PENDING:
                raise Conflict("a copy is pending", code="PendingCopyOperation")
            name = f"snapshot-{next(self._snapshots)}"
            blob.snapshots[name] = (blob.data, dict(blob.metadata))
            return name

    async def delete_blob(self, ref: BlobRef, snapshot: str | None = None) -> None:
        with self._lock:
            blob = self.blobs.get(ref)
            if blob is None:
                return
            if snapshot is not None:
                blob.snapshots.pop(snapshot, None)
                return
            if blob.snapshots:
                raise Conflict("the blob has snapshots", code="SnapshotsPresent")
            del self.blobs[ref]

    async def acquire_infinite_lease(self, ref: BlobRef, lease_id: str) -> None:
        with self._lock:
            blob = self.blobs.get(ref)
            if blob is None:
                raise NotFound("no such blob", code="BlobNotFound")
            if blob.lease_id not in (None, lease_id):
                raise Conflict("leased by someone else", code="LeaseAlreadyPresent")
            blob.lease_id = lease_id

    async def release_lease(self, ref: BlobRef, lease_id: str) -> None:
        with self._lock:
            blob = self.blobs.get(ref)
            if blob is not None and blob.lease_id == lease_id:
                blob.lease_id = None

    async def list_source(
        self, source: PrefixSource, sas: str | None, marker: str | None, page_size: int
    ) -> tuple[list[Listed], str | None]:
        """The container of that name in memory, whatever account the source names; a
        source listed by URL needs its SAS (the Azurite tests list for real)."""
        if source.listing is Listing.URL and source.needs_sas and not sas:
            raise Forbidden("no SAS", code="AuthenticationFailed")
        with self._lock:
            names = sorted(
                ref.blob
                for ref in self.blobs
                if ref.container == source.container
                and ref.blob.startswith(source.prefix)
                and (marker is None or ref.blob >= marker)
            )
            page, rest = names[:page_size], names[page_size:]
            listed = [Listed(name, len(self.blobs[BlobRef(source.container, name)].data)) for name in page]
        return listed, rest[0] if rest else None

    # -- what happens on the storage side on its own ------------------------------

    # -- the block engine's side (BlockCopies) --------------------------------------------

    def _facts_of(self, source: str | BlobRef | ForeignBlob) -> tuple[bytes, str, dict[str, str]]:
        if isinstance(source, BlobRef):
            blob = self.blobs.get(source)
            if blob is None:
                raise NotFound("the source does not exist", code="CannotVerifyCopySource")
            return blob.data, blob.etag, blob.metadata
        data, _ = self._read_source(source, None)
        return data, "fixed", {}

    def _pinned(self, source: str | BlobRef | ForeignBlob, etag: str) -> bytes:
        data, current, _ = self._facts_of(source)
        if current != etag:
            raise SourceChanged("the source changed", code="SourceConditionNotMet")
        return data

    def _commit(self, ref: BlobRef, data: bytes, commit: Commit) -> None:
        if commit.last_moment - time.monotonic() < 1:
            raise NotSent("the commit's moment passed", code="NotSent")
        current = self.blobs.get(ref)
        if commit.condition is DestinationCondition.ABSENT and current is not None:
            raise DestinationChanged("the destination exists", code="BlobAlreadyExists")
        if commit.condition is DestinationCondition.ETAG and (current is None or current.etag != commit.etag):
            raise DestinationChanged("the destination changed", code="ConditionNotMet")
        snapshots = current.snapshots if current is not None else {}
        self.blobs[ref] = MemoryBlob(data, dict(commit.metadata), snapshots=snapshots)
        self.staged.pop(ref, None)
        self.commits.append(ref)

    async def source_facts(self, source: str | BlobRef | ForeignBlob) -> SourceFacts:
        with self._lock:
            data, etag, metadata = self._facts_of(source)
            return SourceFacts(size=len(data), etag=etag, content={}, metadata=dict(metadata))

    async def copy_whole(
        self, ref: BlobRef, source: str | BlobRef | ForeignBlob, source_etag: str, commit: Commit
    ) -> None:
        with self._lock:
            self._commit(ref, self._pinned(source, source_etag), commit)

    async def stage_block(
        self, ref: BlobRef, source: str | BlobRef | ForeignBlob, source_etag: str, block: Block, go: Callable[[], bool]
    ) -> None:
        if not go():
            raise NotSent("not sent", code="NotSent")
        with self._lock:
            data = self._pinned(source, source_etag)
            self.staged.setdefault(ref, {})[block.id] = data[block.offset : block.offset + block.length]
            self.stage_calls += 1

    async def commit_blocks(self, ref: BlobRef, block_ids: Sequence[str], commit: Commit) -> None:
        with self._lock:
            staged = self.staged.get(ref, {})
            if any(block_id not in staged for block_id in block_ids):
                raise BlocksMissing("a block is not staged", code="InvalidBlockList")
            self._commit(ref, b"".join(staged[block_id] for block_id in block_ids), commit)

    async def uncommitted_blocks(self, ref: BlobRef) -> frozenset[str]:
        with self._lock:
            return frozenset(self.staged.get(ref, {}))

    def finish(self, ref: BlobRef) -> None:
        with self._lock:
            blob = self.blobs[ref]
            blob.data, blob.copy_status = self._sources.get(ref, b""), CopyStatus.SUCCESS

    def fail(self, ref: BlobRef, description: str | None = None) -> None:
        """End a pending copy failed; ``description`` as Azure writes it (its status first)."""
        with self._lock:
            blob = self.blobs[ref]
            blob.copy_status, blob.copy_description = CopyStatus.FAILED, description
            blob.etag = uuid.uuid4().hex


class MemoryStorage(MemoryDocuments, MemoryCopies):
    """One account's worth of both, as BlobStorage provides them."""

    def __init__(self) -> None:
        MemoryDocuments.__init__(self)
        MemoryCopies.__init__(self)
        self.closed = False

    async def close(self) -> None:
        self.closed = True


class MemoryQueue:
    """The work queue in memory: messages kept in order, for a test to hand to do_work."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        # The delay each message was sent with, in the order sent.
        self.delays: list[int] = []
        self.refuse = False

    async def send(self, messages: Sequence[str], delay_seconds: int = 0) -> None:
        if self.refuse:
            raise StorageUnavailable("the queue is away", code="ServerBusy")
        self.messages.extend(messages)
        self.delays.extend([delay_seconds] * len(messages))

    def take(self) -> list[str]:
        taken, self.messages = self.messages, []
        return taken


def sealed_by(service: Any, text: str) -> str:
    """``text`` as ``service`` would send it: sealed with its work key (a message of the
    app's, or one written by hand as if the key had leaked)."""
    return sealed(run(service.keys.key()).key, text)
