"""The error hierarchy: every failure copy-ops can report, named by what it means.

Which HTTP status each meaning is, is the HTTP edge's one table
(:data:`copy_ops.edges.http.STATUSES`, and docs/api.md): nothing below the edge knows HTTP.

Storage SDK exceptions are translated into these once, in :mod:`copy_ops.storage`;
nothing above that boundary sees an ``azure.core`` exception or branches on one of
Azure's error codes: the outcomes that matter to the lifecycle have classes of their
own (:class:`CopyIdMismatch`, :class:`NoPendingCopy`, ...). ``code`` still carries
storage's code, as data for the API's problem details.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Self


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


def summary(errors: tuple[FieldError, ...] | list[FieldError]) -> str:
    """One line naming every field: the ``detail`` of a validation problem."""
    return "; ".join(f"{error.field}: {error.message}" for error in errors)


class CopyOpsError(Exception):
    """Base of all errors copy-ops reports; ``title`` says its meaning in a few words."""

    title: ClassVar[str] = "Internal error"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        errors: tuple[FieldError, ...] = (),
        operation: object = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code
        self.errors = errors
        # The operation as it stands, for errors that refer to one (a 409 on abort): the
        # copies' record, which the core does not know by type (the edge shows it).
        self.operation = operation

    @property
    def kind(self) -> str:
        """The error's meaning, as log lines name it: its class."""
        return type(self).__name__

    @classmethod
    def of(cls, *errors: FieldError) -> Self:
        """The error for these fields; its detail is built from them, so the two never disagree."""
        return cls(summary(errors), errors=errors)


class InvalidRequest(CopyOpsError):
    title = "Invalid request"


class UnsafeName(InvalidRequest):
    """A request the storage adapter refuses to send: its URL path is not exactly the
    container and name that were validated. Validation should have refused it first."""


class NotOurs(InvalidRequest):
    """A work message without the app's seal (``code``: why): dropped, and nothing done."""


class Forbidden(CopyOpsError):
    title = "Not allowed"


class Unauthenticated(CopyOpsError):
    """No caller the app may take: COPY_AUTH asks for one signed in with Microsoft Entra ID and
    the request came with none, or with a principal App Service Authentication would not send
    (``code`` says which)."""

    title = "Not signed in"


class NotFound(CopyOpsError):
    title = "Not found"


class ContainerMissing(NotFound):
    """The container does not exist (the ledger's, before its first record)."""


class Conflict(CopyOpsError):
    title = "Conflict"


class CopyIdMismatch(Conflict):
    """Abort Copy named a copy that is not the destination's: someone else's copy runs there."""


class NoPendingCopy(Conflict):
    """Abort Copy found no pending copy: it ended already (a normal race)."""


class PreconditionFailed(CopyOpsError):
    """Another writer changed a record first (its ETag moved): a race inside the app, which
    the writer reads again and decides afresh; never the caller's doing."""

    title = "Busy"


class Busy(PreconditionFailed):
    """Every retry of a write lost its race: the record is busy; try again later (the
    caller, the queue's redelivery, or the next sweep)."""


class ConditionNotMet(CopyOpsError):
    """A condition of the caller's request that storage found unmet: a lease held on the
    destination, a destination in a state that refuses the copy."""

    title = "Precondition failed"


class SourceChanged(Conflict):
    """The block engine's source is no longer the version its copy pinned (its ETag moved, or
    it is gone): in the way of the copy, as an existing destination is; never a condition of
    the caller's request (their destination's lease)."""


class DestinationChanged(Conflict):
    """The block engine's commit found the destination not as it required: there when it
    was to be absent (not overwriting), or not the blob it was to replace."""


class BlocksMissing(Conflict):
    """A commit named blocks that are not staged on the destination (a write there
    discarded them): they are staged again."""


class PayloadTooLarge(CopyOpsError):
    title = "Request body too large"


class StorageFault(CopyOpsError):
    """Storage refused or answered a request of the app's own in a way copy-ops does not
    expect (a request it calls malformed, an identity without the role it needs): never
    the caller's fault, and not fixed by trying again."""

    title = "Storage error"


class StorageUnavailable(CopyOpsError):
    """A transient fault (timeout, 500, 503): safe to retry later."""

    title = "Storage unavailable"


class NotSent(StorageUnavailable):
    """A request copy-ops chose not to send after all: its moment passed while it waited
    for its turn (a commit too close to the deadline, a block past its invocation's time)."""


class ConfigurationError(CopyOpsError):
    """A missing, malformed or contradictory app setting; ``code`` names it.

    The functions stay indexed (a host that indexes nothing shows only "0 functions
    found"); every request answers 503 with this problem and logs one line, and every
    sweep logs one line and does nothing, until the setting is fixed."""

    title = "Service misconfigured"
