"""The operation record and the values it is made of: copy-ops' own vocabulary.

An :class:`Operation` is what the ledger stores (one JSON blob each) and what the API
shows. It is immutable: every change makes a new one (``dataclasses.replace``). It
never holds a secret: the source is kept without its query string. Nothing here
speaks Azure's words; the storage adapter translates them into these.

Size: about 500 lines. It is the vocabulary every other module speaks (the request's terms,
the record's core and its parts among it); kept in one place, a reader finds every state,
reason, error code and value type together, and the record beside everything it holds.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from copy_ops.copies.owners import Owner, read_owner
from copy_ops.copies.phases import MACHINE, Event, Move, Phase
from copy_ops.core.times import format_time, parse_time
from copy_ops.core.versions import absent_fields, fields_of, read_fields

# Put on the destination's metadata at copy start, so a copy whose start crashed
# before its id was recorded can still be recognised as ours by the sweep.
OWNER_METADATA_KEY = "copyops_operation"
RESERVED_METADATA_PREFIX = "copyops_"


class State(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ABORTED = "aborted"

    @property
    def is_final(self) -> bool:
        return self is not State.PENDING


class CopyStatus(StrEnum):
    """A copy's status as the destination blob reports it."""

    PENDING = "pending"
    SUCCESS = "success"
    FAILED = "failed"
    ABORTED = "aborted"


class Engine(StrEnum):
    """How the bytes are moved (docs/engines.md)."""

    # Decided per copy at its start: ASYNC within the app's account, BLOCKS from elsewhere.
    AUTO = "auto"
    # Azure's Copy Blob: pending for as long as Azure takes; Abort Copy at the deadline.
    ASYNC = "async"
    # copy-ops' own: Put Block From URL per block (or Put Blob From URL), then Put Block
    # List before the deadline, or nothing committed.
    BLOCKS = "blocks"


class OnAbort(StrEnum):
    KEEP = "keep"
    DELETE = "delete"
    RESTORE = "restore"


class AbortReason(StrEnum):
    DEADLINE = "deadline"
    REQUESTED = "requested"
    # Aborted by someone else (another tool, the portal) while we watched it.
    EXTERNAL = "external"


class ErrorCode(StrEnum):
    """Why an operation failed."""

    COPY_FAILED = "copy_failed"
    # Another copy (or a plain write) replaced ours on the destination.
    SUPERSEDED = "superseded"
    DESTINATION_GONE = "destination_gone"
    NOT_STARTED = "not_started"
    # A job's item that storage refused to start (source missing, destination exists...):
    # recorded, so the job's report says so, where a single copy's refusal is the caller's 4xx.
    START_REFUSED = "start_refused"
    # A job's item whose source name copy-ops will not address (a URL client could read it
    # as another path), or whose destination (prefix + name) is no valid blob name: nothing
    # is sent to storage for it; recorded so that the page goes on and the report says why.
    UNSAFE_NAME = "unsafe_name"
    # The block engine: the source changed while its blocks were copied (its ETag moved);
    # nothing was committed, so the destination never mixes two versions of it.
    SOURCE_CHANGED = "source_changed"
    # The block engine, not overwriting: the destination was written by someone else
    # while the blocks were staged, and is left as they wrote it.
    DESTINATION_EXISTS = "destination_exists"
    # Storage answered a copy's start with a 5xx, 429 or not at all: whether its copy began is
    # not known (the next attempt looks for it before it sends another).
    STORAGE_UNAVAILABLE = "storage_unavailable"
    # The block engine: its blocks kept failing (found stalled, handed out again, again).
    BLOCKS_FAILED = "blocks_failed"
    # A later attempt's Copy Blob refused at its start (the source gone or forbidden since):
    # the earlier attempt's leftover on the destination stays ours, cleaned as on_abort says.
    RETRY_REFUSED = "retry_refused"

    @property
    def destination_is_ours(self) -> bool:
        """Whether the destination is still ours to clean up after this failure."""
        return self not in (
            ErrorCode.SUPERSEDED,
            ErrorCode.DESTINATION_GONE,
            ErrorCode.START_REFUSED,
            ErrorCode.UNSAFE_NAME,
            ErrorCode.DESTINATION_EXISTS,
        )


@dataclass(frozen=True)
class OperationError:
    code: ErrorCode
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code.value, "message": self.message}


class Cleanup(StrEnum):
    """Work that remains after an operation reached its final state, done in this order."""

    # Ended before its start request could have finished (an abort request, or a start
    # given up early): once the start grace is over, look for a copy of ours that the
    # start began after all, and stop it and clean up after it as after any other.
    CHECK_LATE_START = "check_late_start"
    # The final state's event (events configured): owed until a target took it.
    ANNOUNCE = "announce"
    RESTORE_DESTINATION = "restore_destination"
    DELETE_DESTINATION = "delete_destination"
    DROP_SNAPSHOT = "drop_snapshot"
    RELEASE_SOURCE_LEASE = "release_source_lease"


CLEANUP_ORDER = tuple(Cleanup)


class Cause(StrEnum):
    """Why an attempt failed that may pass (copy_ops.copies.retry.CAUSES): metrics count
    retries by these."""

    # Storage busy or not answering a copy's start (a 5xx, 429, a timeout).
    STORAGE_BUSY = "storage_busy"
    # A start whose copy was never sent (its request died, or its answer was lost).
    NOT_STARTED = "not_started"
    # A copy Azure ended failed for a server-side cause (a 5xx in its status description).
    COPY_FAILED = "copy_failed"
    # The block engine's blocks kept failing.
    BLOCKS_FAILED = "blocks_failed"


def in_cleanup_order(tasks: set[Cleanup]) -> tuple[Cleanup, ...]:
    return tuple(task for task in CLEANUP_ORDER if task in tasks)


@dataclass(frozen=True)
class Attempt:
    """An attempt that failed for a cause that may pass: its number, when, why, its copy (an
    async copy's id: its leftover on the destination is ours, and it is never adopted as a
    later attempt's), and its pace (bytes copied of all, in so many seconds), by which the
    next attempt's room is judged."""

    number: int
    at: datetime
    cause: Cause
    error: OperationError
    copy_id: str | None = None
    bytes_copied: int = 0
    bytes_total: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "at": format_time(self.at, exact=True),
            "cause": self.cause.value,
            "error": self.error.as_dict(),
            "copy_id": self.copy_id,
            "bytes_copied": self.bytes_copied,
            "bytes_total": self.bytes_total,
            "seconds": self.seconds,
        }

    @classmethod
    def read(cls, data: dict[str, Any]) -> Attempt:
        error = data["error"]
        return cls(
            number=int(data["number"]),
            at=parse_time(data["at"]),
            cause=Cause(data["cause"]),
            error=OperationError(ErrorCode(error["code"]), error["message"]),
            copy_id=data.get("copy_id"),
            bytes_copied=int(data.get("bytes_copied", 0)),
            bytes_total=int(data.get("bytes_total", 0)),
            seconds=float(data.get("seconds", 0.0)),
        )


@dataclass(frozen=True)
class BlobRef:
    container: str
    blob: str

    def as_dict(self) -> dict[str, str]:
        return {"container": self.container, "blob": self.blob}


@dataclass(frozen=True)
class ForeignBlob:
    """A blob in another storage account, read with the app's identity: through a user
    delegation SAS the app mints for one async copy (never stored or shown), or with the
    app's bearer token for the block engine."""

    account: str
    container: str
    blob: str

    def as_dict(self) -> dict[str, str]:
        return {"account": self.account, "container": self.container, "blob": self.blob}


@dataclass(frozen=True)
class SourceFacts:
    """What the block engine reads of its source at the start, once: the size it plans by,
    the ETag that pins the version every block is read from, and what the destination
    carries over as Copy Blob would (content headers, MD5, metadata)."""

    size: int
    etag: str
    # Content headers by their HTTP names, lower case (content-type, content-md5 in base64...).
    content: dict[str, str]
    metadata: dict[str, str]


class DestinationCondition(StrEnum):
    """What the block engine's commit requires of the destination."""

    ANY = "any"  # overwrite: whatever is there
    ABSENT = "absent"  # not overwriting: nothing there (If-None-Match: *)
    ETAG = "etag"  # exactly the blob with this ETag (an escalated copy's abort leftover)


# A user delegation SAS is signed with a user delegation key, which Azure issues for at
# most 7 days. The app's SAS is valid from a little before now (clock skew) until a
# little after the deadline; the key must cover it. So a copy read through a minted SAS
# may have a deadline no further than this from now (7 days less 20 minutes: 5 of skew,
# 15 after the deadline).
DELEGATION_KEY_LIFETIME = timedelta(days=7)
SAS_START_SKEW = timedelta(minutes=5)
SAS_AFTER_DEADLINE = timedelta(minutes=15)
MINTED_SAS_LONGEST_TIMEOUT = DELEGATION_KEY_LIFETIME - SAS_START_SKEW - SAS_AFTER_DEADLINE


@dataclass(frozen=True)
class Terms:
    """What a copy is asked to do beyond its source and destination, or a job for each of its
    items: read once from the request (copy_ops.copies.request.terms_of), then carried whole
    by the request, the record, the job and each item's request. A record stores each field
    under its own name (core.versions.fields_of): a field added with a default reads from
    records written before it, and needs no code in the records."""

    deadline: datetime
    on_abort: OnAbort = OnAbort.KEEP
    metadata: dict[str, str] = field(default_factory=dict)
    overwrite: bool = False
    lease_source: bool = False
    # The engine: a job's as asked (auto, resolved for each item), a copy's the one it is on
    # (auto resolved at its start; an escalated copy's: blocks). Records written before the
    # engines existed copied by Copy Blob.
    engine: Engine = Engine.ASYNC
    # When ``auto`` hands a copy of the app's account still pending to the blocks (None: never).
    escalate_at: datetime | None = None
    # How many attempts at most, and the first wait between them (copy_ops.copies.retry).
    # Records written before retries were tried once.
    retry_attempts: int = 1
    retry_backoff_seconds: float = 0.0


@dataclass(frozen=True)
class CopyRequest:
    """A validated start request. ``source_url`` may carry a SAS: it is used once, never stored."""

    source_url: str | None
    source_blob: BlobRef | None
    destination: BlobRef
    terms: Terms
    # A digest of the request body as given, to tell a replay from a different request.
    fingerprint: str
    # A source in another account, read through a SAS the app mints (then the two above are None).
    source_foreign: ForeignBlob | None = None
    # Set for an item of a job: the job's id, and the source's size if the listing said it.
    job: str | None = None
    source_size: int | None = None
    # Whose the copy is: the service sets it from the request's caller (an item's: its job's).
    caller: Owner | None = None
    # The blob its Copy Blob replaces, by ETag, whatever ``overwrite`` says: an item of a job's
    # retry, over the first job's failed item's leftover (copy_ops.jobs.reruns).
    replace_etag: str | None = None

    @property
    def source(self) -> str | BlobRef | ForeignBlob:
        """What Copy Blob reads: the caller's URL as given, a blob of the app's account, or
        a blob of another account."""
        if self.source_url is not None:
            return self.source_url
        if self.source_foreign is not None:
            return self.source_foreign
        assert self.source_blob is not None
        return self.source_blob


@dataclass(frozen=True)
class Progress:
    bytes_copied: int
    bytes_total: int

    def as_dict(self) -> dict[str, int]:
        return {"bytes_copied": self.bytes_copied, "bytes_total": self.bytes_total}


@dataclass(frozen=True)
class CopyObservation:
    """What the destination blob says about its copy, read in one Get Blob Properties."""

    copy_id: str | None
    status: CopyStatus | None
    progress: Progress | None = None
    status_description: str | None = None
    owner: str | None = None
    # The destination's ETag (the block engine's commit over an abort's leftover names it).
    etag: str | None = None


@dataclass(frozen=True)
class ListQuery:
    """A page of the list: only operations in ``state`` (all if None), at most ``limit``."""

    state: State | None
    limit: int
    continuation: str | None


@dataclass(frozen=True)
class BlockState:
    """The block engine's part of a record: there from the record of a block copy, or from an
    async copy's escalation, on (its engine ``blocks``); absent, the engine has no part in it."""

    # The source's ETag and content headers as read by the plan (its size is the record's
    # ``source_size``); None: not planned yet.
    source_etag: str | None = None
    content: dict[str, str] = field(default_factory=dict)
    # The blocks staged (copy_ops.copies.blocks.Staged's text).
    staged: str = ""
    # When the commit was sent (None: not since the plan, or since blocks were staged again).
    commit_sent_at: datetime | None = None
    # An escalated copy's: the ETag of its async copy's leftover, the blob its commit replaces.
    condition_etag: str | None = None


@dataclass(frozen=True)
class ItemClaim:
    """A job's item: the attempt that recorded it (or took it over), by a token, so that attempt
    can tell its own write (whose answer was lost, and whose retry storage refused) from
    another's; and when: a record without a copy whose claim is old is an attempt that died
    between its record and its Copy Blob, and another attempt may take it over."""

    start_token: str
    claimed_at: datetime


@dataclass(frozen=True)
class Restore:
    """The destination's snapshot, taken before the copy to restore on abort: copied back
    when the copy ends otherwise than succeeded, then dropped."""

    snapshot: str
    # The copy that puts it back, once sent (a later sweep sees it landed, or waits for it).
    restore_copy_id: str | None = None


@dataclass(frozen=True)
class Operation:
    """A record: a core every operation has, its terms, and parts each whole or absent (the
    block engine's, a job's item's claim, the restore's snapshot). Stored flat: each part's
    fields under their own names, as they were before there were parts."""

    id: str
    state: State
    source: str
    destination: BlobRef
    terms: Terms
    created_at: datetime
    # Set by the ledger on every write (copy_ops.copies.records), nowhere else.
    updated_at: datetime | None = None
    source_blob: BlobRef | None = None
    copy_id: str | None = None
    finished_at: datetime | None = None
    next_check_at: datetime | None = None
    checks: int = 0
    abort_reason: AbortReason | None = None
    abort_requested_at: datetime | None = None
    error: OperationError | None = None
    progress: Progress | None = None
    # Whether the destination held a blob before the copy: False when known empty (not
    # overwriting, or nothing to snapshot), None when not known; an abort that restores
    # deletes a copy that had nothing to restore.
    had_destination: bool | None = None
    cleanup: tuple[Cleanup, ...] = ()
    fingerprint: str | None = None
    # Whose it is: the caller who started it (a job's item: its job's caller); None: no
    # caller known (a key's holder, or a record from before), seen by admins alone.
    caller: Owner | None = None
    # An item of a job: the job's id; the source's size when its listing said it (the block
    # engine's plan: as it read it).
    job: str | None = None
    source_size: int | None = None
    # A source in another account read with the app's identity (the block engine reads it
    # again on any instance; a caller's SAS is never here).
    source_foreign: ForeignBlob | None = None
    # The caller's source URL carried a query (its SAS, never kept here): the block engine's
    # work messages are the only holders of it, so the sweep cannot hand its blocks out anew.
    source_sas: bool = False
    # Where it is in its machine (copy_ops.copies.phases: the one table of its moves).
    phase: Phase = Phase.RECORDED
    # Its moves, the latest ones (phases.HISTORY_KEPT): when, to which phase, on what, why.
    history: tuple[Move[Phase, Event], ...] = ()
    # The attempt under way (1 for the first), when it began (None: at ``created_at``), and
    # every attempt that failed for a cause that may pass (copy_ops.copies.retry).
    attempt: int = 1
    attempt_at: datetime | None = None
    failed_attempts: tuple[Attempt, ...] = ()
    # Its parts, each whole while its machine is in use, else None (see each).
    blocks: BlockState | None = None
    claim: ItemClaim | None = None
    restore: Restore | None = None

    @property
    def is_final(self) -> bool:
        return self.state.is_final

    @property
    def started(self) -> bool:
        """Whether anything of its copy was sent: a Copy Blob (its id recorded), or the block
        engine's plan (its source pinned, its blocks handed out)."""
        return self.copy_id is not None or (self.blocks is not None and self.blocks.source_etag is not None)

    @property
    def condition(self) -> DestinationCondition:
        """What the block engine's commit requires of the destination: an escalated copy's
        leftover, by its ETag; else whatever is there, or nothing, as the terms ask."""
        if self.blocks is not None and self.blocks.condition_etag is not None:
            return DestinationCondition.ETAG
        return DestinationCondition.ANY if self.terms.overwrite else DestinationCondition.ABSENT

    @property
    def needs_sweep(self) -> bool:
        return not self.is_final or bool(self.cleanup)

    def to_json(self) -> bytes:
        # Field by field, values encoded as json meets them: ``dataclasses.asdict`` deep-
        # copies every value, about a twentieth of a sweep's CPU per abort (profiled). The
        # terms and the parts flat beside the core, each field under its own name (a part
        # absent: its fields as they were written when it was not in use), and the commit's
        # condition, which the version before reads from the record: as it always was stored.
        data = {name: getattr(self, name) for name in _CORE_FIELDS}
        data.update(fields_of(self.terms))
        for name, kind in _PARTS:
            part = getattr(self, name)
            data.update(fields_of(part) if part is not None else absent_fields(kind))
        data["condition"] = self.condition
        return json.dumps(data, default=_encode, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Operation:
        data: dict[str, Any] = json.loads(raw)
        op = cls._fields_of(data)
        # A record written before phases were stored: its phase, as its fields tell it.
        return op if data.get("phase") else dataclasses.replace(op, phase=_phase_before_phases(op))

    @classmethod
    def _fields_of(cls, data: dict[str, Any]) -> Operation:
        error = data.get("error")
        if "overwrite" not in data:
            data["overwrite"] = _overwrite_before_terms(data)
        terms = read_fields(Terms, data)
        return cls(
            id=data["id"],
            state=State(data["state"]),
            source=data["source"],
            destination=BlobRef(**data["destination"]),
            terms=terms,
            created_at=parse_time(data["created_at"]),
            updated_at=parse_time(data["updated_at"]),
            source_blob=BlobRef(**data["source_blob"]) if data.get("source_blob") else None,
            copy_id=data.get("copy_id"),
            finished_at=_optional_time(data.get("finished_at")),
            next_check_at=_optional_time(data.get("next_check_at")),
            checks=int(data.get("checks", 0)),
            abort_reason=AbortReason(data["abort_reason"]) if data.get("abort_reason") else None,
            abort_requested_at=_optional_time(data.get("abort_requested_at")),
            error=OperationError(ErrorCode(error["code"]), error["message"]) if error else None,
            progress=Progress(**data["progress"]) if data.get("progress") else None,
            had_destination=data.get("had_destination"),
            cleanup=tuple(Cleanup(item) for item in data.get("cleanup", [])),
            fingerprint=data.get("fingerprint"),
            caller=read_owner(data.get("caller")),
            job=data.get("job"),
            source_size=data.get("source_size"),
            source_foreign=ForeignBlob(**data["source_foreign"]) if data.get("source_foreign") else None,
            source_sas=bool(data.get("source_sas")),
            phase=Phase(data.get("phase") or Phase.RECORDED),
            history=MACHINE.history_of(data.get("history")),
            attempt=int(data.get("attempt") or 1),
            attempt_at=_optional_time(data.get("attempt_at")),
            failed_attempts=tuple(Attempt.read(item) for item in data.get("failed_attempts") or ()),
            # Each part there when its machine is: the block engine's on the engine's copies,
            # a claim on a job's item recorded by an attempt, a restore once a snapshot was taken.
            blocks=read_fields(BlockState, data) if terms.engine is Engine.BLOCKS else None,
            claim=read_fields(ItemClaim, data) if data.get("start_token") is not None else None,
            restore=read_fields(Restore, data) if data.get("snapshot") is not None else None,
        )


def _phase_before_phases(op: Operation) -> Phase:
    """The phase of a record written before phases were stored, read off its fields (as that
    code read them): kept for those records alone; every later move is the table's."""
    if op.is_final:
        return Phase.ENDED
    if op.blocks is not None:
        if op.blocks.commit_sent_at is not None:
            return Phase.COMMITTING
        if op.blocks.source_etag is not None:
            return Phase.STAGING
        if op.copy_id is not None:
            return Phase.PLANNING if op.blocks.condition_etag is not None else Phase.ESCALATING
        return Phase.RECORDED
    return Phase.COPYING if op.copy_id is not None else Phase.RECORDED


def _overwrite_before_terms(data: dict[str, Any]) -> bool:
    """Whether a record written before its terms were stored whole was asked to overwrite:
    its commit's condition as recorded says so; an escalated one's names its leftover instead,
    and records from before the block engine have none: then a destination not known to be
    absent (``had_destination`` None) is one it overwrites."""
    condition = data.get("condition")
    if condition in (DestinationCondition.ANY, DestinationCondition.ABSENT):
        return bool(condition == DestinationCondition.ANY)
    return data.get("had_destination", False) is None


def _encode(value: object) -> object:
    if isinstance(value, datetime):
        return format_time(value, exact=True)
    if isinstance(value, BlobRef | ForeignBlob | OperationError | Progress | Move | Owner | Attempt):
        return value.as_dict()
    raise TypeError(f"cannot encode {type(value).__name__}")


# The parts, and the record's own fields (its core) beside them and its terms.
_PARTS = (("blocks", BlockState), ("claim", ItemClaim), ("restore", Restore))
_CORE_FIELDS = tuple(
    item.name for item in dataclasses.fields(Operation) if item.name not in {"terms", *(name for name, _ in _PARTS)}
)


def _optional_time(text: str | None) -> datetime | None:
    return parse_time(text) if text else None


@dataclass(frozen=True)
class OperationPage:
    items: list[Operation]
    continuation: str | None


@dataclass(frozen=True)
class ManifestEntry:
    """One source of a job's manifest: as for one copy, and the name it lands under (after
    the prefix). Here, with the copies' vocabulary, because the work queue's messages carry
    it and sit below the jobs."""

    source: str | BlobRef | ForeignBlob
    name: str
