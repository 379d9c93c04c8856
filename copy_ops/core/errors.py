"""The error hierarchy: every failure copy-ops can report, each knowing its HTTP status.

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
    """Base of all errors copy-ops reports. ``status`` is the HTTP status it maps to."""

    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"
    slug: ClassVar[str] = "internal-error"

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

    @classmethod
    def of(cls, *errors: FieldError) -> Self:
        """The error for these fields; its detail is built from them, so the two never disagree."""
        return cls(summary(errors), errors=errors)


class InvalidRequest(CopyOpsError):
    status = 400
    title = "Invalid request"
    slug = "invalid-request"


class UnsafeName(InvalidRequest):
    """A request the storage adapter refuses to send: its URL path is not exactly the
    container and name that were validated. Validation should have refused it first."""


class Forbidden(CopyOpsError):
    status = 403
    title = "Not allowed"
    slug = "forbidden"


class NotFound(CopyOpsError):
    status = 404
    title = "Not found"
    slug = "not-found"


class ContainerMissing(NotFound):
    """The container does not exist (the ledger's, before its first record)."""


class Conflict(CopyOpsError):
    status = 409
    title = "Conflict"
    slug = "conflict"


class CopyIdMismatch(Conflict):
    """Abort Copy named a copy that is not the destination's: someone else's copy runs there."""


class NoPendingCopy(Conflict):
    """Abort Copy found no pending copy: it ended already (a normal race)."""


class PreconditionFailed(CopyOpsError):
    status = 412
    title = "Precondition failed"
    slug = "precondition-failed"


class PayloadTooLarge(CopyOpsError):
    status = 413
    title = "Request body too large"
    slug = "payload-too-large"


class StorageFault(CopyOpsError):
    """Storage answered in a way copy-ops does not expect; not the caller's fault."""

    status = 502
    title = "Storage error"
    slug = "storage-error"


class StorageUnavailable(CopyOpsError):
    """A transient fault (timeout, 500, 503): safe to retry later."""

    status = 503
    title = "Storage unavailable"
    slug = "storage-unavailable"


class ConfigurationError(CopyOpsError):
    """A missing, malformed or contradictory app setting; ``code`` names it.

    The functions stay indexed (a host that indexes nothing shows only "0 functions
    found"); every request answers 503 with this problem and logs one line, and every
    sweep logs one line and does nothing, until the setting is fixed."""

    status = 503
    title = "Service misconfigured"
    slug = "configuration-error"
