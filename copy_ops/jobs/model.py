"""A job's record and request: copy-ops' vocabulary for sets of blobs. Pure.

A :class:`Job` never holds a secret: a source URL is kept without its query string; the
caller's SAS, if any, travels only in the job's enumeration messages (docs/jobs.md).

Size: about 300 lines. The record and its request are one vocabulary, read by every module
of the jobs; reading a record of any earlier version (one before phases, too) is part of it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from copy_ops.copies.model import BlobRef, ForeignBlob, ManifestEntry, State, Terms
from copy_ops.copies.owners import Owner, read_owner
from copy_ops.core.machines import Move
from copy_ops.core.times import format_time, parse_time
from copy_ops.core.versions import known, read_fields
from copy_ops.jobs.phases import MACHINE, JobEvent, JobPhase


class JobState(StrEnum):
    ENUMERATING = "enumerating"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ABORTED = "aborted"

    @property
    def is_final(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.ABORTED)


class Listing(StrEnum):
    """How a prefix source is listed, and how its items are read."""

    OWN = "own"  # the app's own account, with its own credential
    IDENTITY = "identity"  # another account, with the app's identity (a SAS it mints per item)
    URL = "url"  # a container URL: with the caller's SAS (carried in messages only), or public


@dataclass(frozen=True)
class PrefixSource:
    """Every blob under ``prefix`` in a container. ``url``: the container's URL, no query."""

    listing: Listing
    container: str
    prefix: str
    url: str
    account: str | None = None
    # Listed with the caller's SAS, carried by the job's messages only (docs/jobs.md).
    needs_sas: bool = False

    def shown(self, name: str) -> str:
        """The blob ``name`` of this source as a record shows it: its URL, without a query."""
        from urllib.parse import quote

        return f"{self.url}/{quote(name, safe='/~')}"

    def item(self, name: str, sas: str | None) -> str | BlobRef | ForeignBlob:
        """What Copy Blob reads for the blob ``name`` of this source."""

        if self.listing is Listing.OWN:
            return BlobRef(self.container, name)
        if self.listing is Listing.IDENTITY:
            assert self.account is not None
            return ForeignBlob(self.account, self.container, name)
        url = self.shown(name)
        return f"{url}?{sas}" if sas else url


@dataclass(frozen=True)
class JobRequest:
    """A validated job request. A manifest's or a URL's SAS is here and in messages only."""

    source: PrefixSource | None
    manifest: tuple[ManifestEntry, ...]
    sas: str | None
    destination_container: str
    destination_prefix: str
    # What each item is asked (its engine as the request asked: auto resolved item by item).
    terms: Terms
    fingerprint: str
    # A retry of a job's failed items (copy_ops.jobs.reruns): every job retried before it in
    # that line of retries, the job it retries last (Job.lineage).
    lineage: tuple[str, ...] = ()


@dataclass(frozen=True)
class JobOutcome:
    """A job started, or found started by an earlier request with its key (``replayed``)."""

    job: Job
    replayed: bool


@dataclass(frozen=True)
class Counts:
    """Items by state, and bytes: ``copied`` of the items that succeeded, ``total`` of those whose size is known.
    ``retried``: items that needed more than one attempt, known once the job's report read
    every item (None before: the index does not say it)."""

    by_state: dict[str, int] = field(default_factory=dict)
    bytes_copied: int = 0
    bytes_total: int = 0
    retried: int | None = None

    @property
    def items(self) -> int:
        return sum(self.by_state.values())

    def of(self, state: State) -> int:
        return self.by_state.get(state.value, 0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "items": self.items,
            **{state.value: self.of(state) for state in State},
            "bytes_copied": self.bytes_copied,
            "bytes_total": self.bytes_total,
            "retried": self.retried,
        }


@dataclass(frozen=True)
class Failure:
    operation_id: str
    code: str

    def as_dict(self) -> dict[str, str]:
        return {"id": self.operation_id, "code": self.code}


@dataclass(frozen=True)
class Enumeration:
    """Where the listing stands: the checkpoint every page message is checked against."""

    # The next page to list (a message for another page is stale) and its marker.
    page: int = 0
    marker: str | None = None
    # Items found so far: listed (each handed out in a batch before the page counts), or in the manifest.
    items: int = 0
    # Batches handed out so far, and per page the handout whose marks count (4 hex digits a page).
    batches: int = 0
    handouts: str = ""
    done: bool = False
    # Set when enumeration stopped before the end (poisoned, refused, aborted): why.
    stopped: str | None = None
    # A manifest's items come in chunks, one message each, done in any order.
    chunks: int = 0
    chunks_done: tuple[int, ...] = ()
    # When the last page was done (a job without progress for long is checked).
    progressed_at: datetime | None = None
    # The page's listing attempt (a token) that moved the checkpoint last (stored as "mover",
    # its name before): after a write whose answer was lost, an attempt tells its own write
    # from another's.
    moved_by: str | None = None
    # Stopped by the job's check (abort, deadline): it ends no sooner (batches in flight done).
    settle_after: datetime | None = None


@dataclass(frozen=True)
class Job:
    id: str
    state: JobState
    source: PrefixSource | None
    manifest_size: int
    destination_container: str
    destination_prefix: str
    # What each item is asked (its engine as the job was: auto resolved item by item).
    terms: Terms
    created_at: datetime
    fingerprint: str
    # Whose it is, and its items': the caller who started it; None: no caller known (a key's
    # holder, or a job from before), seen by admins alone (copy_ops.copies.owners).
    caller: Owner | None = None
    enumeration: Enumeration = Enumeration()
    updated_at: datetime | None = None
    next_check_at: datetime | None = None
    checks: int = 0
    abort_requested_at: datetime | None = None
    finished_at: datetime | None = None
    # As of the last check; the status call counts afresh.
    counts: Counts = Counts()
    failures: tuple[Failure, ...] = ()
    # The report is written before the final state: a final job always has one.
    report: str | None = None
    # The final state's event is owed (events configured) until a target took it.
    announce_owed: bool = False
    # Its end decided while its report is written in parts (16 ** report_digits): messages
    # last sent, or parts last seen written (report_written of them), at report_sent_at.
    closing: JobState | None = None
    report_digits: int = 0
    report_sent_at: datetime | None = None
    report_written: int = 0
    # Where it is in its machine (copy_ops.jobs.phases: the one table of its moves), and its
    # moves, the latest ones (phases.HISTORY_KEPT): when, to which phase, on what, why.
    phase: JobPhase = JobPhase.ENUMERATING
    history: tuple[Move[JobPhase, JobEvent], ...] = ()
    # On a job whose failed items were retried: its latest retry's id (copy_ops.jobs.reruns).
    retried_by: str | None = None
    # A retry's line of retried jobs: the job the first retry retried, then each retry of
    # it, the job it retries last (at most LINEAGE_KEPT, the latest). An item of any of them that left
    # a blob on a destination has ended: this job's item may replace that blob.
    lineage: tuple[str, ...] = ()

    @property
    def is_final(self) -> bool:
        return self.state.is_final

    @property
    def retry_of(self) -> str | None:
        """The job whose failed items this one retries, if it is a retry."""
        return self.lineage[-1] if self.lineage else None

    def to_json(self) -> bytes:
        data = dataclasses.asdict(self)
        data.update(data.pop("terms"))  # flat, each under its own name, as an operation's
        data["enumeration"]["mover"] = data["enumeration"].pop("moved_by")
        # The job it retries, derived from its lineage: stored too, as the versions before read it.
        data["retry_of"] = self.retry_of
        # Not known yet, or no retry: written as the version before wrote a job.
        for fields, name in ((data["counts"], "retried"), (data, "retry_of"), (data, "retried_by"), (data, "lineage")):
            if fields[name] in (None, ()):
                del fields[name]
        return json.dumps(data, default=_encode, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Job:
        data: dict[str, Any] = json.loads(raw)
        given = data.get("source")
        source = PrefixSource(**{**known(PrefixSource, given), "listing": Listing(given["listing"])}) if given else None
        counts, enumeration = data.get("counts") or {}, data.get("enumeration") or {}
        return cls(
            id=data["id"],
            state=JobState(data["state"]),
            source=source,
            manifest_size=int(data.get("manifest_size", 0)),
            destination_container=data["destination_container"],
            destination_prefix=data["destination_prefix"],
            # A job recorded before the engines existed ran every item on Copy Blob (the default).
            terms=read_fields(Terms, data),
            created_at=parse_time(data["created_at"]),
            fingerprint=data["fingerprint"],
            caller=read_owner(data.get("caller")),
            enumeration=Enumeration(
                **{
                    **known(Enumeration, enumeration),
                    "progressed_at": _optional_time(enumeration.get("progressed_at")),
                    "settle_after": _optional_time(enumeration.get("settle_after")),
                    "chunks_done": tuple(enumeration.get("chunks_done", ())),
                    "moved_by": enumeration.get("mover"),
                }
            ),
            updated_at=_optional_time(data.get("updated_at")),
            next_check_at=_optional_time(data.get("next_check_at")),
            checks=int(data.get("checks", 0)),
            abort_requested_at=_optional_time(data.get("abort_requested_at")),
            finished_at=_optional_time(data.get("finished_at")),
            counts=Counts(**known(Counts, counts)),
            failures=tuple(Failure(**known(Failure, item)) for item in data.get("failures", [])),
            report=data.get("report"),
            announce_owed=bool(data.get("announce_owed", False)),
            closing=JobState(data["closing"]) if data.get("closing") else None,
            report_digits=int(data.get("report_digits", 0)),
            report_sent_at=_optional_time(data.get("report_sent_at")),
            report_written=int(data.get("report_written", 0)),
            # A record written before phases were stored: its phase, as its fields tell it.
            phase=JobPhase(data["phase"]) if data.get("phase") else _phase_before_phases(data),
            history=MACHINE.history_of(data.get("history")),
            retried_by=data.get("retried_by"),
            # A retry recorded before its lineage was: the job it retried alone.
            lineage=tuple(data.get("lineage") or ([data["retry_of"]] if data.get("retry_of") else [])),
        )


def _phase_before_phases(data: dict[str, Any]) -> JobPhase:
    """The phase of a record written before phases were stored, read off its fields (as that
    code read them): kept for those records alone; every later move is the table's."""
    enumeration = data.get("enumeration") or {}
    if JobState(data["state"]).is_final:
        return JobPhase.ENDED
    if data.get("closing"):
        return JobPhase.REPORTING
    if enumeration.get("settle_after"):
        return JobPhase.STOPPING
    return JobPhase.RUNNING if enumeration.get("done") else JobPhase.ENUMERATING


def _encode(value: object) -> object:
    if isinstance(value, datetime):
        return format_time(value, exact=True)
    raise TypeError(f"cannot encode {type(value).__name__}")


def _optional_time(text: str | None) -> datetime | None:
    return parse_time(text) if text else None
